"""StyleGAN2's pure tensor operations (NVlabs/stylegan2-ada-pytorch@d72cc7d ``training/networks.py``):
normalize_2nd_moment, (de)modulation, the modulated convolution as SG2A trains it ("non-fused") and the minibatch
standard deviation of D's epilogue (also ProGAN's). The networks are in ``ganbench/nets/stylegan2.py``."""

from __future__ import annotations

import torch
from torch import Tensor

from ganbench.errors import ConfigError
from ganbench.nets.fir import conv2d_resample


def normalize_2nd_moment(x: Tensor, eps: float = 1e-8) -> Tensor:
    return x * (x.square().mean(1, keepdim=True) + eps).rsqrt()


def modulation(weight: Tensor, styles: Tensor) -> tuple[Tensor, Tensor]:
    """(modulated weights W_oik s_i per sample (N, O, I, k, k), demodulation rsqrt(sum_ik (W s)^2 + 1e-8) (N, O))."""
    w = weight.unsqueeze(0) * styles.reshape(styles.shape[0], 1, -1, 1, 1)
    return w, (w.square().sum([2, 3, 4]) + 1e-8).rsqrt()


def modulated_conv2d(x: Tensor, weight: Tensor, styles: Tensor, noise: Tensor | None = None, up: int = 1,
                     padding: int = 0, resample_filter: Tensor | None = None, demodulate: bool = True,
                     flip_weight: bool = True) -> Tensor:
    """The modulated (and demodulated) convolution of x (N, I, H, W) as SG2A trains it: x * s, conv with W, * d."""
    n = x.shape[0]
    x = conv2d_resample(x * styles.reshape(n, -1, 1, 1), weight, resample_filter, up=up, padding=padding,
                        flip_weight=flip_weight)
    if demodulate:
        x = x * modulation(weight, styles)[1].reshape(n, -1, 1, 1)
    return x if noise is None else x + noise


def minibatch_std(x: Tensor, group_size: int | None, num_channels: int) -> Tensor:
    """x with ``num_channels`` maps appended: per group of G = min(group_size, N) samples (sample i in group
    i mod N/G), the std over the group (sqrt(var + 1e-8)) averaged over its C/F channels and pixels."""
    n, c, h, w = x.shape
    g = n if group_size is None else min(group_size, n)
    if n % g:
        raise ConfigError(f"model.discriminator.mbstd_group_size={group_size} must divide the batch D scores "
                          f"({n} samples); change optim.batch_size or the group size")
    y = x.reshape(g, -1, num_channels, c // num_channels, h, w)
    y = (y - y.mean(0)).square().mean(0).add(1e-8).sqrt().mean([2, 3, 4])  # (N/G, F)
    return torch.cat([x, y.reshape(-1, num_channels, 1, 1).repeat(g, 1, h, w)], dim=1)
