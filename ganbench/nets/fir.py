"""StyleGAN2's resampling and fused bias-activation in plain PyTorch (no custom CUDA ops).

Formulations of NVlabs/stylegan2-ada-pytorch@d72cc7d (SG2A), rewritten, not copied:

- ``upfirdn2d`` is ``torch_utils/ops/upfirdn2d.py::_upfirdn2d_ref``: per channel, (1) upsample by inserting
  ``up - 1`` zeros after every pixel, (2) zero-pad (negative padding crops), (3) *convolve* with the FIR filter
  ``f * gain`` (the filter is flipped, so F.conv2d's correlation becomes a convolution; ``flip_filter=True`` keeps
  the correlation), (4) keep every ``down``-th pixel.
- ``setup_filter``: taps -> the normalized outer product (SG2A uses a 2-D filter for fewer than 8 taps: [1, 3, 3, 1]
  gives (1/64) [1,3,3,1]^T [1,3,3,1]).
- ``upsample2d`` / ``downsample2d``: ``upfirdn2d`` with the padding that makes the output exactly 2x (1/2x) the
  input, and gain up^2 when upsampling (the inserted zeros would otherwise dim the image).
- ``conv2d_resample`` is ``torch_utils/ops/conv2d_resample.py`` by its reference path: the padding is applied
  once at the start (not between the filter and the convolution); upsampling is zero insertion + FIR (gain 4) and
  then the convolution, downsampling is FIR then a strided convolution. SG2A's fast paths (transposed convolution)
  compute the same values.
- ``bias_act`` is ``torch_utils/ops/bias_act.py::_bias_act_ref``: x + b, activation, times gain (lrelu: slope 0.2,
  gain sqrt(2); linear: gain 1), then clamp to [-clamp, clamp].
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

#: activation -> (function, default gain) (SG2A bias_act.py ``activation_funcs``)
ACTIVATIONS: dict[str, tuple[Callable[[Tensor], Tensor], float]] = {
    "linear": (lambda x: x, 1.0),
    "lrelu": (lambda x: F.leaky_relu(x, 0.2), math.sqrt(2)),
}


def setup_filter(taps: Sequence[float] = (1, 3, 3, 1)) -> Tensor:
    """The 2-D FIR filter outer(taps, taps) / sum, float32 (SG2A ``setup_filter`` with normalize=True)."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    f = torch.outer(f, f)
    return f / f.sum()


def _padding(padding) -> tuple[int, int, int, int]:
    """int or (x0, x1, y0, y1) -> (x0, x1, y0, y1)."""
    return (padding,) * 4 if isinstance(padding, int) else tuple(padding)


def upfirdn2d(x: Tensor, f: Tensor, up: int = 1, down: int = 1, padding=0, flip_filter: bool = False,
              gain: float = 1.0) -> Tensor:
    """Zero-insertion upsampling, padding, FIR convolution, downsampling of every channel of (N, C, H, W)."""
    n, c, h, w = x.shape
    x0, x1, y0, y1 = _padding(padding)
    if up > 1:
        x = F.pad(x.reshape(n, c, h, 1, w, 1), [0, up - 1, 0, 0, 0, up - 1]).reshape(n, c, h * up, w * up)
    x = F.pad(x, [max(x0, 0), max(x1, 0), max(y0, 0), max(y1, 0)])
    x = x[:, :, max(-y0, 0):x.shape[2] - max(-y1, 0), max(-x0, 0):x.shape[3] - max(-x1, 0)]
    k = (f * gain).to(x.dtype)
    if not flip_filter:
        k = k.flip([0, 1])
    x = F.conv2d(x, k[None, None].repeat(c, 1, 1, 1), groups=c)
    return x[:, :, ::down, ::down]


def upsample2d(x: Tensor, f: Tensor, up: int = 2) -> Tensor:
    """(N, C, H, W) -> (N, C, up H, up W) (SG2A ``upsample2d``)."""
    fw = f.shape[-1]
    p0, p1 = (fw + up - 1) // 2, (fw - up) // 2
    return upfirdn2d(x, f, up=up, padding=(p0, p1, p0, p1), gain=up * up)


def downsample2d(x: Tensor, f: Tensor, down: int = 2) -> Tensor:
    """(N, C, H, W) -> (N, C, H / down, W / down) (SG2A ``downsample2d``)."""
    fw = f.shape[-1]
    p0, p1 = (fw - down + 1) // 2, (fw - down) // 2
    return upfirdn2d(x, f, down=down, padding=(p0, p1, p0, p1))


def conv2d_resample(x: Tensor, w: Tensor, f: Tensor | None = None, up: int = 1, down: int = 1, padding: int = 0,
                    flip_weight: bool = True) -> Tensor:
    """conv2d of x with w (O, I, k, k), with FIR up- or downsampling by 2; ``flip_weight=False`` convolves (SG2A
    uses it when upsampling) where True correlates as F.conv2d does. Padding ``padding`` is w.r.t. the
    upsampled image, applied once."""
    if not flip_weight:
        w = w.flip([2, 3])
    if up == 1 and down == 1:
        return F.conv2d(x, w, padding=padding)
    fw = f.shape[-1]
    if up > 1:
        p0, p1 = padding + (fw + up - 1) // 2, padding + (fw - up) // 2
        return F.conv2d(upfirdn2d(x, f, up=up, padding=(p0, p1, p0, p1), gain=up * up), w)
    p0, p1 = padding + (fw - down + 1) // 2, padding + (fw - down) // 2
    return F.conv2d(upfirdn2d(x, f, padding=(p0, p1, p0, p1)), w, stride=down)


def bias_act(x: Tensor, b: Tensor | None = None, act: str = "linear", gain: float | None = None,
             clamp: float | None = None) -> Tensor:
    """act(x + b) * gain, clamped to [-clamp, clamp]; b is per channel (axis 1); gain defaults to act's."""
    func, default_gain = ACTIVATIONS[act]
    if b is not None:
        x = x + b.reshape(1, -1, *([1] * (x.dim() - 2)))
    x = func(x)
    gain = default_gain if gain is None else gain
    if gain != 1:
        x = x * gain
    return x if clamp is None else x.clamp(-clamp, clamp)
