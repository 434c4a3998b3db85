"""CR, bCR, zCR (ganbench/consistency.py) and BigGAN's orthogonal regularization (ganbench/orthogonal.py) equal
their formulas, computed here by hand on tiny linear critics and generators."""

import math

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from ganbench import consistency as C
from ganbench import orthogonal as O
from ganbench.config import CONF_DIR
from ganbench.errors import ConfigError
from ganbench.regularizers import apply_spectral_norm

pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def images(n=6, shape=(2, 8, 8), seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, *shape, generator=g, dtype=dtype) * 2 - 1)


def linear_critic(w):
    return lambda x: x.flatten(1) @ w.flatten()


def load(name):
    return instantiate(OmegaConf.load(CONF_DIR / "reg" / f"{name}.yaml"))


# -- the transform -------------------------------------------------------------------------------------------------
def test_flip_where_mirrors_exactly_the_masked_samples():
    x = images()
    mask = torch.tensor([True, False, True, False, False, True])
    out = C.flip_where(x, mask)
    for n in range(len(x)):
        assert torch.equal(out[n], x[n].flip(-1) if mask[n] else x[n])


@pytest.mark.parametrize("shift,fill", [(C.shift_reflect, None), (C.shift_fill, 0.25)])
def test_shift_is_pad_then_crop_per_sample(shift, fill):
    """Sample n is pad(x_n) cropped at (m + dy_n, m + dx_n): reflect padding (torch's mode='reflect') as StudioGAN's
    cr.py, or a constant fill as DiffAugment's translation."""
    x = images(n=5, shape=(3, 8, 8))
    dy, dx = torch.tensor([-2, 0, 1, 2, -1]), torch.tensor([1, -2, 0, 2, -1])
    out = shift(x, dy, dx, 2, 2) if fill is None else shift(x, dy, dx, fill)
    for n in range(len(x)):
        padded = (F.pad(x[n:n + 1], [2, 2, 2, 2], mode="reflect") if fill is None
                  else F.pad(x[n:n + 1], [2, 2, 2, 2], value=fill))
        top, left = 2 + int(dy[n]), 2 + int(dx[n])
        assert torch.equal(out[n], padded[0, :, top:top + 8, left:left + 8])


def test_max_shift_is_floor_for_reflect_and_rounded_for_zeros():
    assert C.CRTransform(padding="reflect").max_shifts(32, 28) == (4, 3)  # SG: int(side / 8)
    assert C.CRTransform(padding="zeros").max_shifts(32, 28) == (4, 4)  # DiffAugment: int(side / 8 + 0.5)


def test_cr_transform_draws_a_flip_and_a_shift_per_sample():
    """Every output sample is flip-or-not of its input then one reflect shift in [-1, 1]^2 (8 px / 8); different
    samples get different draws."""
    torch.manual_seed(0)
    x = images(n=48, shape=(1, 8, 8))
    out = C.CRTransform()(x)
    seen = set()
    for n in range(len(x)):
        matches = [(f, dy, dx) for f in (False, True) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                   if torch.equal(out[n], C.shift_reflect((x[n].flip(-1) if f else x[n])[None],
                                                          torch.tensor([dy]), torch.tensor([dx]), 1, 1)[0])]
        assert len(matches) == 1, n
        seen.add(matches[0])
    assert len(seen) >= 10 and {f for f, _, _ in seen} == {False, True}


def test_zeros_padding_fills_with_the_middle_of_ds_range():
    """DiffAugment's zero is the middle of [-1, 1]: with data.range=unit ([0, 1]) the border is 0.5."""
    torch.manual_seed(0)
    reg = C.CR(padding="zeros", flip_p=0.0)
    reg.check_data((1, 8, 8))
    reg.data_range = (0.0, 1.0)
    out = reg.transform(torch.ones(32, 1, 8, 8))
    assert set(out.unique().tolist()) == {0.5, 1.0}


def test_each_image_of_a_pacgan_pack_gets_its_own_transform():
    """A pack of two identical images (channels 0 and 1): T flips each image on its own draw."""
    torch.manual_seed(0)
    reg = C.CR(flip_p=0.5, translation=0.0)
    reg.check_data((1, 8, 8))
    one = images(n=32, shape=(1, 8, 8))
    out = reg.transform(torch.cat([one, one], 1))
    flipped = [[torch.equal(out[n, k], one[n, 0].flip(-1)) for k in (0, 1)] for n in range(32)]
    assert any(a != b for a, b in flipped)
    for n in range(32):
        for k in (0, 1):
            assert flipped[n][k] or torch.equal(out[n, k], one[n, 0])


# -- CR and bCR ----------------------------------------------------------------------------------------------------
def test_cr_is_weight_times_mse_of_logits_with_gradients_through_both_branches(monkeypatch):
    w = nn.Parameter(torch.randn(2 * 8 * 8, dtype=torch.float64))
    x = images()
    reg = C.CR(weight=10.0)
    reg.check_data((2, 8, 8))
    monkeypatch.setattr(reg, "transform", lambda t: t.flip(3))
    a, b = x.flatten(1) @ w, x.flip(3).flatten(1) @ w
    value = reg.penalty(linear_critic(w), x, images(seed=1))
    assert value.item() == pytest.approx(10.0 * ((a - b) ** 2).mean().item(), rel=1e-12)
    value.backward()
    by_hand = 10.0 * (2 * (a - b).detach()[:, None] * (x.flatten(1) - x.flip(3).flatten(1))).mean(0)
    assert torch.allclose(w.grad, by_hand)  # a detached branch would give 2 (a - b) x or -2 (a - b) T(x)


def test_bcr_adds_the_fake_term_scored_with_the_fakes_condition(monkeypatch):
    w_real, w_fake = torch.randn(128, dtype=torch.float64), torch.randn(128, dtype=torch.float64)
    critic = linear_critic(w_real)
    critic.fake = linear_critic(w_fake)
    real, fake = images(), images(seed=1)
    reg = C.BCR(real_weight=3.0, fake_weight=7.0)
    reg.check_data((2, 8, 8))
    monkeypatch.setattr(reg, "transform", lambda t: t.flip(2))

    def mse(c, x):
        return ((c(x) - c(x.flip(2))) ** 2).mean().item()

    expected = 3.0 * mse(critic, real) + 7.0 * mse(critic.fake, fake)
    assert reg.penalty(critic, real, fake).item() == pytest.approx(expected, rel=1e-12)
    plain = linear_critic(w_real)  # a critic without .fake (the base family) scores fakes with itself
    expected = 3.0 * mse(plain, real) + 7.0 * mse(plain, fake)
    assert reg.penalty(plain, real, fake).item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("name", ["cr", "bcr"])
def test_cr_refuses_vector_data_and_records_its_transform(name):
    reg = load(name)
    with pytest.raises(ConfigError, match=rf"reg={name} flips and translates images.*\(2,\)"):
        reg.check_data((2,))
    reg.check_data((3, 32, 32))
    proto = reg.protocol()
    assert proto["padding"] == "reflect" and proto["translation_ratio"] == 0.125 and proto["flip_p"] == 0.5
    assert proto["max_shift_px"] == [4, 4] and "augment" in proto and proto["outputs_compared"] == "logits"


# -- zCR -----------------------------------------------------------------------------------------------------------
class StubGAN:
    """What zCR calls on the LightningModule: G(z) + y's offset, D(x, y) as a dict, the fakes' condition."""

    def __init__(self, prior="normal", z_dim=3, out=4):
        torch.manual_seed(1)
        self.G = nn.Linear(z_dim, out).double()
        self.D = nn.Linear(out, 1).double()
        self.optim_cfg = {"prior": prior}
        self.generated, self.conditions = [], []

    def generate(self, inputs):
        self.generated.append({k: v.detach().clone() for k, v in inputs.items()})
        return self.G(inputs["z"]) + inputs["y"][:, None].double()

    def fake_condition(self, inputs):
        return {"y": inputs["y"]}

    def discriminate(self, x, cond):
        self.conditions.append(cond["y"].clone())
        return {"logit": self.D(x).squeeze(1) + cond["y"].double(), "cls": x}


def zcr_inputs(n=5, z_dim=3, prior="normal"):
    z = torch.randn(n, z_dim, dtype=torch.float64) if prior == "normal" else torch.rand(n, z_dim).double() * 2 - 1
    return {"z": z, "y": torch.arange(n)}


def test_zcr_d_term_is_dis_weight_times_logit_mse_with_g_frozen():
    gan, inputs = StubGAN(), zcr_inputs()
    fake = gan.generate(inputs).detach()
    fake_out = gan.discriminate(fake, {"y": inputs["y"]})
    reg = C.ZCR(sigma=0.05, dis_weight=20.0)
    with torch.random.fork_rng():
        torch.manual_seed(7)
        term = reg.d_step_term(gan, inputs, fake, fake_out)
    torch.manual_seed(7)
    z_eps = inputs["z"] + 0.05 * torch.randn_like(inputs["z"])
    with torch.no_grad():
        fake_eps = gan.G(z_eps) + inputs["y"][:, None].double()
    expected = 20.0 * ((fake_out["logit"] - (gan.D(fake_eps).squeeze(1) + inputs["y"])) ** 2).mean()
    assert term.item() == pytest.approx(expected.item(), rel=1e-12)
    assert torch.equal(gan.generated[-1]["y"], inputs["y"]) and torch.equal(gan.generated[-1]["z"], z_eps)
    assert torch.equal(gan.conditions[-1], inputs["y"])  # D scores G(z + eps) with the same labels
    term.backward()
    assert gan.G.weight.grad is None and gan.D.weight.grad.abs().sum() > 0


def test_zcr_g_term_is_minus_gen_weight_times_pixel_mse_with_grad():
    gan, inputs = StubGAN(), zcr_inputs()
    fake = gan.generate(inputs)
    reg = C.ZCR(sigma=0.05, gen_weight=0.5)
    with torch.random.fork_rng():
        torch.manual_seed(3)
        term = reg.g_step_term(gan, inputs, fake)
    torch.manual_seed(3)
    z_eps = inputs["z"] + 0.05 * torch.randn_like(inputs["z"])
    expected = -0.5 * ((fake - (gan.G(z_eps) + inputs["y"][:, None].double())) ** 2).mean()
    assert term.item() == pytest.approx(expected.item(), rel=1e-12) and term.item() < 0
    assert torch.equal(gan.generated[-1]["y"], inputs["y"])
    (by_hand,) = torch.autograd.grad(expected, gan.G.weight, retain_graph=True)
    term.backward()
    assert torch.allclose(gan.G.weight.grad, by_hand)


def test_zcr_with_a_uniform_prior_perturbs_by_sigma_times_uniform():
    """SG's sample_zy: zs + radius * U[-1, 1] for a uniform prior, not clipped."""
    inputs = zcr_inputs(n=400, prior="uniform")
    with torch.random.fork_rng():
        torch.manual_seed(5)
        out = C.perturb_latent(inputs, 0.05, "uniform")
    torch.manual_seed(5)
    assert torch.equal(out["z"], inputs["z"] + 0.05 * (torch.rand_like(inputs["z"]) * 2 - 1))
    assert (out["z"] - inputs["z"]).abs().max() <= 0.05 and out["z"].abs().max() > 1
    assert out["y"] is inputs["y"]


def test_zcr_accepts_vectors_and_records_its_settings():
    reg = load("zcr")
    reg.check_data((2,))
    assert (reg.sigma, reg.gen_weight, reg.dis_weight) == (0.05, 0.5, 20.0)
    assert reg.protocol()["sigma"] == 0.05 and reg.penalty(None, None, None) is None


# -- orthogonal regularization ---------------------------------------------------------------------------------------
def biggan_ortho_grad(w, beta, variant="modified"):
    """BigGAN's utils.ortho / default_ortho: the gradient it adds to .grad, W reshaped (out, -1)."""
    m = w.reshape(w.shape[0], -1)
    eye = torch.eye(m.shape[0], dtype=m.dtype)
    a = (m @ m.t()) * (1 - eye) if variant == "modified" else m @ m.t() - eye
    return (2 * beta * a @ m).reshape(w.shape)


@pytest.mark.parametrize("variant", ["modified", "default"])
def test_ortho_value_and_gradient_equal_biggans(variant):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 5, 2), nn.Linear(4, 6))
    for p in net.parameters():
        p.data = p.data.double()
    beta = 0.3
    value = O.ortho_value(net, beta, O.VARIANTS[variant])
    conv, lin = net[0].weight, net[1].weight
    eye5, eye6 = torch.eye(5, dtype=torch.float64), torch.eye(6, dtype=torch.float64)
    c, l_ = conv.reshape(5, -1), lin
    if variant == "modified":
        expected = ((c @ c.t() * (1 - eye5)) ** 2).sum() + ((l_ @ l_.t() * (1 - eye6)) ** 2).sum()
    else:
        expected = ((c @ c.t() - eye5) ** 2).sum() + ((l_ @ l_.t() - eye6) ** 2).sum()
    assert value.item() == pytest.approx(beta / 2 * expected.item(), rel=1e-6)
    value.backward()
    assert torch.allclose(conv.grad, biggan_ortho_grad(conv.detach(), beta, variant), rtol=1e-5)
    assert torch.allclose(lin.grad, biggan_ortho_grad(lin.detach(), beta, variant), rtol=1e-5)
    assert net[0].bias.grad is None and net[1].bias.grad is None  # 1-D parameters skipped


def test_ortho_skips_embeddings_and_regularises_spectral_norms_original_weight():
    torch.manual_seed(0)
    net = nn.ModuleDict({"shared": nn.Embedding(10, 4), "fc": nn.Linear(4, 3), "bn": nn.BatchNorm1d(3)})
    apply_spectral_norm(net)
    reg = O.OrthogonalReg(beta=1e-2)
    reg.configure(net, nn.Linear(2, 1))
    reg.g_step_term(None, None, None).backward()
    original = net["fc"].parametrizations.weight.original
    assert torch.allclose(original.grad, biggan_ortho_grad(original.detach(), 1e-2))
    assert net["shared"].weight.grad is None and net["bn"].weight.grad is None


def test_ortho_in_d_only_with_discriminator_true():
    G, D = nn.Linear(3, 4), nn.Linear(5, 6)
    reg = O.OrthogonalReg(beta=1.0)
    reg.configure(G, D)
    assert reg.penalty(None, None, None) is None
    both = O.OrthogonalReg(beta=1.0, discriminator=True)
    both.configure(G, D)
    assert both.penalty(None, None, None).item() == pytest.approx(O.ortho_value(D, 1.0).item())
    assert both.g_step_term(None, None, None).item() == pytest.approx(O.ortho_value(G, 1.0).item())
    assert O.OrthogonalReg(generator=False, discriminator=True).protocol()["generator"] is False


def test_ortho_is_float32_under_autocast():
    torch.manual_seed(0)
    net = nn.Linear(16, 8)
    reference = O.ortho_value(net, 1e-4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = O.ortho_value(net, 1e-4)
    assert mixed.dtype == torch.float32 and torch.allclose(mixed, reference, rtol=1e-6)


# -- options -------------------------------------------------------------------------------------------------------
def test_yaml_defaults_are_the_reference_settings():
    cr, bcr, ortho = load("cr"), load("bcr"), load("ortho")
    assert (cr.weight, cr.flip_p, cr.translation, cr.padding) == (10.0, 0.5, 0.125, "reflect")
    assert (bcr.real_weight, bcr.fake_weight) == (10.0, 10.0)
    assert (ortho.beta, ortho.variant, ortho.generator, ortho.discriminator) == (1e-4, "modified", True, False)


@pytest.mark.parametrize("cls,kw", [
    (C.CR, {"weight": -1}), (C.CR, {"weight": math.nan}), (C.CR, {"padding": "circular"}), (C.CR, {"flip_p": 1.5}),
    (C.CR, {"translation": 0.75}), (C.BCR, {"real_weight": -1}), (C.BCR, {"fake_weight": math.inf}),
    (C.ZCR, {"sigma": -0.1}), (C.ZCR, {"gen_weight": -0.5}), (C.ZCR, {"dis_weight": -20}),
    (O.OrthogonalReg, {"beta": -1e-4}), (O.OrthogonalReg, {"variant": "srip"}),
    (O.OrthogonalReg, {"generator": False, "discriminator": False})])
def test_bad_values_raise_config_error(cls, kw):
    with pytest.raises(ConfigError, match=r"reg[.=]"):
        cls(**kw)


def test_zcr_names_a_missing_latent_or_unknown_prior():
    with pytest.raises(ConfigError, match="optim.prior"):
        C.perturb_latent({"z": torch.zeros(2, 3)}, 0.05, "laplace")
    with pytest.raises(ConfigError, match="latent z"):
        C.perturb_latent({"w": torch.zeros(2, 3)}, 0.05, "normal")


# -- against the real module (the hooks called by hand; the loop's wiring is tested by the CLI tests) -------------
@pytest.mark.parametrize("pack", [1, 2])
def test_every_hook_runs_on_the_gan_module_with_diffaugment_and_packing(pack):
    """On family=gan's module (dcgan 16 px, DiffAugment, PacGAN pack): finite terms whose backward reaches D (CR, bCR,
    zCR's D term, ortho with discriminator=true) or G (zCR's G term, ortho)."""
    from ganbench.augment import DiffAugment
    from ganbench.families.gan import GAN
    from ganbench.losses import NonSaturating
    from ganbench.nets import dcgan

    torch.manual_seed(0)
    shape = (3, 16, 16)
    G, D = dcgan.Generator(4, shape, width=4), dcgan.Discriminator((3 * pack, 16, 16), width=4)
    regs = {"cr": C.CR(), "bcr": C.BCR(), "zcr": C.ZCR(), "ortho": O.OrthogonalReg(discriminator=True)}
    for reg in regs.values():
        reg.configure(G, D)
        reg.check_data(shape)
    optim = {"n_disc": 1, "z_dim": 4, "prior": "normal", "batch_size": 4, "lr_g": 0.1, "lr_d": 0.1}
    gan = GAN(G, D, NonSaturating(), regs, DiffAugment(["translation"]), optim, ema_decay=0, pack=pack)
    real = torch.rand(4, *shape) * 2 - 1
    inputs = gan.sample_inputs(4)
    with torch.no_grad():
        fake = gan.generate(inputs)
    critic = gan.penalty_critic({}, {})
    d_terms = [regs[n].penalty(critic, gan.d_inputs(real), gan.d_inputs(fake)) for n in ("cr", "bcr", "ortho")]
    d_terms.append(regs["zcr"].d_step_term(gan, inputs, fake, gan.discriminate(fake, {})))
    for term in d_terms:
        assert term.dim() == 0 and torch.isfinite(term)
        D.zero_grad()
        term.backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in D.parameters())
    fake = gan.generate(inputs)
    g_terms = [regs["zcr"].g_step_term(gan, inputs, fake), regs["ortho"].g_step_term(gan, inputs, fake)]
    for term in g_terms:
        G.zero_grad()
        term.backward(retain_graph=True)
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in G.parameters())
