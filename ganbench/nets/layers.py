"""Layers shared by the architectures: normalization factories chosen by the regularizer config."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

NormFactory = Callable[[int], nn.Module]


def identity_norm(channels: int) -> nn.Module:
    """No normalization (the default discriminator in Kurach et al. 2019)."""
    return nn.Identity()


class FeatureBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm over the batch (and spatial) axes of (N, C) or (N, C, H, W) features."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() not in (2, 3, 4, 5):
            raise ValueError(f"FeatureBatchNorm expects (N, C, ...) input, got shape {tuple(x.shape)}")


def batch_norm(channels: int) -> nn.Module:
    return FeatureBatchNorm(channels)


def layer_norm(channels: int) -> nn.Module:
    """Layer norm over all of (C, H, W) with per-channel gain and bias (Ba et al. 2016; compare_gan's layer_norm)."""
    return nn.GroupNorm(1, channels)


def check_image_shape(name: str, data_shape: tuple, *, min_side: int, multiple_of: int | None = None,
                      power_of_two: bool = False, max_side: int | None = None) -> tuple[int, int]:
    """Validate (C, H, W) for an image architecture; return (channels, side)."""
    from ganbench.errors import ConfigError

    shape = tuple(int(s) for s in data_shape)
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ConfigError(f"model={name} needs square images (C, H, W); the data has shape {shape}")
    c, side = shape[0], shape[1]
    ok = side >= min_side and (max_side is None or side <= max_side)
    if multiple_of:
        ok = ok and side % multiple_of == 0
    if power_of_two:
        ok = ok and side & (side - 1) == 0
    if not ok:
        rule = [f">= {min_side}"]
        if max_side:
            rule.append(f"<= {max_side}")
        if multiple_of:
            rule.append(f"a multiple of {multiple_of}")
        if power_of_two:
            rule.append("a power of two")
        raise ConfigError(f"model={name} serves image sides {' and '.join(rule)}; the data is {side}x{side} "
                          f"(set data.resolution or pick another model)")
    return c, side
