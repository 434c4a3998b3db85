"""augment=ada: the p update on scripted signs (clamped to [0, 1]), each op as its exact transform and AugmentPipe's
draws, p=0 and p=1, gradients (double backward too), the checkpointed state, bad options, the grid_sample double
backward probe, and 3-step CLI runs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ganbench.ada import (ADA, OPS, add_noise, apply_color, brightness_matrix, contrast_matrix, cutout, hue_matrix,
                          lumaflip_matrix, rotate90, saturation_matrix, translate, xflip)
from ganbench.augment import DiffAugment
from ganbench.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_cpu_thread")


# -- the adaptive p ------------------------------------------------------------------------------------------------
def test_p_follows_the_update_formula_on_scripted_signs_and_is_clamped_to_0_1():
    # step = batch * interval / (kimg * 1000) = 4 * 2 / 20 = 0.4
    ada = ADA(p=0.0, target=0.6, interval=2, kimg=0.02, batch_size=4)
    pos, neg = torch.ones(4), -torch.ones(4)
    script = [  # (the two batches of logits of one interval, r_t, p after the interval)
        ((pos, pos), 1.0, 0.4),
        ((pos, 3 * pos), 1.0, 0.8),
        ((pos, pos), 1.0, 1.0),  # 1.2 clamped at 1
        ((torch.tensor([2.0, 1, -1, -3]), torch.tensor([1.0, 1, 1, -0.5])), 0.25, 0.6),  # (0 + 2) / 8 < 0.6
        ((neg, torch.tensor([-1.0, -1, 1, 1])), -0.5, 0.2),
        ((neg, neg), -1.0, 0.0),  # -0.2 clamped at 0
        ((torch.tensor([1.0, 1, 1, -1]), torch.tensor([1.0, 1, 0, 0])), 0.5, 0.0),  # zeros count 0; 0 - 0.4 -> 0
    ]
    for (first, second), rt, p in script:
        before = float(ada.p)
        ada.observe(first)
        assert float(ada.p) == before  # mid-interval: unchanged
        ada.observe(second)
        assert float(ada.rt) == pytest.approx(rt) and float(ada.p) == pytest.approx(p, abs=1e-6)
    assert int(ada.d_steps) == 2 * len(script) and float(ada.sign_count) == 0
    assert ada.scalars() == {"ada/p": pytest.approx(0.0), "ada/rt": pytest.approx(0.5)}


def test_r_t_equal_to_the_target_leaves_p_alone():
    ada = ADA(p=0.3, target=0.5, interval=1, kimg=0.001, batch_size=4)
    ada.observe(torch.tensor([1.0, 1, 1, -1]))  # r_t = 0.5: sign(0) = 0
    assert float(ada.p) == pytest.approx(0.3)


def test_fixed_mode_never_changes_p_but_reports_r_t():
    ada = ADA(adaptive=False, p=0.3, interval=1, kimg=0.001, batch_size=4)
    for logits in (torch.ones(4), -torch.ones(4), torch.ones(4)):
        ada.observe(logits)
        assert float(ada.p) == pytest.approx(0.3)
    assert float(ada.rt) == 1.0


def test_state_dict_round_trip_keeps_p_and_the_partial_interval():
    a = ADA(p=0.0, interval=3, kimg=0.1, batch_size=5)
    for logits in ([1.0, 2, -1], [1.0, 1, 1], [3.0, 1, 1], [-1.0, 1, 1]):  # one full interval, then one step
        a.observe(torch.tensor(logits))
    state = a.state_dict()
    assert {"p", "rt", "sign_sum", "sign_count", "d_steps"} <= set(state)
    b = ADA(p=0.0, interval=3, kimg=0.1, batch_size=5)
    b.load_state_dict(state)
    assert float(b.p) == pytest.approx(0.15) and float(b.sign_sum) == 1.0 and int(b.d_steps) == 4
    for logits in ([-1.0, -1, -1], [-1.0, -2, 1]):  # both finish the interval alike
        a.observe(torch.tensor(logits))
        b.observe(torch.tensor(logits))
    assert float(a.p) == float(b.p) and float(a.rt) == float(b.rt) == pytest.approx(-3 / 9)


def test_the_state_is_in_the_lightning_module_checkpoint():
    from hydra import compose, initialize_config_dir

    from ganbench.build import build
    from ganbench.config import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["metrics=none", *CLI[:5], "augment=ada", "optim.batch_size=6"])
    module, _, _ = build(cfg)
    assert module.augment.step_size == pytest.approx(6 * 4 / 500_000)  # batch_size: ${optim.batch_size}
    module.augment.p.fill_(0.42)
    state = module.state_dict()
    assert {f"augment.{k}" for k in ("p", "rt", "sign_sum", "sign_count", "d_steps")} <= set(state)
    again, _, _ = build(cfg)
    again.load_state_dict(state)
    assert float(again.augment.p) == pytest.approx(0.42)


# -- the ops as exact transforms -----------------------------------------------------------------------------------
def test_xflip_and_rotate90_are_exact_permutations():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    yes, no = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 0.0])
    flipped = xflip(x, yes)
    assert torch.equal(flipped[0], x[0, :, :, [3, 2, 1, 0]]) and torch.equal(flipped[1], x[1])
    assert torch.equal(xflip(flipped, yes), x) and torch.equal(xflip(x, no), x)
    k = torch.tensor([1.0, 3.0])
    once = rotate90(x, k)
    # one quarter turn: out[y][x] = in[x][W - 1 - y]
    hand = torch.stack([torch.stack([x[0, :, xx, 3 - yy] for xx in range(4)], -1) for yy in range(4)], -2)
    assert torch.equal(once[0], hand)
    out = x
    for _ in range(4):
        out = rotate90(out, k)
    assert torch.equal(out, x)
    assert torch.equal(rotate90(rotate90(x, torch.tensor([1.0, 1.0])), torch.tensor([3.0, 3.0])), x)


def test_integer_translation_reflects_at_the_border():
    row = torch.tensor([10.0, 11, 12, 13, 14, 15]).view(1, 1, 1, 6).expand(1, 1, 6, 6)
    right = translate(row, torch.tensor([2]), torch.tensor([0]))
    assert right[0, 0, 0].tolist() == [12, 11, 10, 11, 12, 13]  # in[x - 2], in[-1] = in[1] (reflect)
    left = translate(row, torch.tensor([-1]), torch.tensor([0]))
    assert left[0, 0, 0].tolist() == [11, 12, 13, 14, 15, 14]
    x = torch.randn(3, 2, 8, 8)
    tx, ty = torch.tensor([1, -2, 0]), torch.tensor([2, 1, -1])
    out = translate(x, tx, ty)
    for n in range(3):  # torch.roll where no pixel crossed the border
        rolled = torch.roll(x[n], shifts=(int(ty[n]), int(tx[n])), dims=(1, 2))
        rows = slice(max(ty[n], 0), 8 + min(ty[n], 0))
        cols = slice(max(tx[n], 0), 8 + min(tx[n], 0))
        assert torch.equal(out[n][:, rows, cols], rolled[:, rows, cols])
    assert torch.equal(translate(x, torch.zeros(3), torch.zeros(3)), x)


def test_color_matrices_on_rgb_and_grey():
    x = torch.randn(2, 3, 4, 4)
    b, c = torch.tensor([0.3, -0.2]), torch.tensor([2.0, 0.5])
    assert torch.allclose(apply_color(x, brightness_matrix(b)), x + b.view(-1, 1, 1, 1))
    assert torch.allclose(apply_color(x, contrast_matrix(c)), x * c.view(-1, 1, 1, 1))  # about 0, not the mean
    grey = torch.randn(2, 1, 4, 4).expand(-1, 3, -1, -1)
    assert torch.allclose(apply_color(grey, lumaflip_matrix(torch.ones(2))), -grey, atol=1e-6)
    flip = apply_color(x, lumaflip_matrix(torch.ones(2)))  # the luma (channel mean) flips, the chroma stays
    assert torch.allclose(flip.mean(1), -x.mean(1), atol=1e-6)
    assert torch.allclose(flip - flip.mean(1, keepdim=True), x - x.mean(1, keepdim=True), atol=1e-6)
    third = apply_color(x, hue_matrix(torch.full((2,), 2 * math.pi / 3)))  # a third of a turn permutes R, G, B
    assert torch.allclose(third, x[:, [2, 0, 1]], atol=1e-6)
    assert torch.allclose(apply_color(x, hue_matrix(torch.tensor([0.7, -2.0]))).mean(1), x.mean(1), atol=1e-6)
    assert torch.allclose(apply_color(x, saturation_matrix(torch.zeros(2))), x.mean(1, keepdim=True).expand_as(x),
                          atol=1e-6)
    assert torch.allclose(apply_color(x, saturation_matrix(torch.ones(2))), x, atol=1e-6)
    g = torch.randn(2, 1, 4, 4)  # grey: the mean row of the matrix
    assert torch.allclose(apply_color(g, brightness_matrix(b)), g + b.view(-1, 1, 1, 1))
    assert torch.allclose(apply_color(g, lumaflip_matrix(torch.ones(2))), -g, atol=1e-6)


def test_colour_on_grey_draws_like_augmentpipe():
    """brightness then contrast on 1 channel: b = N(0, 0.2), then c = 2^N(0, 0.5), each with its own coin; AugmentPipe
    composes C = scale(c) @ translate(b): out = (x + b) * c. Hue and saturation are skipped (no draws)."""
    x = torch.randn(6, 1, 4, 4)
    ada = ADA(p=0.5, ops=["brightness", "contrast", "hue", "saturation"])
    torch.manual_seed(3)
    out = ada(x)
    torch.manual_seed(3)
    b = torch.randn(6) * 0.2
    b = torch.where(torch.rand(6) < 0.5, b, 0.0)
    c = torch.exp2(torch.randn(6) * 0.5)
    c = torch.where(torch.rand(6) < 0.5, c, 1.0)
    assert torch.allclose(out, (x + b.view(-1, 1, 1, 1)) * c.view(-1, 1, 1, 1), atol=1e-6)


def test_cutout_and_noise():
    x = torch.ones(2, 1, 4, 4)
    out = cutout(x, torch.tensor([[0.5, 0.5], [0.0, 1.0]]), torch.tensor([0.5, 0.5]))
    hole = torch.zeros(4, 4)
    hole[1:3, 1:3] = 1  # pixel centres 0.375, 0.625 are within 0.25 of 0.5
    assert torch.equal(out[0, 0], 1 - hole)
    corner = torch.zeros(4, 4)
    corner[3, 0] = 1  # centre (0.125, 0.875) within 0.25 of (0, 1)
    assert torch.equal(out[1, 0], 1 - corner)
    assert torch.equal(cutout(x, torch.rand(2, 2), torch.zeros(2)), x)
    assert torch.equal(add_noise(x, torch.zeros(2)), x)
    torch.manual_seed(0)
    noisy = add_noise(torch.zeros(2, 1, 64, 64), torch.tensor([0.1, 0.3]))
    assert noisy[0].std().item() == pytest.approx(0.1, rel=0.05) and noisy[1].std().item() == pytest.approx(0.3,
                                                                                                           rel=0.05)


# -- the module ----------------------------------------------------------------------------------------------------
ALL = ["blit", "geom", "color", "noise", "cutout"]


@pytest.mark.parametrize("channels", [1, 3])
def test_p_zero_is_the_identity(channels):
    x = torch.randn(8, channels, 8, 8)
    assert torch.equal(ADA(p=0.0, ops=ALL)(x), x)


def test_p_one_fires_every_op_on_every_sample():
    ada = ADA(p=1.0, ops=ALL)
    assert all(ada._fires(op, 500, device="cpu").all() for op in OPS)
    x = torch.randn(16, 3, 8, 8)
    assert (ADA(p=1.0, ops=["cutout"])(x) == 0).flatten(1).any(1).all()
    shift = ADA(p=1.0, ops=["brightness"])(x) - x
    assert (shift.flatten(1).std(1) < 1e-5).all() and (shift.flatten(1).abs().mean(1) > 0).all()
    half = ADA(p=0.5, ops=ALL, multipliers={"noise": 0.5})
    assert half._fires("noise", 20000, device="cpu").float().mean().item() == pytest.approx(0.25, abs=0.02)
    assert not ADA(p=1.0, ops=["blit"])._fires("noise", 100, device="cpu").any()  # not listed: multiplier 0


def test_gradients_reach_the_images_and_r1_can_differentiate_through_the_pipeline():
    torch.manual_seed(0)
    ada = ADA(p=1.0, ops=ALL, diffaug=["translation"])
    x = torch.randn(4, 3, 8, 8, requires_grad=True)
    w = torch.nn.Parameter(torch.randn(1, 3, 3, 3))
    score = F.conv2d(ada(x), w).square().sum()
    (grad,) = torch.autograd.grad(score, x, create_graph=True)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    grad.square().sum().backward()  # R1's double backward
    assert torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0


def test_diffaug_runs_after_ada():
    x = torch.randn(4, 3, 8, 8)
    torch.manual_seed(5)
    out = ADA(p=0.0, ops=ALL, diffaug=["cutout"])(x)
    torch.manual_seed(5)
    same = ADA(p=0.0, ops=ALL)(x)  # the identity, after drawing ADA's parameters
    assert torch.equal(same, x) and torch.equal(out, DiffAugment(["cutout"])(same))
    assert not torch.equal(out, x)


BAD = {
    "target0": ({"target": 0.0}, "augment.target=0.0"),
    "target1": ({"target": 1.0}, "(0, 1)"),
    "p": ({"p": 1.5}, "augment.p=1.5"),
    "p_neg": ({"p": -0.1}, "[0, 1]"),
    "interval": ({"interval": 0}, "augment.interval=0"),
    "kimg": ({"kimg": 0}, "augment.kimg=0"),
    "filter": ({"ops": ["blit", "filter"]}, "not implemented"),
    "unknown": ({"ops": ["blur"]}, "augment.ops: unknown 'blur'"),
    "multiplier": ({"multipliers": {"xflip": -1}}, "augment.multipliers: xflip=-1"),
    "diffaug": ({"diffaug": ["zoom"]}, "augment.policy"),
}


@pytest.mark.parametrize("kwargs, words", BAD.values(), ids=BAD.keys())
def test_bad_options_raise_one_line(kwargs, words):
    with pytest.raises(ConfigError) as err:
        ADA(**kwargs)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_bad_images_raise():
    with pytest.raises(ConfigError, match="needs images"):
        ADA(p=1.0)(torch.randn(4, 2))
    with pytest.raises(ConfigError, match="1 or 3 channels"):
        ADA(p=1.0, ops=["color"])(torch.randn(2, 2, 4, 4))
    with pytest.raises(ConfigError, match="square"):
        ADA(p=1.0, ops=["rotate90"])(torch.randn(2, 1, 4, 8))


def test_grid_sample_has_a_double_backward():
    """Outcome (torch 2.14): F.grid_sample supports double backward w.r.t. its input, so R1 through a resampling
    (AugmentPipe's geometric ops, tests/test_ada_geometric.py) works."""
    x = torch.randn(1, 1, 6, 6, dtype=torch.float64, requires_grad=True)
    theta = torch.tensor([[[0.9, 0.2, 0.1], [-0.2, 0.9, 0.0]]], dtype=torch.float64)
    grid = F.affine_grid(theta, x.shape, align_corners=False)
    assert torch.autograd.gradgradcheck(lambda t: F.grid_sample(t, grid, align_corners=False), (x,))


# -- through the CLI -----------------------------------------------------------------------------------------------
CLI = ["model=dcgan", "data=digits", "data.resolution=8", "model.generator.width=8", "model.discriminator.width=8",
       "optim.batch_size=8", "optim.g_steps=3", "log_every=1", "logger=[csv]", "metrics=none", "samples.every=0",
       "checkpoint.every=0", "augment=ada"]


@pytest.mark.parametrize("extra", [["augment.adaptive=false", "augment.p=0.5", "reg=r1", "augment.ops=[blit,color,"
                                    "noise,cutout]"],
                                   ["augment.interval=1", "augment.kimg=0.008"]], ids=["fixed_r1", "adaptive"])
def test_training_runs_and_logs_p(run, tmp_path, extra):
    import pandas as pd

    from conftest import result

    code, out = run(*CLI, *extra)
    assert code == 0, out[-3000:]
    assert result(tmp_path / "run")["status"] == "completed"
    rows = pd.read_csv(tmp_path / "run" / "metrics.csv").dropna(subset=["loss/d"])
    assert len(rows) == 3 and {"ada/p", "ada/rt"} <= set(rows.columns) and np.isfinite(rows["loss/d"]).all()
    if "augment.adaptive=false" in extra:
        assert (rows["ada/p"] == 0.5).all()
    else:  # step = 8 * 1 / 8 = 1: p jumps to 0 or 1 each D step, following sign(r_t - 0.6)
        assert (rows["ada/rt"] != 0).any()  # the loop called observe()
        assert set(rows["ada/p"]) <= {0.0, 1.0}
        assert ((rows["ada/p"] == 1.0) == (rows["ada/rt"] > 0.6)).all()


LEARN = ["model=dcgan", "data=digits", "data.resolution=8", "data.n_train=100", "model.generator.width=16",
         "model.discriminator.width=16", "optim.batch_size=16", "optim.g_steps=100", "log_every=1", "logger=[csv]",
         "metrics=none", "samples.every=0", "checkpoint.every=0", "augment=ada", "augment.ops=[blit,color]"]


def test_learning_d_overfits_100_digits_without_ada_and_ada_raises_p(run, tmp_path):
    """A learning test that can fail: on 100 digits D's r_t = E[sign(D(real))] climbs to 1 when p stays 0 (the
    control: ADA observing only); with ADA adapting (kimg 1, so p can move within the run) p rises from 0, stays in
    [0, 1], and holds r_t below the control's."""
    import pandas as pd

    def series(*extra, where):
        code, out = run(*LEARN, *extra, run_dir=tmp_path / where)
        assert code == 0, out[-3000:]
        return pd.read_csv(tmp_path / where / "metrics.csv").dropna(subset=["ada/rt"])

    control = series("augment.adaptive=false", "augment.p=0", where="control")
    ada = series("augment.kimg=1", where="ada")
    assert (control["ada/p"] == 0).all() and control["ada/rt"].tail(10).mean() > 0.8
    p = ada["ada/p"]
    assert p.between(0, 1).all() and p.tail(10).mean() > 0.05
    assert ada["ada/rt"].tail(20).mean() < control["ada/rt"].tail(20).mean()
