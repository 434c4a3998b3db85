"""Residual blocks and trunks shared by the ResNet GANs (``resnet_cifar``, ``resnet19``).

The blocks are the pre-activation ResNet blocks of Gulrajani et al. 2017 ("Improved Training of Wasserstein GANs",
Appendix F) as specified by Miyato et al. 2018 ("Spectral Normalization for GANs", Appendix B.4, Fig. 8):

- generator block: BN-ReLU-upsample(nearest x2)-conv3x3-BN-ReLU-conv3x3; shortcut upsample-conv1x1;
- discriminator block: [norm]-ReLU-conv3x3-[norm]-ReLU-conv3x3-avgpool; shortcut conv1x1-avgpool;
- discriminator input block (Miyato's "optimized" first block, which sees raw pixels): conv3x3-ReLU-conv3x3-avgpool,
  shortcut avgpool-conv1x1, never normalised.

A shortcut is the identity when its block keeps both the channel count and the resolution, a learnable 1x1 conv
otherwise (as in Miyato et al.'s code).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ganbench.nets.layers import NormFactory, identity_norm

POOLS = ("sum", "mean")


def _conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)


def _resample(up: bool, down: bool) -> nn.Module:
    if up:
        return nn.Upsample(scale_factor=2, mode="nearest")
    return nn.AvgPool2d(2) if down else nn.Identity()


class GBlock(nn.Module):
    """Generator block: BN-ReLU-[up]-conv3x3-BN-ReLU-conv3x3 plus a ([up]-conv1x1 or identity) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, upsample: bool = True):
        super().__init__()
        self.residual = nn.Sequential(
            nn.BatchNorm2d(in_channels), nn.ReLU(), _resample(upsample, False), _conv3x3(in_channels, out_channels),
            nn.BatchNorm2d(out_channels), nn.ReLU(), _conv3x3(out_channels, out_channels),
        )
        learnable = upsample or in_channels != out_channels
        self.shortcut = (nn.Sequential(_resample(upsample, False), nn.Conv2d(in_channels, out_channels, 1))
                         if learnable else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x) + self.shortcut(x)


class DBlock(nn.Module):
    """Discriminator block: norm-ReLU-conv3x3-norm-ReLU-conv3x3-[avgpool] plus a (conv1x1-[avgpool] or identity)
    shortcut. ``norm`` comes before each activation (Gulrajani et al.'s layer-norm placement)."""

    def __init__(self, in_channels: int, out_channels: int, downsample: bool = True,
                 norm: NormFactory = identity_norm):
        super().__init__()
        self.residual = nn.Sequential(
            norm(in_channels), nn.ReLU(), _conv3x3(in_channels, out_channels),
            norm(out_channels), nn.ReLU(), _conv3x3(out_channels, out_channels), _resample(False, downsample),
        )
        learnable = downsample or in_channels != out_channels
        self.shortcut = (nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), _resample(False, downsample))
                         if learnable else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x) + self.shortcut(x)


class DInputBlock(nn.Module):
    """Discriminator first block on raw pixels: conv3x3-ReLU-conv3x3-avgpool plus an avgpool-conv1x1 shortcut.
    It has no activation on its input and no normalization (DCGAN convention: the first layer is not normalised)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.residual = nn.Sequential(
            _conv3x3(in_channels, out_channels), nn.ReLU(), _conv3x3(out_channels, out_channels), nn.AvgPool2d(2),
        )
        self.shortcut = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(in_channels, out_channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x) + self.shortcut(x)


class ResNetGenerator(nn.Module):
    """linear z -> (channels[0], 4, 4); GBlocks channels[i] -> channels[i+1], the first ``n_up`` of them upsampling;
    BN-ReLU-conv3x3 -> ``image_channels``; tanh."""

    def __init__(self, z_dim: int, image_channels: int, channels: Sequence[int], n_up: int):
        super().__init__()
        self.seed = nn.Sequential(nn.Linear(z_dim, channels[0] * 4 * 4), nn.Unflatten(1, (channels[0], 4, 4)))
        self.blocks = nn.Sequential(*(GBlock(c_in, c_out, upsample=i < n_up)
                                      for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:]))))
        self.to_image = nn.Sequential(nn.BatchNorm2d(channels[-1]), nn.ReLU(), _conv3x3(channels[-1], image_channels),
                                      nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.to_image(self.blocks(self.seed(z)))


class ResNetDiscriminator(nn.Module):
    """DInputBlock -> channels[0] (downsampling); DBlocks channels[i] -> channels[i+1], downsampling where
    ``downsample[i]``; ReLU; global ``pool`` ("sum" as in Miyato et al. 2018, or "mean" as in compare_gan) over
    space; linear -> 1 logit."""

    def __init__(self, name: str, image_channels: int, channels: Sequence[int], downsample: Sequence[bool],
                 norm: NormFactory = identity_norm, pool: str = "sum"):
        super().__init__()
        if pool not in POOLS:
            from ganbench.errors import ConfigError
            raise ConfigError(f"model={name} discriminator pool must be one of {', '.join(POOLS)}; got {pool!r}")
        assert len(downsample) == len(channels) - 1
        self.pool = pool
        self.blocks = nn.Sequential(
            DInputBlock(image_channels, channels[0]),
            *(DBlock(c_in, c_out, downsample=down, norm=norm)
              for c_in, c_out, down in zip(channels[:-1], channels[1:], downsample)),
            nn.ReLU(),
        )
        self.feature_dim = channels[-1]
        self.head = nn.Linear(channels[-1], 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(x)
        return h.sum(dim=(2, 3)) if self.pool == "sum" else h.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).flatten()
