"""Each regularizer equals its paper's formula."""

import math

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from ganbench import regularizers as R
from ganbench.config import CONF_DIR
from ganbench.errors import ConfigError
from ganbench.nets import dcgan, mlp

torch.manual_seed(0)


def linear_critic(w: torch.Tensor):
    """D(x) = <w, x>: its input gradient is w everywhere, so ||grad|| = ||w|| for every x."""
    return lambda x: x.flatten(1) @ w.flatten()


def images(n=16, shape=(1, 4, 4), seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, *shape, generator=g) * 2 - 1


@pytest.mark.parametrize("eps", [0.0, 1e-4])
@pytest.mark.parametrize("norm", [1.0, 2.0, 0.5])
def test_gp_is_lambda_times_squared_norm_gap(norm, eps):
    """lambda * (sqrt(||g||^2 + eps) - 1)^2: eps = 1e-4 is compare_gan's wgangp_penalty, eps = 0 Gulrajani's."""
    w = torch.randn(16, dtype=torch.float64)
    w = w / w.norm() * norm
    gp = R.GradientPenalty(weight=10.0, eps=eps)
    value = gp.penalty(linear_critic(w), images().double(), images(seed=1).double())
    assert value.item() == pytest.approx(10.0 * (math.sqrt(norm ** 2 + eps) - 1) ** 2, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("eps", [0.0, 1e-4])
def test_a_critic_with_zero_input_gradient_leaves_finite_weights_after_a_gp_step(eps):
    """D(x) = relu(<w, x> - 100): on data in [-1, 1] every input gradient is exactly 0, where a plain sqrt would
    send NaN into w."""
    w = nn.Parameter(torch.randn(16))
    critic = lambda x: torch.relu(x.flatten(1) @ w - 100.0)  # noqa: E731
    opt = torch.optim.SGD([w], lr=0.1)
    R.GradientPenalty(eps=eps).penalty(critic, images(), images(seed=1)).backward()
    assert torch.isfinite(w.grad).all()
    opt.step()
    assert torch.isfinite(w).all()


def test_gp_is_taken_at_interpolates_between_real_and_fake():
    seen = []
    critic = lambda x: (seen.append(x.detach().clone()), x.flatten(1).sum(1))[1]  # noqa: E731
    real, fake = torch.zeros(64, 2), torch.ones(64, 2)
    R.GradientPenalty().penalty(critic, real, fake)
    x_hat = seen[0]
    assert torch.all(x_hat[:, 0] == x_hat[:, 1])  # one epsilon per sample
    assert 0 <= x_hat.min() and x_hat.max() <= 1 and 0.3 < x_hat.mean() < 0.7


def test_r1_is_half_gamma_mean_squared_grad_norm_on_real():
    real, fake = images(), images(seed=1)
    critic = lambda x: x.flatten(1).square().sum(1)  # grad = 2x  # noqa: E731
    value = R.R1(gamma=3.0).penalty(critic, real, fake)
    expected = 3.0 / 2 * (2 * real).flatten(1).square().sum(1).mean()
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)
    value2 = R.R2(gamma=3.0).penalty(critic, real, fake)
    assert value2.item() == pytest.approx((1.5 * (2 * fake).flatten(1).square().sum(1).mean()).item(), rel=1e-6)


def test_penalties_backpropagate_to_the_discriminator():
    D = mlp.Discriminator((2,), hidden=16, layers=2)
    for reg in (R.GradientPenalty(), R.DRAGAN(), R.DRAGANLucic(), R.R1(), R.R2()):
        D.zero_grad()
        reg.penalty(D, torch.randn(8, 2), torch.randn(8, 2)).backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in D.parameters()), reg


def test_dragan_kurach_perturbation_statistics_and_value():
    x = images(4096, (1, 8, 8))
    torch.manual_seed(1)
    d = R.DRAGAN(weight=1.0, noise=1.0)
    delta = d.perturb(x) - x
    inside = (x.abs() < 0.5)  # away from the clip at +-1
    std = x.std(unbiased=False)
    assert delta.abs().max() <= std / 2 + 1e-6
    assert delta[inside].mean().abs() < 0.01 * std
    assert delta[inside].var().item() == pytest.approx(std.item() ** 2 / 12, rel=0.05)  # U(-1/2,1/2) * std
    assert (x + delta).abs().max() <= 1  # clipped to the image range
    w = torch.randn(64)
    w = w / w.norm() * 2
    value = d.penalty(linear_critic(w), x[:32], x[:32])
    assert value.item() == pytest.approx((math.sqrt(4 + 1e-4) - 1) ** 2, rel=1e-5)


def test_dragan_lucic_perturbation_is_one_sided_and_interpolated():
    x = torch.zeros(2048, 2)
    x[:, 0] = torch.linspace(-1, 1, 2048)
    seen = []
    critic = lambda z: (seen.append(z.detach().clone()), z.sum(1))[1]  # noqa: E731
    value = R.DRAGANLucic(weight=10.0, noise=0.5, output="logits").penalty(critic, x, x)
    delta = seen[0] - x
    std = x.std(unbiased=False)
    assert delta.min() >= 0 and delta.max() <= 0.5 * std  # x + alpha * 0.5 * std * U[0,1)
    assert delta.mean().item() == pytest.approx(0.5 * std.item() * 0.25, rel=0.1)  # E[alpha]E[U] = 1/4
    assert value.item() == pytest.approx(10.0 * (math.sqrt(2 + 1e-4) - 1) ** 2, rel=1e-5)


def test_dragan_lucic_penalises_the_sigmoid_outputs_gradient():
    """compare_gan v1 (Lucic et al. 2018): the gradient of sigmoid(D(x_hat)), i.e. s(1 - s) * grad D, with 1e-4
    under the square root; output=logits takes grad D itself."""
    torch.manual_seed(0)
    x = torch.randn(16, 2)
    w = torch.tensor([3.0, -1.0])
    seen = []
    critic = lambda z: (seen.append(z.detach().clone()), z @ w + 0.5)[1]  # noqa: E731
    value = R.DRAGANLucic(weight=2.0).penalty(critic, x, x)
    s = torch.sigmoid(seen[0] @ w + 0.5)
    norms = (s * (1 - s) * w.norm()).square().add(1e-4).sqrt()
    assert value.item() == pytest.approx(2.0 * (norms - 1).square().mean().item(), rel=1e-5)
    logits = R.DRAGANLucic(weight=2.0, output="logits").penalty(critic, x, x)
    assert logits.item() == pytest.approx(2.0 * (math.sqrt(10 + 1e-4) - 1) ** 2, rel=1e-5)
    with pytest.raises(ConfigError, match="output must be one of sigmoid, logits"):
        R.DRAGANLucic(output="probability")


def test_weight_clipping_bounds_every_d_parameter():
    D = dcgan.Discriminator((1, 16, 16), width=8)
    with torch.no_grad():
        for p in D.parameters():
            p.mul_(100)
    R.WeightClipping(clip=0.01).after_d_step(D)
    assert all(p.abs().max() <= 0.01 for p in D.parameters())


def test_l2_penalty_value():
    D = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    per_layer = [D[0].weight.square().sum() / 2, D[2].weight.square().sum() / 2]
    reg = R.L2(weight=0.5)
    reg.configure(None, D)
    assert reg.penalty(None, None, None).item() == pytest.approx(0.5 * (sum(per_layer) / 2).item(), rel=1e-6)
    reg = R.L2(weight=0.5, reduction="sum")
    reg.configure(None, D)
    assert reg.penalty(None, None, None).item() == pytest.approx(0.5 * sum(per_layer).item(), rel=1e-6)


def test_spectral_norm_gives_unit_top_singular_value():
    D = mlp.Discriminator((2,), hidden=32, layers=2)
    with torch.no_grad():
        for p in D.parameters():
            p.mul_(5)
    R.SpectralNorm(power_iterations=1).configure(nn.Identity(), D)
    for _ in range(50):  # power iteration advances once per training-mode forward
        D(torch.randn(8, 2))
    D.eval()
    for m in D.modules():
        if isinstance(m, nn.Linear):
            assert torch.linalg.matrix_norm(m.weight, ord=2).item() == pytest.approx(1.0, abs=1e-3)


def test_spectral_norm_can_also_wrap_g():
    G, D = mlp.Generator(4, (2,)), mlp.Discriminator((2,))
    R.SpectralNorm(generator=True).configure(G, D)
    assert any(hasattr(m, "parametrizations") for m in G.modules())


@pytest.mark.parametrize("name,layer", [("bn", nn.modules.batchnorm._BatchNorm), ("ln", nn.GroupNorm)])
def test_normalization_regularizers_insert_layers_in_d(name, layer):
    reg = instantiate(OmegaConf.load(CONF_DIR / "reg" / f"{name}.yaml"))
    D = dcgan.Discriminator((1, 16, 16), width=8, norm=reg.d_norm)
    assert any(isinstance(m, layer) for m in D.modules())


def test_every_reg_yaml_instantiates_to_a_regularizer():
    for path in (CONF_DIR / "reg").glob("*.yaml"):
        cfg = OmegaConf.load(path)
        assert isinstance(instantiate(cfg), R.Regularizer), path


@pytest.mark.parametrize("cls,kw", [(R.GradientPenalty, {"weight": -1}), (R.R1, {"gamma": -0.1}),
                                    (R.R1, {"interval": 0}), (R.WeightClipping, {"clip": 0}),
                                    (R.L2, {"reduction": "max"})])
def test_bad_values_raise_config_error(cls, kw):
    with pytest.raises(ConfigError):
        cls(**kw)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("name", ["gp", "dragan", "dragan_lucic", "r1", "r2"])
def test_gradient_penalties_are_exact_float32_under_mixed_precision(name, dtype):
    """Inside bf16 or fp16 autocast (trainer.precision=bf16-mixed / 16-mixed) a gradient penalty equals its float32
    value: the critic's input gradient is taken in float32 with autocast off and unscaled (PyTorch's AMP recipe),
    not in half precision; the GradScaler of 16-mixed then scales only the total D loss."""
    torch.manual_seed(0)
    D = dcgan.Discriminator(data_shape=(3, 16, 16), width=8)
    real, fake = torch.randn(6, 3, 16, 16).clamp(-1, 1), torch.randn(6, 3, 16, 16).clamp(-1, 1)
    reg = instantiate(OmegaConf.load(CONF_DIR / "reg" / f"{name}.yaml"))
    with torch.random.fork_rng():
        reference = reg(D, real, fake)
    with torch.random.fork_rng(), torch.autocast("cpu", dtype=dtype):
        mixed = reg(D, real, fake)
    assert mixed.dtype == torch.float32 and torch.allclose(mixed, reference, rtol=1e-6)
    with torch.random.fork_rng(), torch.autocast("cpu", dtype=dtype):  # what a half-precision gradient would give
        x = real.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(D(x).sum(), x)
    assert g.dtype == torch.float32 and not torch.allclose(g, R.input_gradients(D, real), rtol=1e-4)


def test_ema_of_a_spectrally_normalised_g_copies_u_and_v():
    """reg.sn.generator=true: the EMA generator's power-iteration vectors are G's own (unit vectors, copied as
    StyleGAN2-ADA copies buffers), so its samples equal G_ema's averaged weights normalised with G's u/v."""
    from ganbench.families.gan import GAN
    from ganbench.losses import NonSaturating

    G, D = mlp.Generator(4, (2,), hidden=8, layers=2), mlp.Discriminator((2,), hidden=8, layers=2)
    R.SpectralNorm(generator=True).configure(G, D)
    optim = {"n_disc": 1, "z_dim": 4, "prior": "normal", "batch_size": 8, "lr_g": 0.1, "lr_d": 0.1}
    module = GAN(G, D, NonSaturating(), {}, nn.Identity(), optim, ema_decay=0.9)
    opt = torch.optim.SGD(module.G.parameters(), lr=0.5)
    for _ in range(5):  # move G's weights (and its u/v, updated in every training-mode forward)
        opt.zero_grad()
        module.G(torch.randn(8, 4)).square().mean().backward()
        opt.step()
        module.update_ema()
    ema = module.G_ema.module
    for (name, b_ema), (_, b) in zip(ema.named_buffers(), module.G.named_buffers()):
        assert torch.equal(b_ema, b), name
        if name.endswith("_u") or name.endswith("_v"):
            assert b_ema.norm().item() == pytest.approx(1.0, abs=1e-5)
    assert any(not torch.equal(p, q) for p, q in zip(ema.parameters(), module.G.parameters()))  # averaged
    z = torch.randn(6, 4)
    with torch.no_grad():
        manual = ema.eval()(z)
        copy = mlp.Generator(4, (2,), hidden=8, layers=2)
        R.SpectralNorm(generator=True).configure(copy, mlp.Discriminator((2,), hidden=8, layers=2))
        copy.load_state_dict(ema.state_dict())
        assert torch.equal(copy.eval()(z), manual)
    assert torch.equal(module.sample(z=z), manual)
