"""family=progan / model=progan: the official lod arithmetic, fades and equalized lr on fixed tensors, the
optimizer reset, short CLI runs with augmentations and lazy R1, exact resume after SIGKILL mid-fade, bad input."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir

from conftest import assert_same_last_checkpoint, result
from ganbench.build import build
from ganbench.config import CONF_DIR
from ganbench.errors import ConfigError
from ganbench.families.progan import fade_reals, lod_changed, steps_for_kimg, training_lod
from ganbench.nets.progan import Discriminator, EqualizedConv2d, EqualizedLinear, Generator, upscale

pytestmark = pytest.mark.usefixtures("one_cpu_thread")

TINY = {"fmap_base": 32, "fmap_max": 8}
NETS = [f"model.{net}.{k}={v}" for net in ("generator", "discriminator") for k, v in TINY.items()]
# digits at 8 px, batch 4: 4x4 for 2 D steps, then 8x8 fading in over 4 D steps (lod 1, 1, 1, .75, .5, .25, 0, ...)
BASE = ["family=progan", "optim.batch_size=4", "optim.z_dim=8", "metrics=none", "logger=[csv]", "samples.every=0",
        "samples.num=8", "checkpoint.every=0", "log_every=1", "family.training_kimg=0.008",
        "family.transition_kimg=0.016", "family.minibatch_repeats=1"]
COMMON = [*BASE, "data.resolution=8", *NETS]


def composed(*overrides):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


@pytest.fixture(scope="module")
def progan_cfg():
    return composed(*COMMON)


# -- the official arithmetic on fixed numbers ----------------------------------------------------------------------
@pytest.mark.parametrize("kimg, lod", [(0, 5.0), (300, 5.0), (600, 5.0), (900, 4.5), (1200, 4.0), (1650, 4.0),
                                       (2100, 3.5), (5850, 0.25), (6000, 0.0), (9000, 0.0)])
def test_lod_follows_train_pys_training_schedule_at_128_px(kimg, lod):
    """res_log2 7, 600 + 600 kimg per phase: lod = 7 - 2 - phase - max(phase_kimg - 600, 0) / 600, clipped at 0."""
    assert training_lod(kimg * 1000, 7) == pytest.approx(lod)


def test_lod_with_a_larger_initial_resolution_and_no_transition():
    assert training_lod(0, 5, initial_resolution=8) == 2.0
    assert training_lod(700_000, 5, transition_kimg=0) == 2.0  # phase 1 of 600 kimg each, no fade
    # 2 reals per step while 4x4 is active (nimg 0, 2, 4), then 4 (fade at nimg 6, 8x8 at 10, 14): 6 steps to 16
    assert steps_for_kimg(0.016, 3, {4: 2}, 4, minibatch_repeats=1, training_kimg=0.004, transition_kimg=0.004) == 6


def linear_g(G: Generator, z: torch.Tensor, lod: float) -> torch.Tensor:
    """networks.py G_paper's 'linear' structure: every resolution computed, lerp_clip(img, up(out), lod - lod_r)."""
    x = G.blocks[0](z)
    out = G.torgb[0](x)
    for r in range(3, G.res_log2 + 1):
        x = G.blocks[r - 2](x)
        img = G.torgb[r - 2](x)
        out = upscale(out, 2)
        out = img + (out - img) * min(max(lod - (G.res_log2 - r), 0.0), 1.0)
    return out


def linear_d(D: Discriminator, x: torch.Tensor, lod: float) -> torch.Tensor:
    """D_paper's 'linear' structure: fromrgb at full size, then per block lerp_clip(x, fromrgb(downscale(img)), ...)."""
    img, h = x, F.leaky_relu(D.fromrgb[-1](x), 0.2)
    for r in range(D.res_log2, 2, -1):
        h = D.blocks[r - 3](h)
        img = F.avg_pool2d(img, 2)
        y = F.leaky_relu(D.fromrgb[r - 3](img), 0.2)
        h = h + (y - h) * min(max(lod - (D.res_log2 - r), 0.0), 1.0)
    from ganbench.nets.stylegan2 import minibatch_std
    h = F.leaky_relu(D.conv(minibatch_std(h, 4, 1)), 0.2)
    return D.head(F.leaky_relu(D.dense(h.flatten(1)), 0.2)).flatten()


@pytest.mark.parametrize("side", [4, 8, 16, 32])
def test_nets_at_every_lod_equal_the_official_linear_structure(side):
    torch.manual_seed(0)
    G, D = Generator(8, (3, side, side), **TINY), Discriminator((3, side, side), **TINY)
    z = torch.randn(4, 8)
    for lod in sorted({0.0, 0.25, 0.5, 1.0, 1.75, G.max_lod - 0.5, float(G.max_lod)}):
        if not 0 <= lod <= G.max_lod:
            continue
        G.set_lod(lod), D.set_lod(lod)
        with torch.no_grad():
            x = G(z)
            assert x.shape == (4, 3, side, side)
            torch.testing.assert_close(x, linear_g(G, z, lod), rtol=1e-5, atol=1e-6)
            assert D(x).shape == (4,) and D.features(x).shape == (4, D.feature_dim)
            torch.testing.assert_close(D(x), linear_d(D, x, lod), rtol=1e-5, atol=1e-6)


def test_generator_fade_is_the_hand_lerp_of_new_and_upscaled_old_rgb():
    torch.manual_seed(1)
    G = Generator(8, (1, 16, 16), **TINY)
    z = torch.randn(2, 8)
    G.set_lod(1.25)  # 8x8 active, 4x4 weighing 0.25, then nearest x2 to 16x16
    with torch.no_grad():
        h4 = G.blocks[0](z)
        new, old = G.torgb[1](G.blocks[1](h4)), G.torgb[0](h4)
        want = new + (old.repeat_interleave(2, 2).repeat_interleave(2, 3) - new) * 0.25
        assert torch.equal(G(z), want.repeat_interleave(2, 2).repeat_interleave(2, 3))
        G.set_lod(2.0)  # 4x4 only, blown up 4x
        assert torch.equal(G(z), G.torgb[0](h4).repeat_interleave(4, 2).repeat_interleave(4, 3))


def test_equalized_lr_scales_weights_by_the_he_constant_at_run_time_and_not_the_bias():
    torch.manual_seed(2)
    conv, x = EqualizedConv2d(3, 5, 3), torch.randn(2, 3, 6, 6)
    with torch.no_grad():
        conv.bias.fill_(0.5)
        want = F.conv2d(x, conv.weight * math.sqrt(2) / math.sqrt(3 * 9), padding=1) + 0.5
        torch.testing.assert_close(conv(x), want)
    assert conv.weight.std().item() == pytest.approx(1.0, abs=0.2) and torch.equal(EqualizedConv2d(3, 5, 3).bias,
                                                                                     torch.zeros(5))
    fc = EqualizedLinear(7, 2, gain=1.0)
    torch.testing.assert_close(fc(torch.ones(1, 7)), (fc.weight.sum(1) / math.sqrt(7)).unsqueeze(0))
    G = Generator(16, (1, 8, 8), **TINY)
    assert G.blocks[0].dense.scale == pytest.approx(math.sqrt(2) / 4 / 4)  # gain sqrt(2)/4, fan_in 16
    assert G.torgb[0].scale == pytest.approx(1 / math.sqrt(8))            # toRGB gain 1, fan_in 8 channels


def test_downscaling_conv_pools_before_its_bias_and_activation():
    torch.manual_seed(3)
    conv, x = EqualizedConv2d(2, 3, 3, down=True), torch.randn(1, 2, 4, 4)
    want = F.avg_pool2d(F.conv2d(x, conv.weight * conv.scale, padding=1), 2) + conv.bias.reshape(1, -1, 1, 1)
    torch.testing.assert_close(conv(x), want)


def test_reals_are_cross_faded_as_process_reals():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert torch.equal(fade_reals(x, 0.0), x)
    faded = fade_reals(x, 0.25)  # lerp(x, upscale(avgpool2(x)), 0.25): top-left cell's mean is 2.5
    assert faded[0, 0, 0, 0] == 0.625 and faded[0, 0, 1, 1] == 5 + (2.5 - 5) * 0.25
    half = torch.tensor([[2.5, 4.5], [10.5, 12.5]])
    assert torch.equal(fade_reals(x, 1.0)[0, 0], half.repeat_interleave(2, 0).repeat_interleave(2, 1))
    mixed = half + (7.5 - half) * 0.5  # at lod 1.5 the 2x2 level fades toward its 1x1 mean 7.5
    assert torch.equal(fade_reals(x, 1.5)[0, 0], mixed.repeat_interleave(2, 0).repeat_interleave(2, 1))


# -- the family --------------------------------------------------------------------------------------------------
def test_optimizers_reset_when_floor_or_ceil_of_lod_changes(progan_cfg):
    assert lod_changed(2.99, 3.0) and lod_changed(2.0, 2.25) and lod_changed(2.0, -1.0)
    assert not lod_changed(2.5, 2.75) and not lod_changed(3.0, 3.0)
    module, _, _ = build(progan_cfg)
    opts = module.configure_optimizers()
    module.optimizers = lambda: opts
    for opt, net in zip(opts, (module.G, module.D)):
        for p in net.parameters():
            p.grad = torch.ones_like(p)
        opt.step()
    sizes = [len(o.state) for o in opts]
    module.nimg = 4  # lod 1 -> 1: the same level, the moments stay
    module.advance_schedule()
    assert [len(o.state) for o in opts] == sizes and module.lod == 1.0
    module.nimg = 12  # kimg 0.012: lod 0.75, the fade begins: both Adams forget everything
    module.advance_schedule()
    assert [len(o.state) for o in opts] == [0, 0] and opts[0].param_groups[0]["lr"] == 0.001
    assert module.G.lod == module.D.lod == module.G_ema.module.lod == 0.75
    proto = module.run_protocol()["family"]["progressive_growing"]
    assert proto["resolution"] == 8 and proto["output_side"] == 8 and "nearest-upsampled" in proto["samples"]


@pytest.mark.parametrize("extra", [["augment=ada", "augment.interval=1", "reg=r1", "reg.r1.interval=4",
                                    "optim.g_steps=5"],
                                   ["augment=diffaug", "family.minibatch={4:2,8:4}", "family.pack=2",
                                    "optim.g_steps=6"]],
                         ids=["ada-lazy-r1", "diffaug-minibatch-pack"])
def test_trains_a_few_steps_through_the_fade(run, tmp_path, extra):
    code, out = run(*COMMON, *extra)
    assert code == 0, out[-3000:]
    assert result(tmp_path / "run")["status"] == "completed"
    import pandas as pd

    rows = pd.read_csv(tmp_path / "run" / "metrics.csv").dropna(subset=["loss/d"])
    assert rows["progan/lod"].iloc[0] == 1.0 and rows["progan/lod"].iloc[-1] < 1.0
    if "reg=r1" in extra:  # lazy: the penalty only every 4th D step
        assert rows["reg/r1"].notna().sum() == 2 and "loss/drift" in rows
    else:  # 2 reals per D step at 4x4 (lod 1 until 8 images), then 4 at 8x8 (lod 0.875)
        assert rows["progan/kimg"].tolist() == pytest.approx([0.002, 0.004, 0.006, 0.008, 0.010, 0.014])
        assert rows["progan/resolution"].tolist() == [4.0] * 5 + [8.0]


RESUME = [*COMMON, "optim.g_steps=8", "loss._target_=kill_loss.KillAtWGAN", "checkpoint.every=4"]


def test_sigkill_mid_fade_then_rerun_ends_bitwise_like_an_uninterrupted_run(cli, run, tmp_path):
    """Checkpoint after G step 4 (lod .5 next), killed in the D step of G step 6 (lod .25): the rerun resumes mid-fade
    and ends bitwise like the uninterrupted run: weights, lod buffers, Adam states, images seen."""
    code, out = run(*RESUME, run_dir=tmp_path / "reference")
    assert code == 0, out[-3000:]
    killed = cli(*RESUME, env={"GANBENCH_TEST_KILL_AT": "6", "OMP_NUM_THREADS": "1"})
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert result(tmp_path / "run")["status"] == "running"
    code, out = run(*RESUME)
    assert code == 0, out[-3000:]
    ours, theirs = assert_same_last_checkpoint(tmp_path / "run", tmp_path / "reference")
    assert ours["ganbench"]["family_state"] == theirs["ganbench"]["family_state"] == {"nimg": 32, "sched_nimg": 28}
    assert float(ours["state_dict"]["G_ema.module.lod"]) == 0.0


# -- bad input -----------------------------------------------------------------------------------------------------
def test_bad_input_is_one_line(run, tmp_path):
    code, out = run(*BASE, *NETS, "data=polygons", "data.resolution=12", "data.n_train=16", "data.n_test=8")
    assert code == 2, out[-2000:]
    errors = [line for line in out.splitlines() if line.startswith("ganbench: error:")]
    assert len(errors) == 1 and "Traceback" not in out, out[-2000:]
    assert "power of two >= 4" in errors[0] and "(3, 12, 12)" in errors[0]


@pytest.mark.parametrize("key, value, message", [
    ("family.minibatch", {8: 16}, "family.minibatch[8]=16"),
    ("family.minibatch", {8: 4}, "mbstd_group_size=3"),
    ("family.minibatch", {64: 2}, "family.minibatch has resolution 64"),
    ("family.initial_resolution", 16, "family.initial_resolution"),
    ("family.transition_kimg", -1, "family.transition_kimg"),
    ("family", {"pack": 2, "minibatch": {4: 3}}, "family.pack=2 must divide"),
], ids=["batch", "mbstd", "resolution", "initial", "kimg", "pack"])
def test_bad_settings_are_config_errors(progan_cfg, key, value, message):
    from omegaconf import OmegaConf

    cfg = progan_cfg.copy()
    OmegaConf.update(cfg, key, value, merge=key == "family")
    OmegaConf.update(cfg, "model.discriminator.mbstd_group_size", 3 if message.startswith("mbstd") else 4)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        build(cfg)


def test_family_progan_needs_model_progan():
    with pytest.raises(ConfigError, match="family=progan grows model=progan's networks"):
        build(composed(*BASE, "model=dcgan", "data.resolution=8"))


def test_progan_nets_refuse_other_sides():
    with pytest.raises(ConfigError, match="power of two"):
        Generator(8, (1, 12, 12))
    with pytest.raises(ConfigError, match=">= 4"):
        Discriminator((1, 2, 2))


# -- presets -------------------------------------------------------------------------------------------------------
def test_the_celeba128_preset_is_config_pys_preset_v2_1gpu():
    from omegaconf import OmegaConf

    cfg = composed("experiment=progan/celeba128")
    minibatch = {4: 128, 8: 128, 16: 128, 32: 64, 64: 32, 128: 16}
    expected = {"family._target_": "ganbench.families.progan.ProGAN", "model.name": "progan",
                "loss._target_": "ganbench.losses.Wasserstein", "reg.gp.weight": 10.0, "reg.gp.eps": 0.0,
                "family.drift": 0.001, "family.training_kimg": 600, "family.transition_kimg": 600,
                "family.minibatch_repeats": 4, "family.d_calls": "separate", "optim.lr": 0.001, "optim.beta1": 0.0,
                "optim.beta2": 0.99, "optim.z_dim": 512, "data.resolution": 128, "ema.decay": 0.999,
                "model.discriminator.mbstd_group_size": 4, "model.generator.fmap_base": 8192,
                "optim.g_steps": steps_for_kimg(12000, 7, minibatch, 128)}
    assert {k: OmegaConf.select(cfg, k) for k in expected} == expected
    assert dict(cfg.family.minibatch) == minibatch
    mini = composed("experiment=progan/mini")
    assert mini.optim.g_steps == steps_for_kimg(12, 4, dict(mini.family.minibatch), 32, training_kimg=2,
                                                transition_kimg=2)
