"""Differentiable augmentation of everything the discriminator sees.

``augment=diffaug`` is DiffAugment (Zhao et al. 2020): the same random, differentiable transforms are applied to
real and generated images in both the D and the G step, so gradients reach G through them. Each transform is a
small pure function of a batch in [-1, 1] (N, C, H, W); ``DiffAugment`` applies a list of them in order.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganbench.errors import ConfigError


def _per_sample(x: Tensor) -> Tensor:
    """U[0, 1) with one value per sample, shaped to broadcast against (N, C, H, W)."""
    return torch.rand(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype)


def brightness(x: Tensor) -> Tensor:
    """Add U[-0.5, 0.5) to every pixel of a sample."""
    return x + (_per_sample(x) - 0.5)


def saturation(x: Tensor) -> Tensor:
    """Scale each pixel's deviation from its channel mean by U[0, 2)."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (_per_sample(x) * 2) + mean


def contrast(x: Tensor) -> Tensor:
    """Scale each sample's deviation from its mean intensity by U[0.5, 1.5)."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_per_sample(x) + 0.5) + mean


def color(x: Tensor) -> Tensor:
    """DiffAugment's 'color': brightness, saturation and contrast in turn."""
    return contrast(saturation(brightness(x)))


def translation(x: Tensor, ratio: float = 0.125) -> Tensor:
    """Shift each sample by an integer number of pixels in [-ratio*side, ratio*side] on each axis, zero-filled."""
    n, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sy, sy + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(-sx, sx + 1, (n, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1) - dy  # source row of each output row
    cols = torch.arange(w, device=x.device).view(1, 1, w) - dx
    inside = ((rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)).unsqueeze(1)
    flat = (rows.clamp(0, h - 1) * w + cols.clamp(0, w - 1)).view(n, 1, h * w).expand(-1, x.shape[1], -1)
    shifted = x.flatten(2).gather(2, flat).view_as(x)
    return shifted * inside


def cutout(x: Tensor, ratio: float = 0.5) -> Tensor:
    """Zero one square of side ratio*side at a random position in each sample (DeVries & Taylor 2017)."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device)
    top, left = cy - ch // 2, cx - cw // 2  # the hole may be cut by the border, as in DiffAugment
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    hole = (rows >= top) & (rows < top + ch) & (cols >= left) & (cols < left + cw)
    return x * (~hole).unsqueeze(1).to(x.dtype)


TRANSFORMS: dict[str, Callable[[Tensor], Tensor]] = {
    "color": color,
    "translation": translation,
    "cutout": cutout,
    "brightness": brightness,
    "saturation": saturation,
    "contrast": contrast,
}


class NoAugment(nn.Identity):
    """``augment=none``: the discriminator sees the images as they are."""


class DiffAugment(nn.Module):
    """DiffAugment (Zhao et al. 2020): ``policy`` is a list of transforms applied in order to every D input."""

    def __init__(self, policy: Sequence[str] = ("color", "translation", "cutout")):
        super().__init__()
        unknown = [p for p in policy if p not in TRANSFORMS]
        if unknown:
            raise ConfigError(f"augment.policy: unknown transform {unknown[0]!r}; allowed: {', '.join(TRANSFORMS)}")
        self.policy = list(policy)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise ConfigError(f"augment=diffaug needs images (N, C, H, W); got shape {tuple(x.shape)} "
                              "(use augment=none for toy data)")
        for name in self.policy:
            x = TRANSFORMS[name](x)
        return x.contiguous()
