"""model=stylegan2 and reg=pl: the formulas against hand computations (upfirdn2d's reference formula, equalized lr,
(de)modulation, minibatch std, mapping, truncation, style mixing, path length), shapes at 8/16/32 px, bad inputs,
a manual training loop and 3-step CLI runs (family=gan with and without reg=pl, family=conditional)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import assert_same_last_checkpoint, result
from ganbench.errors import ConfigError
from ganbench.nets import fir
from ganbench.nets import stylegan2 as sg
from ganbench.path_length import PathLength

pytestmark = pytest.mark.usefixtures("one_cpu_thread")

TINY_G = dict(w_dim=8, mapping_layers=2, channel_base=64, channel_max=8)
TINY_D = dict(channel_base=64, channel_max=8, mbstd_group_size=4)


# -- upfirdn2d: an independent NumPy loop of _upfirdn2d_ref's formula ----------------------------------------------
def reference_upfirdn(x: np.ndarray, f: np.ndarray, up: int, down: int, pad: tuple) -> np.ndarray:
    """Zero insertion, zero padding (x0, x1, y0, y1), true convolution with f (sum x[i + a] f[K - 1 - a]), stride."""
    n, c, h, w = x.shape
    u = np.zeros((n, c, h * up, w * up))
    u[:, :, ::up, ::up] = x
    x0, x1, y0, y1 = pad
    p = np.pad(u, ((0, 0), (0, 0), (y0, y1), (x0, x1)))
    fh, fw = f.shape
    out = np.zeros((n, c, p.shape[2] - fh + 1, p.shape[3] - fw + 1))
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            for a in range(fh):
                for b in range(fw):
                    out[:, :, i, j] += p[:, :, i + a, j + b] * f[fh - 1 - a, fw - 1 - b]
    return out[:, :, ::down, ::down]


def reference_conv(x: np.ndarray, w: np.ndarray, stride: int = 1) -> np.ndarray:
    """Cross-correlation (F.conv2d's) without padding, by loops."""
    o, _, k, _ = w.shape
    out = np.zeros((x.shape[0], o, x.shape[2] - k + 1, x.shape[3] - k + 1))
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            out[:, :, i, j] = np.einsum("nikl,oikl->no", x[:, :, i:i + k, j:j + k], w)
    return out[:, :, ::stride, ::stride]


def test_setup_filter_is_the_normalized_outer_product():
    taps = np.array([1.0, 3, 3, 1])
    assert np.allclose(fir.setup_filter().numpy(), np.outer(taps, taps) / 64)


def test_upfirdn2d_matches_the_reference_formula():
    """An asymmetric filter and unequal x/y padding: flip, axis order and padding all show."""
    g = torch.Generator().manual_seed(0)
    x, f = torch.randn(2, 3, 5, 6, generator=g), torch.rand(4, 3, generator=g)
    ours = fir.upfirdn2d(x, f, up=2, down=1, padding=(2, 1, 0, 3), gain=1.5)
    assert np.allclose(ours.numpy(), reference_upfirdn(x.numpy(), f.numpy() * 1.5, 2, 1, (2, 1, 0, 3)), atol=1e-5)
    ours = fir.upfirdn2d(x, f, down=2, padding=(1, 2, 2, 1))
    assert np.allclose(ours.numpy(), reference_upfirdn(x.numpy(), f.numpy(), 1, 2, (1, 2, 2, 1)), atol=1e-5)


def test_upsample2d_and_downsample2d_match_the_reference_formula():
    g = torch.Generator().manual_seed(1)
    x, f = torch.randn(2, 2, 4, 4, generator=g), fir.setup_filter()
    up, down = fir.upsample2d(x, f), fir.downsample2d(x, f)
    assert up.shape == (2, 2, 8, 8) and down.shape == (2, 2, 2, 2)
    assert np.allclose(up.numpy(), reference_upfirdn(x.numpy(), 4 * f.numpy(), 2, 1, (2, 1, 2, 1)), atol=1e-5)
    assert np.allclose(down.numpy(), reference_upfirdn(x.numpy(), f.numpy(), 1, 2, (1, 1, 1, 1)), atol=1e-5)
    const = torch.ones(1, 1, 8, 8)  # the gain keeps a constant image's interior constant
    assert torch.allclose(fir.upsample2d(const, f)[..., 2:-2, 2:-2], torch.ones(1, 1, 12, 12))


def test_conv2d_resample_pads_once_as_the_reference_path():
    """up: FIR(up 2, pad 3/2, gain 4) then the *convolution* with w; down: FIR(pad 2/2) then a stride-2 conv."""
    g = torch.Generator().manual_seed(2)
    x, w, f = torch.randn(2, 3, 4, 4, generator=g), torch.randn(5, 3, 3, 3, generator=g), fir.setup_filter()
    up = fir.conv2d_resample(x, w, f, up=2, padding=1, flip_weight=False)
    u = reference_upfirdn(x.numpy(), 4 * f.numpy(), 2, 1, (3, 2, 3, 2))
    assert up.shape == (2, 5, 8, 8)
    assert np.allclose(up.numpy(), reference_conv(u, w.flip([2, 3]).numpy()), atol=1e-4)
    down = fir.conv2d_resample(x, w, f, down=2, padding=1)
    d = reference_upfirdn(x.numpy(), f.numpy(), 1, 1, (2, 2, 2, 2))
    assert down.shape == (2, 5, 2, 2)
    assert np.allclose(down.numpy(), reference_conv(d, w.numpy(), stride=2), atol=1e-4)


def test_bias_act_lrelu_gain_and_clamp():
    x, b = torch.tensor([[-1.0, 2.0]]), torch.tensor([0.5, 0.5])
    assert torch.allclose(fir.bias_act(x, b, "lrelu"), torch.tensor([[-0.1, 2.5]]) * math.sqrt(2))
    assert torch.allclose(fir.bias_act(x, b, "lrelu", clamp=1.0), torch.tensor([[-0.1 * math.sqrt(2), 1.0]]))
    assert torch.equal(fir.bias_act(x), x)


# -- layers -------------------------------------------------------------------------------------------------------
def test_equalized_fully_connected():
    torch.manual_seed(0)
    fc = sg.FullyConnected(400, 3, lr_multiplier=0.01, bias_init=1.0)
    assert abs(float(fc.weight.std()) - 100) < 5  # N(0, 1) / lr_mul, scaled back at run time
    x = torch.randn(2, 400)
    expected = x @ (fc.weight * 0.01 / 20).t() + fc.bias * 0.01
    assert torch.allclose(fc(x), expected, atol=1e-5)


def test_demodulated_weights_have_unit_norm_per_output_channel():
    torch.manual_seed(0)
    weight, styles = torch.randn(5, 3, 3, 3), torch.randn(4, 3)
    w, d = sg.modulation(weight, styles)
    assert torch.allclose((w * d[..., None, None, None]).square().sum([2, 3, 4]), torch.ones(4, 5), atol=1e-5)


@pytest.mark.parametrize("up", [1, 2])
def test_modulated_conv_equals_a_per_sample_conv_by_hand(up):
    torch.manual_seed(0)
    x, weight, styles, noise = torch.randn(3, 4, 4, 4), torch.randn(2, 4, 3, 3), torch.randn(3, 4), torch.randn(3, 1, 4 * up, 4 * up)
    f = fir.setup_filter()
    ours = sg.modulated_conv2d(x, weight, styles, noise, up=up, padding=1, resample_filter=f, flip_weight=up == 1)
    for i in range(3):
        w = weight * styles[i][None, :, None, None]
        w = w / w.square().sum([1, 2, 3], keepdim=True).add(1e-8).sqrt()
        by_hand = (F.conv2d(x[i:i + 1], w, padding=1) if up == 1
                   else fir.conv2d_resample(x[i:i + 1], w, f, up=2, padding=1, flip_weight=False))
        assert torch.allclose(ours[i:i + 1], by_hand + noise[i:i + 1], atol=1e-5)
    plain = sg.modulated_conv2d(x, weight, styles, demodulate=False, padding=1)
    assert torch.allclose(plain[1:2], F.conv2d(x[1:2], weight * styles[1][None, :, None, None], padding=1), atol=1e-5)


def test_minibatch_std_by_hand():
    torch.manual_seed(0)
    x = torch.randn(4, 2, 2, 2)
    out = sg.minibatch_std(x, group_size=2, num_channels=1)
    assert out.shape == (4, 3, 2, 2) and torch.equal(out[:, :2], x)
    for members in ([0, 2], [1, 3]):  # SG2A's reshape(G, -1): sample i is in group i mod N/G
        std = (x[members].var(0, unbiased=False) + 1e-8).sqrt().mean()
        assert torch.allclose(out[members, 2], std.expand(2, 2, 2), atol=1e-6)
    with pytest.raises(ConfigError, match="mbstd_group_size"):
        sg.minibatch_std(torch.randn(6, 2, 2, 2), group_size=4, num_channels=1)


# -- mapping, truncation, style mixing ----------------------------------------------------------------------------
def tiny_generator(side=8, **kw):
    torch.manual_seed(0)
    return sg.Generator(4, (1, side, side), **{**TINY_G, **kw})


def test_mapping_normalizes_z_and_tracks_w_avg_in_training_only():
    G = tiny_generator()
    z = torch.randn(5, 4)
    assert torch.allclose(sg.normalize_2nd_moment(z).square().mean(1), torch.ones(5), atol=1e-5)
    G.train()
    w = G.mapping(z)
    assert w.shape == (5, G.num_ws, 8) and torch.equal(w[:, 0], w[:, -1])
    assert torch.allclose(G.mapping.w_avg, (1 - 0.995) * w[:, 0].detach().mean(0), atol=1e-7)
    before = G.mapping.w_avg.clone()
    G.eval()
    G.mapping(z)
    assert torch.equal(G.mapping.w_avg, before)


def test_truncation_toward_w_avg_in_evaluation_with_cutoff():
    G = tiny_generator(truncation_psi=0.5, truncation_cutoff=2)
    G.mapping.w_avg.copy_(torch.randn(8))
    z = torch.randn(3, 4)
    G.eval()
    plain, ws = G.mapping(z), G.styles(z)
    assert torch.allclose(ws[:, :2], G.mapping.w_avg + 0.5 * (plain[:, :2] - G.mapping.w_avg), atol=1e-6)
    assert torch.equal(ws[:, 2:], plain[:, 2:])
    G.train()
    assert torch.allclose(G.styles(z), plain, atol=1e-6)  # training: no truncation


def test_style_mixing_crosses_over_in_training_only():
    G = tiny_generator(style_mixing=1.0)
    z = torch.randn(3, 4)
    G.eval()
    plain = G.mapping(z)
    G.train()
    for _ in range(5):
        ws = G.styles(z)
        same = [bool(torch.allclose(ws[:, i], plain[:, i], atol=1e-6)) for i in range(G.num_ws)]
        cutoff = same.index(False)
        assert cutoff >= 1 and not any(same[cutoff:]) and all(same[:cutoff])
    G.eval()
    assert torch.allclose(G.styles(z), plain, atol=1e-6)


# -- shapes and bad inputs ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("side", [8, 16, 32])
@pytest.mark.parametrize("architecture", ["orig", "resnet"])
def test_shapes(side, architecture):
    torch.manual_seed(0)
    G, D = sg.Generator(6, (3, side, side), **TINY_G), sg.Discriminator((3, side, side), architecture=architecture,
                                                                         **TINY_D)
    assert G.num_ws == 2 * int(math.log2(side)) - 2
    img = G(torch.randn(4, 6))
    assert img.shape == (4, 3, side, side)
    assert D(img).shape == (4,) and D.features(img).shape == (4, D.feature_dim)
    assert torch.allclose(D(img), D.head(D.features(img)).flatten())
    Gc, Dc = sg.Generator(6, (3, side, side), num_classes=3, **TINY_G), sg.Discriminator(
        (3, side, side), num_classes=3, architecture=architecture, **TINY_D)
    y = torch.tensor([0, 1, 2, 1])
    assert Dc(Gc(torch.randn(4, 6), y), y).shape == (4,)
    with pytest.raises(ValueError):
        Gc(torch.randn(4, 6))


def test_channel_widths_follow_channel_base_and_max():
    G, D = sg.Generator(6, (3, 32, 32)), sg.Discriminator((3, 32, 32))  # SG2A cifar: 512 everywhere at 32 px
    assert [b.torgb.weight.shape[1] for b in G.synthesis.blocks] == [512] * 4 and D.feature_dim == 512
    G = sg.Generator(6, (3, 32, 32), channel_base=256, channel_max=32)
    assert [b.torgb.weight.shape[1] for b in G.synthesis.blocks] == [32, 32, 16, 8]


@pytest.mark.parametrize("make, message", [
    (lambda: sg.Generator(4, (1, 12, 12)), "12x12"),
    (lambda: sg.Generator(4, (1, 4, 4)), "4x4"),
    (lambda: sg.Discriminator((2,)), "square images"),
    (lambda: sg.Generator(4, (1, 8, 8), style_mixing=1.5), "style_mixing"),
    (lambda: sg.Generator(4, (1, 8, 8), truncation_psi=1.2), "truncation_psi"),
    (lambda: sg.Generator(4, (1, 8, 8), truncation_psi=-0.1), "truncation_psi"),
    (lambda: sg.Generator(4, (1, 8, 8), truncation_cutoff=9), "truncation_cutoff"),
    (lambda: sg.Generator(4, (1, 8, 8), noise_mode="fixed"), "noise_mode"),
    (lambda: sg.Generator(4, (1, 8, 8), channel_base=4), "channel_base"),
    (lambda: sg.Discriminator((1, 8, 8), architecture="skip"), "architecture"),
    (lambda: sg.Discriminator((1, 8, 8), channel_base=64, channel_max=8, mbstd_num_channels=3), "mbstd_num"),
    (lambda: sg.check_style_mixing(0.9, 1), "single w"),
    (lambda: PathLength(interval=0), "interval"),
    (lambda: PathLength(decay=2), "decay"),
    (lambda: PathLength().configure(nn.Linear(2, 2), None), "mapping network"),
])
def test_bad_inputs_raise_config_error(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


# -- path length ----------------------------------------------------------------------------------------------------
class LinearG(nn.Module):
    """styles(z) = z as (N, num_ws, w_dim); synthesis(ws) = A flatten(ws) as (N, 1, 4, 4)."""

    def __init__(self, num_ws=2, w_dim=3):
        super().__init__()
        self.num_ws, self.w_dim = num_ws, w_dim
        self.A = nn.Parameter(torch.randn(16, num_ws * w_dim))

    def styles(self, z):
        return z.reshape(-1, self.num_ws, self.w_dim)

    def synthesis(self, ws):
        return (ws.flatten(1) @ self.A.t()).reshape(-1, 1, 4, 4)


def test_path_length_penalty_on_a_linear_generator_is_its_closed_form():
    torch.manual_seed(0)
    G, reg = LinearG(), PathLength(weight=2.0, decay=0.01, batch_shrink=2, interval=4)
    reg.configure(G, None)
    gan = SimpleNamespace(G=G, g_step=0, family_name=lambda: "gan")
    z = torch.randn(6, 6)

    def closed_form(seed):  # |A^T u| / sqrt(num_ws) per sample, u = randn / sqrt(H W), on the first 6 // 2 samples
        torch.manual_seed(seed)
        u = torch.randn(3, 1, 4, 4) / 4
        return (u.flatten(1) @ G.A).norm(dim=1).detach() / math.sqrt(2)

    torch.manual_seed(1)
    term = reg.g_step_term(gan, {"z": z}, None)
    lengths = closed_form(1)
    mean = 0.01 * lengths.mean()
    assert torch.allclose(reg.pl_mean, mean, atol=1e-6)
    assert torch.allclose(term, 2.0 * (lengths - mean).square().mean() * 4, atol=1e-5)
    assert term.requires_grad
    gan.g_step = 1
    assert reg.g_step_term(gan, {"z": z}, None) is None  # lazy: every 4th G step
    gan.g_step = 4
    torch.manual_seed(2)
    reg.g_step_term(gan, {"z": z}, None)
    assert torch.allclose(reg.pl_mean, mean + 0.01 * (closed_form(2).mean() - mean), atol=1e-6)
    restored = PathLength()
    restored.load_state_dict(reg.state_dict())
    assert torch.equal(restored.pl_mean, reg.pl_mean)


def test_manual_training_loop_with_path_length():
    """Three steps of SG2A's loop by hand: D logistic NS, G NS + path length; Adam (0, 0.99); everything moves."""
    torch.manual_seed(0)
    G, D = sg.Generator(4, (1, 8, 8), style_mixing=0.9, **TINY_G), sg.Discriminator((1, 8, 8), **TINY_D)
    opt_g, opt_d = (torch.optim.Adam(n.parameters(), lr=0.0025, betas=(0.0, 0.99)) for n in (G, D))
    reg, gan = PathLength(interval=1), SimpleNamespace(G=G, g_step=0, family_name=lambda: "gan")
    before = [p.detach().clone() for p in [*G.parameters(), *D.parameters()]]
    real = torch.rand(4, 1, 8, 8) * 2 - 1
    for step in range(3):
        d_loss = F.softplus(D(G(torch.randn(4, 4)).detach())).mean() + F.softplus(-D(real)).mean()
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        z = torch.randn(4, 4)
        gan.g_step = step
        g_loss = F.softplus(-D(G(z))).mean() + reg.g_step_term(gan, {"z": z}, None)
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        assert math.isfinite(float(d_loss)) and math.isfinite(float(g_loss))
    after = [*G.parameters(), *D.parameters()]
    moved = [not torch.equal(a, b) for a, b in zip(before, after)]
    assert sum(moved) > 0.9 * len(moved) and float(reg.pl_mean) > 0  # noise strengths start at 0 and may stay


# -- the CLI --------------------------------------------------------------------------------------------------------
COMMON = ["model=stylegan2", "data=digits", "optim.batch_size=4", "optim.z_dim=8", "optim.g_steps=3",
          "metrics=none", "logger=[csv]", "samples.every=0", "samples.num=8", "checkpoint.every=0",
          "model.generator.w_dim=8", "model.generator.channel_base=64", "model.generator.channel_max=8",
          "model.discriminator.channel_base=64", "model.discriminator.channel_max=8",
          "model.discriminator.mbstd_group_size=4", "model.discriminator.mapping_layers=2"]


@pytest.mark.parametrize("extra", [
    [],
    ["reg=[pl,r1]", "reg.pl.interval=2", "reg.r1.interval=2", "model.generator.style_mixing=0.9"],
    ["family=conditional", "reg=pl", "model.generator.truncation_psi=0.7", "family.class_metrics=false"],
    ["augment=diffaug", "reg=r1", "reg.r1.interval=2"],
], ids=["gan", "gan-pl-r1-mixing", "conditional-pl-truncation", "diffaug-lazy-r1"])
def test_trains_three_steps(run, tmp_path, extra):
    code, out = run(*COMMON, *extra)
    assert code == 0, out[-3000:]
    rec = result(tmp_path / "run")
    assert rec["status"] == "completed" and rec["g_steps"] == 3


@pytest.mark.parametrize("overrides, message", [
    (COMMON + ["model.generator.truncation_psi=1.5"], "model.generator.truncation_psi"),
    (["model=dcgan", "data=digits", "reg=pl", "metrics=none", "logger=[csv]"], "reg=pl needs a generator"),
    (COMMON + ["model.generator.init=normal_0.02"], "model.generator.init=normal_0.02"),
    (COMMON + ["reg=sn"], "spectral norm"),
    (COMMON + ["reg=l2"], "reg=l2"),
], ids=["psi", "pl-without-mapping", "init", "sn", "l2"])
def test_bad_input_is_one_line(run, overrides, message):
    code, out = run(*overrides)
    assert code == 2, out[-2000:]
    errors = [line for line in out.splitlines() if line.startswith("ganbench: error:")]
    assert len(errors) == 1 and message in errors[0], out[-2000:]


def test_path_length_mean_is_in_the_checkpoint(tmp_path):
    """pl_mean (running state of reg=pl) is saved by the module's checkpoint hook and restored on load."""
    from hydra import compose, initialize_config_dir

    from ganbench.build import build
    from ganbench.config import CONF_DIR

    overrides = ["metrics=none", "model=stylegan2", "reg=pl", "model.generator.channel_base=64",
                 "model.generator.channel_max=8", "model.discriminator.channel_base=64",
                 "model.discriminator.channel_max=8", "model.discriminator.mbstd_group_size=2"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    module, _, _ = build(cfg)
    module.regularizers["pl"].pl_mean = torch.tensor(0.375)
    checkpoint: dict = {}
    module.on_save_checkpoint(checkpoint)
    fresh, _, _ = build(cfg)
    fresh.on_load_checkpoint(checkpoint)
    assert float(fresh.regularizers["pl"].pl_mean) == 0.375


def test_the_stylegan2_ada_cifar_preset_is_train_pys_cifar_spec():
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from ganbench.config import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["experiment=stylegan2_ada/cifar10"])
    expected = {"optim.lr": 0.0025, "optim.beta1": 0.0, "optim.beta2": 0.99, "optim.batch_size": 64,
                "optim.z_dim": 512, "reg.r1.gamma": 0.01, "reg.r1.interval": 16, "reg.pl.weight": 0,
                "reg.pl.interval": 4, "ema.half_life_kimg": 500, "ema.rampup": 0.05, "augment.target": 0.6, "model.discriminator.mbstd_group_size": 32,
                "family.d_calls": "separate", "optim.g_steps": 100000 * 1000 // 64}
    assert {k: OmegaConf.select(cfg, k) for k in expected} == expected


def test_truncation_psi_is_in_the_run_protocol():
    """result.json's metrics.protocol.sampling names what evaluation samples went through (psi, cutoff, noise)."""
    from hydra import compose, initialize_config_dir

    from ganbench.build import build
    from ganbench.config import CONF_DIR

    overrides = ["metrics=none", "model=stylegan2", "model.generator.truncation_psi=0.7",
                 "model.generator.channel_base=64", "model.generator.channel_max=8",
                 "model.discriminator.channel_base=64", "model.discriminator.channel_max=8"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    module, _, _ = build(cfg)
    assert module.run_protocol()["sampling"] == {"truncation_psi": 0.7, "truncation_cutoff": None,
                                                 "noise_mode": "random"}


# lazy R1 and path length every 2nd step, ADA adapting p every D step (so p moves before the kill), half-life EMA
RESUME = [*COMMON, "optim.g_steps=6", "loss._target_=kill_loss.KillAt", "reg=[pl,r1]", "reg.pl.interval=2",
          "reg.r1.interval=2", "augment=ada", "augment.interval=1", "augment.kimg=0.01", "augment.target=0.1",
          "ema.decay=0", "+ema.half_life_kimg=0.01", "checkpoint.every=3", "log_every=1"]


def test_sigkill_then_rerun_ends_bitwise_with_pl_mean_and_ada_p(cli, run, tmp_path):
    """Killed in the D step of generator step 5 (after the checkpoint at 3): the rerun ends bitwise like an
    uninterrupted run, pl_mean and ADA's p included."""
    code, out = run(*RESUME, run_dir=tmp_path / "reference")
    assert code == 0, out[-3000:]
    killed = cli(*RESUME, env={"GANBENCH_TEST_KILL_AT": "5", "OMP_NUM_THREADS": "1"})
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert result(tmp_path / "run")["status"] == "running"
    code, out = run(*RESUME)
    assert code == 0, out[-3000:]
    ours, theirs = assert_same_last_checkpoint(tmp_path / "run", tmp_path / "reference")
    p = [k for k in ours["state_dict"] if k.endswith("augment.p")]
    assert p and float(ours["state_dict"][p[0]]) > 0  # p moved, and (above) equals the uninterrupted run's
    pl = [ckpt["ganbench"]["regularizers"]["pl"]["pl_mean"] for ckpt in (ours, theirs)]
    assert float(pl[0]) > 0 and torch.equal(*pl)
