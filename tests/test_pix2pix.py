"""family=pix2pix: U-Net and PatchGAN shapes, the edges2digits task, the conditional D's input and its paired
augmentation, the losses against hand computations, PSNR/SSIM/L1 against torchmetrics, the paired folder, training
through the CLI with several losses and regularizers, and one-line errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import TensorDataset

from conftest import read_csv, result
from ganbench.augment import DiffAugment, NoAugment
from ganbench.data.digits import Digits
from ganbench.data.paired import Edges2Digits, PairedDataModule, PairedFolder
from ganbench.errors import ConfigError
from ganbench.families.pix2pix import Pix2Pix, grid_rows, paired_augment
from ganbench.losses import NonSaturating
from ganbench.metrics import paired as paired_metrics
from ganbench.nets.patchgan import PatchDiscriminator, patch_side, receptive_field
from ganbench.nets.unet import UNetGenerator

pytestmark = pytest.mark.usefixtures("one_cpu_thread")

OPTIM = {"n_disc": 1, "z_dim": 4, "prior": "normal", "batch_size": 4, "lr_g": 2e-4, "lr_d": 2e-4, "beta1": 0.5,
         "beta2": 0.999}


@pytest.fixture(scope="module")
def e2d():
    return Edges2Digits(resolution=8, batch_size=4)


def tiny_module(dm, augment: nn.Module | None = None, regularizers: dict | None = None, **kw) -> Pix2Pix:
    test = dm.pairs("test")
    G = UNetGenerator((1, 8, 8), input_channels=1, ngf=2)
    D = PatchDiscriminator((2, 8, 8), ndf=2, n_layers=1, normalization="none")
    return Pix2Pix(G, D, fixed_a=test.tensors[0][:3], fixed_b=test.tensors[1][:3], test_pairs=test,
                   loss=NonSaturating(), regularizers=regularizers or {}, augment=augment or NoAugment(),
                   optim=OPTIM, ema_decay=0.0, num_fixed=4, **kw)


# -- nets ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("side, levels", [(16, 4), (32, 5)])
def test_unet_shapes_levels_and_range(side, levels):
    g = UNetGenerator((3, side, side), input_channels=1, ngf=4)
    out = g(torch.randn(2, 1, side, side))
    assert out.shape == (2, 3, side, side) and g.num_downs == levels
    assert out.abs().max() <= 1


def test_unet_skip_connections_carry_the_input_past_the_bottleneck():
    torch.manual_seed(0)
    g = UNetGenerator((1, 16, 16), ngf=4).eval()
    x = torch.randn(2, 1, 16, 16)
    y = x.clone()
    y[:, :, 3, 5] += 1.0
    assert not torch.allclose(g(x), g(y))
    innermost = [m for m in g.modules() if hasattr(m, "outermost")][-1]  # the 1x1 level
    innermost.model.register_forward_hook(lambda mod, inp, out: torch.zeros_like(out))
    assert not torch.allclose(g(x), g(y))  # the bottleneck silenced: the change arrives through the skips only
    assert innermost(torch.randn(1, 16, 2, 2)).shape[1] == 16 + 16  # cat([x, up(down(x))])


def test_unet_dropout_blocks_follow_the_reference():
    count = lambda g: sum(isinstance(m, nn.Dropout) for m in g.modules())  # noqa: E731
    assert count(UNetGenerator((1, 256, 256), ngf=1)) == 3  # unet_256: num_downs - 5
    assert count(UNetGenerator((1, 32, 32), ngf=1)) == 1  # at least one below 64 px
    assert count(UNetGenerator((1, 32, 32), ngf=1, dropout_blocks=0)) == 0
    with pytest.raises(ConfigError, match="dropout_blocks"):
        UNetGenerator((1, 16, 16), dropout_blocks=5)
    with pytest.raises(ConfigError, match="family=pix2pix"):
        UNetGenerator((1, 16, 16), z_dim=8)


@pytest.mark.parametrize("n_layers, field", [(1, 16), (2, 34), (3, 70)])
def test_patchgan_patch_shape_and_receptive_field(n_layers, field):
    assert receptive_field(n_layers) == field
    assert patch_side(256, 3) == 30  # the 70x70 PatchGAN's 30x30 logits at 256 px
    torch.manual_seed(0)
    d = PatchDiscriminator((2, 128, 128), ndf=2, n_layers=n_layers, normalization="none")
    x = torch.randn(1, 2, 128, 128, requires_grad=True)
    out = d(x)
    side = patch_side(128, n_layers)
    assert out.shape == (1, 1, side, side)
    out[0, 0, side // 2, side // 2].backward()
    rows = x.grad.abs().sum((0, 1, 3)).nonzero().flatten()
    cols = x.grad.abs().sum((0, 1, 2)).nonzero().flatten()
    assert rows.max() - rows.min() + 1 == field and cols.max() - cols.min() + 1 == field
    if n_layers == 3:
        with pytest.raises(ConfigError, match="n_layers <= 2"):
            PatchDiscriminator((2, 16, 16), n_layers=3)


# -- data ----------------------------------------------------------------------------------------------------------
def hand_edges(b: np.ndarray, threshold: float) -> np.ndarray:
    """Sobel magnitude by explicit 3x3 sums on a replicate-padded image, thresholded at a fraction of its max."""
    u = np.pad((b + 1) / 2, 1, mode="edge")
    kx = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)
    h, w = b.shape
    gx, gy = np.zeros((h, w)), np.zeros((h, w))
    for i in range(h):
        for j in range(w):
            patch = u[i:i + 3, j:j + 3]
            gx[i, j], gy[i, j] = (patch * kx).sum(), (patch * kx.T).sum()
    m = np.sqrt(gx ** 2 + gy ** 2)
    return np.where(m >= threshold * m.max(), 1.0, -1.0)


def test_edges2digits_is_deterministic_and_a_is_the_edges_of_b():
    one, two = Edges2Digits(resolution=16), Edges2Digits(resolution=16)
    for split, n in (("train", 1437), ("test", 360)):
        (a1, b1), (a2, b2) = one.pairs(split).tensors, two.pairs(split).tensors
        assert len(a1) == n and torch.equal(a1, a2) and torch.equal(b1, b2)
        digits = Digits(resolution=16).dataset(split).tensors
        assert torch.equal(b1, digits[0]) and torch.equal(one.dataset(split).tensors[1], digits[1])
        assert torch.equal(one.real_samples(5, split), b1[:5])  # the metrics' reference is B
    a, b = one.pairs("test").tensors
    assert set(a.unique().tolist()) == {-1.0, 1.0}
    for i in (0, 7):
        np.testing.assert_array_equal(a[i, 0].numpy(), hand_edges(b[i, 0].double().numpy(), 0.4))


def test_edges2digits_batches_are_pairs(e2d):
    a, b = next(iter(e2d.train_dataloader()))
    assert a.shape == b.shape == (4, 1, 8, 8)
    edges = Edges2Digits(resolution=8).pairs("train").tensors
    rows = [int(torch.nonzero((edges[1] == bi).flatten(1).all(1))[0]) for bi in b]
    assert torch.equal(edges[0][rows], a)


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)


def test_paired_folder_side_by_side_folders_and_direction(tmp_path):
    for k in range(3):  # A = 10 * k on the left, B = 200 on the right
        _png(tmp_path / "sbs" / f"{k}.png", np.concatenate([np.full((8, 8), 10 * k), np.full((8, 8), 200)], 1))
        _png(tmp_path / "two" / "A" / f"{k}.png", np.full((8, 8), 10 * k))
        _png(tmp_path / "two" / "B" / f"{k}.png", np.full((8, 8), 200))
    to_level = lambda t: round(float((t.mean() + 1) * 127.5))  # noqa: E731
    for root in ("sbs", "two"):
        dm = PairedFolder(root=str(tmp_path / root), resolution=8, channels=1, test_fraction=0.34)
        a, b = dm.pairs("train")[0]
        assert a.shape == b.shape == (1, 8, 8) and (to_level(a), to_level(b)) == (0, 200)
        assert len(dm.pairs("test")) == 1 and to_level(dm.real_samples(1, "test")[0]) == 200
    swapped = PairedFolder(root=str(tmp_path / "sbs"), resolution=8, channels=1, direction="BtoA")
    assert to_level(swapped.pairs("train")[0][0]) == 200
    _png(tmp_path / "two" / "B" / "1.png", np.full((16, 16), 200))  # B of another size
    with pytest.raises(ConfigError, match="data.resize=true"):
        PairedFolder(root=str(tmp_path / "two"), resolution=8, channels=1).pairs("train")
    resized = PairedFolder(root=str(tmp_path / "two"), resolution=8, channels=1, resize=True)
    assert resized.pairs("train")[1][1].shape == (1, 8, 8)


# -- the family: D's input, augmentation, losses -----------------------------------------------------------------
class Recorder(nn.Module):
    """A D that records its input and returns (N, 1, 2, 2) patch logits: the mean of each quadrant's channel sum."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return F.avg_pool2d(x.sum(1, keepdim=True), x.shape[-1] // 2)


def test_d_scores_cat_a_b_and_one_augmentation_draw_covers_both(e2d):
    module = tiny_module(e2d, augment=DiffAugment(["translation"]))
    module.D = Recorder()
    a, b = e2d.pairs("test").tensors[0][:4], e2d.pairs("test").tensors[1][:4]
    logits = module.discriminate(b, {"a": a})
    seen = module.D.seen[-1]
    assert seen.shape == (4, 2, 8, 8) and logits.shape == (4, 4)
    module.discriminate(a, {"a": a})  # A against itself: a shared shift leaves both halves equal
    assert torch.equal(module.D.seen[-1][:, :1], module.D.seen[-1][:, 1:])
    assert not torch.equal(module.D.seen[-1][:, :1], a)  # ... and something was shifted
    module.augment = NoAugment()
    module.discriminate(b, {"a": a})
    assert torch.equal(module.D.seen[-1], torch.cat([a, b], 1))


def test_paired_augment_replays_every_random_parameter_across_channel_counts():
    aug = DiffAugment(["color", "translation", "cutout"])
    torch.manual_seed(0)
    a = torch.rand(6, 1, 8, 8) * 2 - 1
    x = a.expand(-1, 3, -1, -1).clone()  # three copies of A's channel
    a_aug, x_aug = paired_augment(aug, a, x)
    for c in range(3):
        torch.testing.assert_close(x_aug[:, c:c + 1], a_aug)
    assert not torch.allclose(aug(a), aug(a))  # control: two independent draws differ
    torch.manual_seed(1)
    paired_augment(aug, a, x)
    after_pair = torch.rand(1)
    torch.manual_seed(1)
    aug(x)
    assert torch.equal(after_pair, torch.rand(1))  # the stream advances once, as for one augmentation


def test_g_loss_is_adversarial_plus_100_l1_and_d_loss_is_halved(e2d):
    torch.manual_seed(0)
    module = tiny_module(e2d)
    a, b = next(iter(e2d.train_dataloader()))
    real, real_cond = module.real_inputs([a, b])
    inputs = module.g_inputs(len(real), real_cond)
    fake = module.generate(inputs)
    fake_out = module.discriminate(fake, module.fake_condition(inputs))
    adversarial = module.g_adversarial(fake_out, None)
    terms = module.g_terms(fake, fake_out, inputs)
    d_fake = module.D(torch.cat([a, fake], 1))
    assert torch.allclose(adversarial, F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake)))
    assert torch.allclose(terms["loss/l1"], 100 * (fake - b).abs().mean())
    _, _, d_terms = module.d_loss_terms(real, real_cond, fake.detach(), module.fake_condition(inputs), inputs)
    d_real = module.D(torch.cat([a, b], 1))
    hand = 0.5 * (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                  + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
    assert torch.allclose(d_terms["loss/d"], hand) and set(d_terms) == {"loss/d"}


def test_penalties_see_d_on_the_reals_a_and_the_b_side_only(e2d):
    module = tiny_module(e2d)
    a, b = e2d.pairs("test").tensors[0][:4], e2d.pairs("test").tensors[1][:4]
    critic = module.penalty_critic({"a": a, "b": b}, {"a": a, "b": b})
    x = torch.rand(4, 1, 8, 8)
    assert torch.equal(critic(x), module.D(torch.cat([a, x], 1)).flatten(1))
    with pytest.raises(ConfigError, match="reg=cr"):
        from ganbench.consistency import CR
        tiny_module(e2d, regularizers={"cr": CR()})


def test_samples_grid_and_fid_inputs(e2d):
    module = tiny_module(e2d)
    grid = module.sample_grid_images()
    assert grid.shape == (9, 1, 8, 8) and module.grid_columns == 3
    assert torch.equal(grid[:3], module.fixed_a) and torch.equal(grid[6:], module.fixed_b)
    torch.manual_seed(3)
    assert module.sample(5).shape == (5, 1, 8, 8)
    rgb = grid_rows(torch.zeros(2, 1, 4, 4), torch.ones(2, 3, 4, 4), torch.zeros(2, 1, 4, 4))
    assert rgb.shape == (6, 3, 4, 4)


# -- metrics -------------------------------------------------------------------------------------------------------
def test_psnr_ssim_l1_against_torchmetrics_and_by_hand():
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    torch.manual_seed(0)
    x, y = torch.rand(3, 1, 16, 16) * 2 - 1, torch.rand(3, 1, 16, 16) * 2 - 1
    mse = (((x + 1) / 2 - (y + 1) / 2) ** 2).flatten(1).mean(1)
    torch.testing.assert_close(paired_metrics.psnr(x, y), 10 * torch.log10(1 / mse))
    for i in range(3):
        tm = peak_signal_noise_ratio((x[i:i + 1] + 1) / 2, (y[i:i + 1] + 1) / 2, data_range=1.0)
        torch.testing.assert_close(paired_metrics.psnr(x, y)[i], tm)
    torch.testing.assert_close(paired_metrics.ssim(x, y).mean(),
                               structural_similarity_index_measure((x + 1) / 2, (y + 1) / 2, data_range=1.0))
    torch.testing.assert_close(paired_metrics.l1(x, y), (x - y).abs().flatten(1).mean(1))
    assert paired_metrics.psnr(x, x).tolist() == [100.0] * 3  # inf in torchmetrics: capped
    torch.testing.assert_close(paired_metrics.ssim(x, x), torch.ones(3))


class Identity(PairedDataModule):
    """A = B = 8 random images with labels 0..7 (a perfect translator is the identity)."""

    name = "identity"
    num_classes = 8

    def __init__(self, **kw):
        super().__init__(**kw)
        self.x = torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
        self.shape = self.input_shape = (1, 16, 16)

    def make_split(self, split):
        return TensorDataset(self.x, torch.arange(8))

    def make_pairs(self, split):
        return TensorDataset(self.x, self.x)


class StubClassifier:
    weights_sha256, info = "stub", {}

    def __call__(self, x):  # class = index of the image in Identity's data (exact match), else 0
        ref = Identity().x.to(x)
        return {"logits": -((x.flatten(1)[:, None] - ref.flatten(1)[None]) ** 2).sum(-1)}


def test_paired_metrics_on_a_perfect_and_a_blank_translator(monkeypatch):
    from types import SimpleNamespace

    monkeypatch.setattr(paired_metrics, "domain_classifier", lambda ev: StubClassifier())
    ev = SimpleNamespace(datamodule=Identity(), split="test", batch_size=3, device=torch.device("cpu"),
                         setup=lambda: None)
    metrics = paired_metrics.PairedMetrics()
    assert metrics(ev, lambda a: a) == {"psnr/test8": 100.0, "ssim/test8": pytest.approx(1.0), "l1/test8": 0.0,
                                        "class_agree/domain_test8": 1.0, "class_acc/domain_test8": 1.0}
    blank = metrics(ev, torch.zeros_like)
    x = ev.datamodule.x
    assert blank["l1/test8"] == pytest.approx(float(x.abs().mean()), rel=1e-6)
    assert blank["psnr/test8"] == pytest.approx(float(paired_metrics.psnr(torch.zeros_like(x), x).mean()))
    assert metrics.protocol()["num_pairs"] == 8 and "data_range 1" in metrics.protocol()["images"]


# -- through the CLI -------------------------------------------------------------------------------------------------
TINY = ["family=pix2pix", "data=edges2digits", "data.resolution=16", "model.generator.ngf=4",
        "model.discriminator.ndf=4", "optim.batch_size=8", "optim.g_steps=3", "logger=[csv]", "samples.every=0",
        "checkpoint.every=0", "log_every=1"]
RUNS = {
    "ns_diffaug_metrics": ["loss=ns", "augment=diffaug", "metrics=quick", "metrics.num_fake=40",
                           "metrics.kid_subsets=2", "family.metric_pairs=40"],
    "ls_r1": ["loss=ls", "reg=r1", "metrics=none"],
    "hinge_sn": ["loss=hinge", "reg=sn", "metrics=none"],
}


@pytest.mark.parametrize("overrides", RUNS.values(), ids=RUNS.keys())
def test_trains_three_steps(run, tmp_path, overrides):
    code, out = run(*TINY, *overrides)
    assert code == 0, out[-3000:]
    rec = result(tmp_path / "run")
    assert rec["status"] == "completed" and rec["g_steps"] == 3
    rows = read_csv(tmp_path / "run" / "metrics.csv").dropna(subset=["loss/d"])
    assert len(rows) == 3 and np.isfinite(rows[["loss/d", "loss/g", "loss/l1"]].to_numpy()).all()
    assert (rows["loss/l1"] > 1).all()  # 100 * mean |G(A) - B| of an untrained G
    if "reg=r1" in overrides:
        assert np.isfinite(rows["reg/r1"]).all()
    assert len(rec["files"]["samples"]) == 1
    if "metrics=quick" in overrides:
        final = rec["metrics"]["final"]
        assert {"fid/domain_test360", "psnr/test40", "ssim/test40", "l1/test40", "class_agree/domain_test40",
                "class_acc/domain_test40"} <= set(final)
        assert all(math.isfinite(v) for v in final.values())
        assert rec["metrics"]["protocol"]["family"]["paired_metrics"]["num_pairs"] == 40


def test_quickstart_experiment_runs(run, tmp_path):
    code, out = run("experiment=quickstart_pix2pix", "debug=fast", "optim.g_steps=2", "model.generator.ngf=4",
                    "model.discriminator.ndf=4")
    assert code == 0, out[-3000:]
    rec = result(tmp_path / "run")
    assert rec["status"] == "completed" and rec["choices"]["family"] == "pix2pix"
    assert rec["config"]["data"]["_target_"].endswith("Edges2Digits")


BAD = {
    "unpaired": (["data=digits"], ["family=pix2pix trains on paired data", "data=digits", "data=edges2digits"]),
    "pack": (["data=edges2digits", "family.pack=2"], ["family.pack=2", "family=pix2pix", "family.pack=1"]),
    "missing_folder": (["data=paired", "data.root={missing}"], ["data.root=", "no such directory", "root/A"]),
    "cr": (["data=edges2digits", "reg=cr"], ["reg=cr", "misaligned", "family=pix2pix"]),
    "dcgan": (["data=edges2digits", "model=dcgan"], ["family=pix2pix", "model=dcgan", "model=pix2pix"]),
}


@pytest.mark.parametrize("overrides, words", BAD.values(), ids=BAD.keys())
def test_bad_input_is_one_line(run, tmp_path, overrides, words):
    overrides = [o.format(missing=tmp_path / "nowhere") for o in overrides]
    code, out = run("family=pix2pix", "data.resolution=16", "logger=[csv]", "metrics=none", "optim.batch_size=8",
                    "optim.g_steps=1", *overrides)
    assert code == 2, out[-2000:]
    lines = [ln for ln in out.splitlines() if ln.startswith("ganbench: error:")]
    assert len(lines) == 1 and "Traceback" not in out, out[-2000:]
    for word in words:
        assert word in lines[0], (word, lines[0])


# -- learning: the translations keep the digit ------------------------------------------------------------------------
LEARN = ["family=pix2pix", "data=edges2digits", "data.resolution=16", "model.generator.ngf=16",
         "model.discriminator.ndf=16", "optim.batch_size=16", "logger=[csv]", "samples.every=0", "checkpoint.every=0",
         "log_every=50", "metrics=quick", "metrics.every=0", "metrics.num_fake=100", "metrics.kid_subsets=2"]


@pytest.mark.parametrize("g_steps, learns", [(200, True), (1, False)], ids=["trained", "control"])
def test_translations_of_test_edges_are_the_digit(run, tmp_path, g_steps, learns):
    """After 200 steps the digit classifier gives >= 60% of the translated test edge maps the class it gives their
    targets and PSNR exceeds 16 dB; the untrained control (1 step) does neither."""
    code, out = run(*LEARN, f"optim.g_steps={g_steps}")
    assert code == 0, out[-3000:]
    final = result(tmp_path / "run")["metrics"]["final"]
    agree, psnr = final["class_agree/domain_test360"], final["psnr/test360"]
    assert (agree >= 0.6 and psnr > 16) if learns else (agree < 0.4 and psnr < 14), final


def test_family_pix2pix_alone_runs_on_its_embedded_task(run, tmp_path):
    """`python -m ganbench.train family=pix2pix`: the family picks data=edges2digits itself."""
    code, out = run("family=pix2pix", "debug=fast", "model.generator.ngf=4", "model.discriminator.ndf=4")
    assert code == 0, out[-3000:]
    assert result(tmp_path / "run")["config"]["data"]["_target_"] == "ganbench.data.paired.Edges2Digits"


def test_the_best_checkpoint_follows_the_familys_primary_psnr_higher_is_better(tmp_path):
    """Evaluation keeps best.ckpt by pix2pix's PSNR (largest), not by the evaluator's FID (smallest)."""
    from types import SimpleNamespace

    from ganbench.callbacks import Evaluation
    from ganbench.families.pix2pix import Pix2Pix

    scripted = iter([{"fid/x": 50.0, "psnr/test8": 10.0}, {"fid/x": 40.0, "psnr/test8": 14.0},
                     {"fid/x": 30.0, "psnr/test8": 12.0}])
    evaluator = SimpleNamespace(primary="fid/x", seed=0, evaluate=lambda *a, **k: next(scripted))
    saved = []
    trainer = SimpleNamespace(global_rank=0, world_size=1, loggers=[], strategy=None,
                              save_checkpoint=lambda path: saved.append(module.g_step))
    module = SimpleNamespace(g_step=0, primary_metric=Pix2Pix.primary_metric, sample=None,
                             extra_metrics=lambda ev: {})
    cb = Evaluation(evaluator, tmp_path)
    for step in (1, 2, 3):
        module.g_step = step
        cb.run(trainer, module)
    assert saved == [1, 2] and cb.best["g_step"] == 2
    assert cb.primary(module, cb.best) == "psnr/test8"
    module.primary_metric = None  # a family without its own: the evaluator's FID, lower is better
    assert cb.primary(module, cb.best) == "fid/x"
