"""ADA's general geometric augmentations (scale, rotate, aniso, xfrac) as StyleGAN2-ADA's ``AugmentPipe`` does them.

Source: NVlabs/stylegan2-ada-pytorch@d72cc7d ``training/augment.py`` (``AugmentPipe.forward``: "Select parameters
for general geometric transformations" and "Execute geometric transformations"), ``torch_utils/ops/upfirdn2d.py``
and ``torch_utils/ops/grid_sample_gradfix.py``; rewritten, not copied.

The ops build one inverse matrix per sample, ``G_inv @ pixel_out = pixel_in`` in pixel units about the image
centre (x right, y down). Each op draws its parameter, then its coin (probability ``m p``, m its multiplier), from
torch's global RNG in AugmentPipe's order, and right-multiplies G_inv:

    scale:        s = 2^N(0, 0.2)                         G_inv <- G_inv S(1/s, 1/s)
    rotate (pre): theta ~ U(-pi, pi), coin p_rot          G_inv <- G_inv R(theta)
    aniso:        a = 2^N(0, 0.2)                         G_inv <- G_inv S(1/a, a)
    rotate (post): a second theta, coin p_rot             G_inv <- G_inv R(theta)
    xfrac:        t = N(0, 0.125) * (W, H) pixels          G_inv <- G_inv T(-t_x, -t_y)

with R(theta) = [[cos, -sin], [sin, cos]] and p_rot = 1 - sqrt(1 - m p), so that P(pre or post) = m p. The blit
ops come before (``ganbench/ada.py``): AugmentPipe's G_inv = F R90 T_int G_geom (flips, quarter turns, integer
shift, then the ops above), i.e. the image is blitted, then transformed.

Execution (``resample``), as AugmentPipe: map the four image corners by G_inv, pad every side by the batch's largest
overhang + 2 * Hz_pad pixels (Hz_pad = 12 taps // 4 = 3), clamped to [0, side - 1], with *reflection*; upsample 2x
with the sym6 wavelet low-pass (upfirdn2d, gain 4); ``affine_grid`` + ``grid_sample`` (bilinear, zeros outside,
align_corners=False) onto a (2 (H + 2 Hz_pad), 2 (W + 2 Hz_pad)) canvas; downsample 2x with the flipped sym6
filter and crop Hz_pad on every side. sym6 is orthogonal, so with G_inv = I the up/down pair is the identity (to
float rounding), and an integer shift is exact too; a rotation by pi/2 is a low-passed rot90 (sym6 is not
symmetric). ``grid_sample`` is torch's: it has the double backward R1 needs (torch >= 2; AugmentPipe's
grid_sample_gradfix was for torch 1.7-1.9).

Where ganbench's ADA differs from AugmentPipe (see ganbench/ada.py): xflip and rot90 stay exact index maps applied
before the resampling (AugmentPipe resamples them too, low-passing the image), so the padding margins are computed
from the matrix without them (AugmentPipe's margins can be a permutation of the sides); a batch whose matrices are
all the identity (nothing fired, e.g. p = 0) is returned untouched (AugmentPipe resamples it, identity to ~1e-6).
Same-seed check against AugmentPipe on CPU (16-32 px, p 0.6-0.7): scale and rotate alone agree bitwise, all four
geometric ops with xint and colour to 2e-6. The sym6 filter runs separably, as AugmentPipe's (setup_filter keeps
>= 8 taps 1-D), through ganbench/nets/fir.py's upfirdn2d. Two host syncs per batch: the identity check and the
margins (AugmentPipe has the latter).
"""

from __future__ import annotations

import math
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from ganbench.nets.fir import upfirdn2d

# AugmentPipe's default strengths [AugmentPipe.__init__]
SCALE_STD, ROTATE_MAX, ANISO_STD, XFRAC_STD = 0.2, 1.0, 0.2, 0.125
OPS: tuple[str, ...] = ("scale", "rotate", "aniso", "xfrac")

# the sym6 wavelet's low-pass decomposition filter [augment.py `wavelets['sym6']`]
SYM6 = (0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633, 0.4910559419267466,
        0.787641141030194, 0.3379294217276218, -0.07263752278646252, -0.021060292512300564, 0.04472490177066578,
        0.0017677118642428036, -0.007800708325034148)
HZ_PAD = len(SYM6) // 4


# -- 3x3 homogeneous matrices, one per sample ------------------------------------------------------------------------
def mm(a: Tensor, b: Tensor) -> Tensor:
    """Batched (broadcasting) a @ b for small matrices, elementwise (a matmul could round to TF32 on GPUs)."""
    return (a.unsqueeze(-1) * b.unsqueeze(-3)).sum(-2)


def _matrix(rows, ref: Tensor) -> Tensor:
    """(N, 3, 3) from 3 rows of 3 entries, each a tensor (N,) or a number."""
    full = [e if isinstance(e, Tensor) else torch.full_like(ref, float(e)) for row in rows for e in row]
    return torch.stack(full, dim=-1).view(-1, 3, 3)


def translate_matrix(tx: Tensor, ty: Tensor) -> Tensor:
    return _matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]], tx)


def scale_matrix(sx: Tensor, sy: Tensor) -> Tensor:
    return _matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], sx)


def rotate_matrix(theta: Tensor) -> Tensor:
    """Counter-clockwise in (x, y) coordinates: [[cos, -sin], [sin, cos]]."""
    c, s = theta.cos(), theta.sin()
    return _matrix([[c, -s, 0], [s, c, 0], [0, 0, 1]], theta)


def geometric_matrix(s: Tensor, pre: Tensor, a: Tensor, post: Tensor, tx: Tensor, ty: Tensor) -> Tensor:
    """G_inv = S(1/s, 1/s) R(pre) S(1/a, a) R(post) T(-tx, -ty): scale s, rotations, aniso a, shift (tx, ty) px."""
    g = scale_matrix(1 / s, 1 / s)
    for m in (rotate_matrix(pre), scale_matrix(1 / a, a), rotate_matrix(post), translate_matrix(-tx, -ty)):
        g = mm(g, m)
    return g


def draw_matrix(n: int, p: Tensor, multipliers: Mapping[str, float], height: int, width: int, device) -> Tensor:
    """AugmentPipe's draws for the ops with multiplier > 0 (value, then coin), composed by ``geometric_matrix``."""
    m = {op: multipliers.get(op, 0.0) for op in OPS}
    one, zero = torch.ones(n, device=device), torch.zeros(n, device=device)

    def fired(value: Tensor, prob, off: Tensor) -> Tensor:
        coin = torch.rand(value.shape[0], *([1] * (value.dim() - 1)), device=device) < prob
        return torch.where(coin, value, off)

    p_rot = 1 - torch.sqrt((1 - m["rotate"] * p).clamp(0, 1))

    def angle() -> Tensor:
        return fired((torch.rand(n, device=device) * 2 - 1) * math.pi * ROTATE_MAX, p_rot, zero)

    s = fired(torch.exp2(torch.randn(n, device=device) * SCALE_STD), m["scale"] * p, one) if m["scale"] else one
    pre = angle() if m["rotate"] else zero
    a = fired(torch.exp2(torch.randn(n, device=device) * ANISO_STD), m["aniso"] * p, one) if m["aniso"] else one
    post = angle() if m["rotate"] else zero
    t = torch.zeros(n, 2, device=device)
    if m["xfrac"]:
        t = fired(torch.randn(n, 2, device=device) * XFRAC_STD, m["xfrac"] * p, t)
    return geometric_matrix(s, pre, a, post, t[:, 0] * width, t[:, 1] * height)


# -- execution -------------------------------------------------------------------------------------------------------
def _margins(g_inv: Tensor, height: int, width: int) -> list[int]:
    """Reflect padding (x0, x1, y0, y1): the largest corner overhang over the batch + 2 Hz_pad, in [0, side - 1]."""
    cx, cy = (width - 1) / 2, (height - 1) / 2
    corners = torch.tensor([[-cx, cx, cx, -cx], [-cy, -cy, cy, cy], [1.0, 1, 1, 1]]).to(g_inv)
    xy = mm(g_inv, corners)[:, :2].permute(1, 0, 2).flatten(1)  # (2, N * 4)
    over = torch.cat([-xy, xy]).amax(dim=1)  # x0, y0, x1, y1
    over = over + torch.tensor([2 * HZ_PAD - cx, 2 * HZ_PAD - cy] * 2).to(over)
    over = torch.minimum(over.clamp(min=0), torch.tensor([width - 1.0, height - 1.0] * 2).to(over))
    x0, y0, x1, y1 = over.ceil().long().tolist()
    return [x0, x1, y0, y1]


def _const(kind, *args: float, ref: Tensor) -> Tensor:
    """A (1, 3, 3) matrix with constant entries, on ref's device and dtype."""
    return kind(*(torch.full((1,), float(v), device=ref.device, dtype=ref.dtype) for v in args))


def _up2(x: Tensor, taps: Tensor) -> Tensor:
    """SG2A ``upsample2d(x, f, up=2)`` with a separable filter: zero insertion, then x and y passes (gain 2 each)."""
    p0, p1 = (len(taps) + 1) // 2, (len(taps) - 2) // 2
    x = upfirdn2d(x, taps[None, :], up=2, padding=(p0, p1, 0, 0), gain=2)
    return upfirdn2d(x, taps[:, None], padding=(0, 0, p0, p1), gain=2)


def _down2_crop(x: Tensor, taps: Tensor) -> Tensor:
    """SG2A ``downsample2d(x, f, down=2, padding=-2 Hz_pad, flip_filter=True)``, separable."""
    p0, p1 = (len(taps) - 1) // 2 - 2 * HZ_PAD, (len(taps) - 2) // 2 - 2 * HZ_PAD
    x = upfirdn2d(x, taps[None, :], padding=(p0, p1, 0, 0), flip_filter=True)
    return upfirdn2d(x, taps[:, None], down=2, padding=(0, 0, p0, p1), flip_filter=True)


def resample(x: Tensor, g_inv: Tensor) -> Tensor:
    """out(p) = x(G_inv p), band-limited: reflect pad, sym6 2x up, bilinear grid_sample, sym6 2x down (see above)."""
    n, c, h, w = x.shape
    taps = torch.tensor(SYM6, device=x.device)
    taps = taps / taps.sum()  # setup_filter's normalisation
    pad = _margins(g_inv, h, w)
    x = F.pad(x, pad, mode="reflect")
    g = mm(_const(translate_matrix, (pad[0] - pad[1]) / 2, (pad[2] - pad[3]) / 2, ref=g_inv), g_inv)
    x = _up2(x, taps)  # pixel centres: u = 2 x + 1/2
    g = mm(mm(_const(scale_matrix, 2, 2, ref=g), g), _const(scale_matrix, 0.5, 0.5, ref=g))
    g = mm(mm(_const(translate_matrix, -0.5, -0.5, ref=g), g), _const(translate_matrix, 0.5, 0.5, ref=g))
    oh, ow = (h + 2 * HZ_PAD) * 2, (w + 2 * HZ_PAD) * 2  # the canvas, Hz_pad beyond the frame
    g = mm(mm(_const(scale_matrix, 2 / x.shape[3], 2 / x.shape[2], ref=g), g), _const(scale_matrix, ow / 2, oh / 2,
                                                                                        ref=g))
    grid = F.affine_grid(g[:, :2].to(x.dtype), [n, c, oh, ow], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return _down2_crop(x, taps)


def is_identity(g_inv: Tensor) -> bool:
    return bool((g_inv == torch.eye(3, device=g_inv.device, dtype=g_inv.dtype)).all())


def transform(x: Tensor, g_inv: Tensor) -> Tensor:
    """``resample`` unless every matrix is the identity (then x itself)."""
    return x if is_identity(g_inv) else resample(x, g_inv)
