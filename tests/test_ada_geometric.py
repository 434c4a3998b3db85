"""augment=ada's geometric ops (ganbench/ada_geometric.py): each op as its exact transform on fixed tensors, the
composed matrix against a hand-built product, AugmentPipe's draw order, p=0 / p=1, gradients and R1's double
backward through the resampling, and a CLI run with reg=r1 and the default [blit, geom, color]."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ganbench import ada_geometric as geo
from ganbench.ada import ADA, rotate90, translate
from ganbench.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def _images(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _smooth(n: int, side: int) -> torch.Tensor:
    """Low-frequency RGB images (the resampling low-passes; a smooth image shows the geometry alone)."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, side), torch.linspace(-1, 1, side), indexing="ij")
    return torch.stack([torch.sin(2 * xx + c) * torch.cos(3 * yy - c) for c in range(3)]).expand(n, -1, -1,
                                                                                                 -1).contiguous()


def _eye(n: int) -> torch.Tensor:
    return torch.eye(3).expand(n, 3, 3)


def _n(value: float, n: int = 2) -> torch.Tensor:
    return torch.full((n,), float(value))


# -- each op as its exact transform --------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (2, 1, 8, 12)], ids=["square", "8x12"])
def test_scale_1_and_rotate_0_are_the_identity(shape):
    x = _images(*shape)
    g = geo.geometric_matrix(_n(1), _n(0), _n(1), _n(0), _n(0), _n(0))
    assert torch.equal(g, _eye(2))  # exact: 1 and 0 entries only
    assert (geo.resample(x, g) - x).abs().max() < 1e-5  # sym6 up then down is the identity (orthogonal wavelet)
    assert geo.transform(x, g) is x  # nothing fired: not resampled at all


def test_rotation_by_a_quarter_turn_is_rotate90_up_to_the_resampling():
    x = _smooth(2, 16)
    out = geo.resample(x, geo.rotate_matrix(_n(math.pi / 2)))
    assert (out - rotate90(x, _n(1))).abs().max() < 0.05  # sym6 is not symmetric: a low-passed quarter turn
    assert (out - rotate90(x, _n(3))).abs().max() > 1  # and not the other way round
    minus = geo.resample(x, geo.rotate_matrix(_n(-math.pi / 2)))
    assert (minus - rotate90(x, _n(3))).abs().max() < 0.05


def test_an_integer_translation_is_the_reflecting_shift():
    x = _images(2, 3, 16, 16)
    tx, ty = torch.tensor([2.0, -3.0]), torch.tensor([1.0, 2.0])
    out = geo.resample(x, geo.geometric_matrix(_n(1), _n(0), _n(1), _n(0), tx, ty))
    exact = translate(x, tx, ty)  # out[y, x] = in[y - ty, x - tx], reflected at the border
    assert (out - exact)[..., 3:-3, 3:-3].abs().max() < 1e-5  # interior
    assert (out - exact).abs().max() < 1e-5  # AugmentPipe's reflect padding: the border too
    for n in range(2):  # = torch.roll where no pixel crossed the border
        rolled = torch.roll(x[n], shifts=(int(ty[n]), int(tx[n])), dims=(1, 2))
        assert (out[n, :, 4:-4, 4:-4] - rolled[:, 4:-4, 4:-4]).abs().max() < 1e-5


def test_scale_and_aniso_move_pixels_as_the_matrix_says():
    """A zoom by s = 2 about the centre: the output at offset d from the centre reads the input at d / 2; aniso
    (a, 1/a) stretches x by a and shrinks y. On a linear ramp (values within +-0.6): sym6 is not linear-phase, so
    away from the identity the resampling shifts by a few hundredths of a pixel (as AugmentPipe's)."""
    side = 16
    c = (side - 1) / 2
    xs = torch.arange(side, dtype=torch.float32) - c
    ramp = (xs.view(1, side) * 0.05 + xs.view(side, 1) * 0.03).expand(1, 1, side, side)
    zoom = geo.resample(ramp, geo.geometric_matrix(torch.tensor([2.0]), *[torch.tensor([v]) for v in (0, 1, 0, 0,
                                                                                                      0)]))
    assert (zoom - ramp / 2)[..., 4:-4, 4:-4].abs().max() < 5e-3
    aniso = geo.resample(ramp, geo.geometric_matrix(*[torch.tensor([v]) for v in (1, 0, 2, 0, 0, 0)]))
    want = xs.view(1, side) * 0.05 / 2 + xs.view(side, 1) * 0.03 * 2
    assert (aniso[0, 0] - want)[5:-5, 5:-5].abs().max() < 5e-3


# -- the composition and the draws ---------------------------------------------------------------------------------
def _hand(s, pre, a, post, tx, ty) -> np.ndarray:
    def rot(t):
        return np.array([[math.cos(t), -math.sin(t), 0], [math.sin(t), math.cos(t), 0], [0, 0, 1]])

    scale = np.diag([1 / s, 1 / s, 1])
    aniso = np.diag([1 / a, a, 1])
    shift = np.array([[1, 0, -tx], [0, 1, -ty], [0, 0, 1]])
    return scale @ rot(pre) @ aniso @ rot(post) @ shift


def test_the_composed_matrix_is_the_hand_built_product():
    draws = [(1.3, 0.4, 0.8, -2.1, 1.5, -0.7), (0.9, -1.0, 1.2, 0.3, -2.25, 3.0)]
    cols = [torch.tensor(col) for col in zip(*draws)]
    g = geo.geometric_matrix(*cols)
    for n, d in enumerate(draws):
        np.testing.assert_allclose(g[n].numpy(), _hand(*d), atol=1e-6)


def test_the_draws_follow_augmentpipe_order_and_p_rot():
    """AugmentPipe draws value then coin per op: scale (randn, rand), pre-rotation (rand, rand), aniso (randn, rand),
    post-rotation (rand, rand), xfrac (randn (N, 2), rand (N, 1)); rotations fire with p_rot = 1 - sqrt(1 - p)."""
    n, p, h, w = 6, 0.6, 8, 12
    torch.manual_seed(4)
    g = geo.draw_matrix(n, torch.tensor(p), {"scale": 1, "rotate": 1, "aniso": 1, "xfrac": 1}, h, w, "cpu")
    torch.manual_seed(4)
    p_rot = 1 - math.sqrt(1 - p)
    s = torch.exp2(torch.randn(n) * 0.2)
    s = torch.where(torch.rand(n) < p, s, 1.0)
    pre = (torch.rand(n) * 2 - 1) * math.pi
    pre = torch.where(torch.rand(n) < p_rot, pre, 0.0)
    a = torch.exp2(torch.randn(n) * 0.2)
    a = torch.where(torch.rand(n) < p, a, 1.0)
    post = (torch.rand(n) * 2 - 1) * math.pi
    post = torch.where(torch.rand(n) < p_rot, post, 0.0)
    t = torch.randn(n, 2) * 0.125
    t = torch.where(torch.rand(n, 1) < p, t, 0.0)
    for i in range(n):
        d = (s[i], pre[i], a[i], post[i], t[i, 0] * w, t[i, 1] * h)
        np.testing.assert_allclose(g[i].numpy(), _hand(*map(float, d)), atol=1e-5)
    assert (pre != 0).any() and (pre == 0).any() and (s != 1).any()  # seed 4 exercises both coins


def test_ada_composes_the_integer_shift_with_the_geometric_matrix():
    """ops [xint, geom]: G_inv = T(-round(t * side)) G_geom, one resampling (AugmentPipe's composition)."""
    x = _images(4, 3, 8, 8)
    torch.manual_seed(7)
    out = ADA(p=0.8, ops=["xint", "geom"])(x)
    torch.manual_seed(7)
    t = (torch.rand(4, 2) * 2 - 1) * 0.125
    t = torch.round(torch.where(torch.rand(4, 1) < 0.8, t, 0.0) * 8)
    g = geo.draw_matrix(4, torch.tensor(0.8), dict.fromkeys(geo.OPS, 1.0), 8, 8, "cpu")
    g = geo.translate_matrix(-t[:, 0], -t[:, 1]) @ g
    assert (out - geo.resample(x, g)).abs().max() < 1e-6


# -- the module ----------------------------------------------------------------------------------------------------
def test_p_zero_leaves_images_unchanged_and_p_one_changes_every_sample():
    x = _images(4, 3, 8, 8)
    assert torch.equal(ADA(p=0.0, ops=["blit", "geom", "color"])(x), x)
    torch.manual_seed(0)
    for op in geo.OPS:  # p = 1: every op fires on every sample (rotate: p_rot = 1)
        out = ADA(p=1.0, ops=[op])(x)
        assert ((out - x).flatten(1).abs().amax(1) > 1e-3).all(), op
    torch.manual_seed(0)
    g = geo.draw_matrix(500, torch.tensor(1.0), dict.fromkeys(geo.OPS, 1.0), 8, 8, "cpu")
    assert not (g == _eye(1)).all(-1).all(-1).any()


def test_every_op_is_differentiable_and_r1_differentiates_through_the_resampling():
    """The resampling is linear, out = A x: its backward must be the adjoint (<A^T u, w> = <u, A w>) and its double
    backward (the derivative of A^T u w.r.t. u, what R1 needs) A itself. Then R1 as StyleGAN2-ADA takes it: the
    gradient of D(aug(x)) w.r.t. the un-augmented x, then backward of its squared norm into D's weights."""
    g = geo.geometric_matrix(*[torch.tensor([v, -v / 2], dtype=torch.float64) for v in (1.2, 0.3, 0.9, -0.5, 0.4,
                                                                                       -0.3)])
    x = _images(2, 3, 8, 8).double().requires_grad_()
    u = _images(2, 3, 8, 8, seed=1).double().requires_grad_()
    w = _images(2, 3, 8, 8, seed=2).double()
    (adjoint,) = torch.autograd.grad((geo.resample(x, g) * u).sum(), x, create_graph=True)  # A^T u
    assert torch.allclose((adjoint * w).sum(), (geo.resample(w, g) * u).sum())
    (second,) = torch.autograd.grad((adjoint * w).sum(), u)  # d<A^T u, w>/du = A w
    assert torch.allclose(second, geo.resample(w, g)) and second.abs().sum() > 0
    torch.manual_seed(0)
    for ops in (["scale"], ["rotate"], ["aniso"], ["xfrac"], ["blit", "geom", "color"]):
        ada = ADA(p=1.0, ops=ops)
        real = _images(2, 3, 8, 8).requires_grad_()
        w = torch.nn.Parameter(_images(2, 3, 3, 3, seed=1))
        score = F.conv2d(ada(real), w).square().sum()
        (grad,) = torch.autograd.grad(score, real, create_graph=True)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, ops
        grad.square().sum().backward()
        assert torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0, ops


def test_imgfilter_is_still_refused_in_one_line():
    with pytest.raises(ConfigError) as err:
        ADA(ops=["blit", "geom", "filter"])
    assert "'filter'" in str(err.value) and "not implemented" in str(err.value) and "\n" not in str(err.value)
    assert ADA(ops=["geom"], multipliers={"rotate": 0.5}).multipliers["rotate"] == 0.5


# -- through the CLI -----------------------------------------------------------------------------------------------
CLI = ["model=dcgan", "data=digits", "data.resolution=8", "model.generator.width=8", "model.discriminator.width=8",
       "optim.batch_size=4", "optim.g_steps=2", "log_every=1", "logger=[csv]", "metrics=none", "samples.every=0",
       "checkpoint.every=0", "augment=ada", "augment.adaptive=false", "augment.p=0.8", "reg=r1"]


def test_training_with_bgc_and_r1_runs(run, tmp_path):
    import pandas as pd

    from conftest import result

    code, out = run(*CLI)  # the default ops: [blit, geom, color]
    assert code == 0, out[-3000:]
    assert result(tmp_path / "run")["status"] == "completed"
    rows = pd.read_csv(tmp_path / "run" / "metrics.csv").dropna(subset=["loss/d"])
    assert len(rows) == 2 and np.isfinite(rows["loss/d"]).all() and np.allclose(rows["ada/p"], 0.8)
