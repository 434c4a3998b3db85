"""Residual blocks and trunks shared by the ResNet GANs (``resnet_cifar``, ``resnet19``), in two styles.

``block=chainer``: the pre-activation blocks of Gulrajani et al. 2017 ("Improved Training of Wasserstein GANs",
Appendix F) as Miyato et al. 2018 specify and code them ("Spectral Normalization for GANs", Appendix B.4, Fig. 8):

- generator block: BN-ReLU-upsample(nearest x2)-conv3x3-BN-ReLU-conv3x3; shortcut upsample-conv1x1;
- discriminator block: [norm]-ReLU-conv3x3-[norm]-ReLU-conv3x3-avgpool; shortcut conv1x1-avgpool;
- discriminator input block (Miyato's "optimized" first block, which sees raw pixels): conv3x3-ReLU-conv3x3-avgpool,
  shortcut avgpool-conv1x1, never normalised.
  A shortcut is the identity when its block keeps both the channel count and the resolution, a learnable 1x1 conv
  otherwise.

``block=compare_gan``: the blocks of compare_gan, the code of Kurach et al. 2019 (google/compare_gan v2@766edb2
``compare_gan/src/gans/resnet_architecture.py``: ``resnet_block``, ``get_conv``, ``unpool``; master keeps them in
``architectures/resnet_ops.py``):

- every shortcut is a 3x3 conv (after ``unpool`` in an up block, followed by 2x2 average pooling in a down block);
- upsampling is ``unpool``: each value at the top-left of its 2x2 cell, zeros elsewhere (not nearest neighbours);
- generator block: BN-ReLU-unpool-conv3x3-BN-ReLU-conv3x3;
- discriminator block: [norm]-ReLU-conv3x3-[norm]-ReLU-conv3x3-[avgpool]; the first block is an ordinary one (its
  ReLU sees the input images, its norms are there when D is normalised).
Batch norm: decay 0.9, eps 1e-5 in both (torch's defaults). compare_gan pools D's last map by its mean.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ganbench.nets.layers import NormFactory, identity_norm

POOLS = ("sum", "mean")
BLOCKS = ("chainer", "compare_gan")


def _conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)


class Unpool(nn.Module):
    """compare_gan's ``unpool``: (N, C, H, W) -> (N, C, 2H, 2W) with x at even rows and columns, zeros elsewhere."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x.new_zeros(x.shape[0], x.shape[1], 2 * x.shape[2], 2 * x.shape[3])
        out[:, :, ::2, ::2] = x
        return out


def _maybe(module: nn.Module, on: bool) -> nn.Module:
    return module if on else nn.Identity()


class GBlock(nn.Module):
    """Generator block: BN-ReLU-[up]-conv3x3-BN-ReLU-conv3x3 plus a shortcut (see the module docstring)."""

    def __init__(self, in_channels: int, out_channels: int, upsample: bool = True, style: str = "chainer"):
        super().__init__()
        up = (lambda: _maybe(Unpool(), upsample)) if style == "compare_gan" else \
            (lambda: _maybe(nn.Upsample(scale_factor=2, mode="nearest"), upsample))
        self.residual = nn.Sequential(
            nn.BatchNorm2d(in_channels), nn.ReLU(), up(), _conv3x3(in_channels, out_channels),
            nn.BatchNorm2d(out_channels), nn.ReLU(), _conv3x3(out_channels, out_channels),
        )
        if style == "compare_gan":
            self.shortcut = nn.Sequential(up(), _conv3x3(in_channels, out_channels))
        elif upsample or in_channels != out_channels:
            self.shortcut = nn.Sequential(up(), nn.Conv2d(in_channels, out_channels, 1))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x) + self.shortcut(x)


class DBlock(nn.Module):
    """Discriminator block: norm-ReLU-conv3x3-norm-ReLU-conv3x3-[avgpool] plus a shortcut (see the module
    docstring). ``norm`` comes before each activation (Gulrajani et al.'s layer-norm placement, and compare_gan's)."""

    def __init__(self, in_channels: int, out_channels: int, downsample: bool = True,
                 norm: NormFactory = identity_norm, style: str = "chainer"):
        super().__init__()
        self.residual = nn.Sequential(
            norm(in_channels), nn.ReLU(), _conv3x3(in_channels, out_channels),
            norm(out_channels), nn.ReLU(), _conv3x3(out_channels, out_channels), _maybe(nn.AvgPool2d(2), downsample),
        )
        if style == "compare_gan":
            self.shortcut = nn.Sequential(_conv3x3(in_channels, out_channels), _maybe(nn.AvgPool2d(2), downsample))
        elif downsample or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), _maybe(nn.AvgPool2d(2), downsample))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x) + self.shortcut(x)


class DInputBlock(nn.Module):
    """Discriminator first block on raw pixels (``block=chainer``): conv3x3-ReLU-conv3x3-avgpool plus an
    avgpool-conv1x1 shortcut; no activation on its input and no normalization."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.residual = nn.Sequential(
            _conv3x3(in_channels, out_channels), nn.ReLU(), _conv3x3(out_channels, out_channels), nn.AvgPool2d(2),
        )
        self.shortcut = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(in_channels, out_channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x) + self.shortcut(x)


def _check_style(name: str, block: str) -> None:
    if block not in BLOCKS:
        from ganbench.errors import ConfigError
        raise ConfigError(f"model={name} block must be one of {', '.join(BLOCKS)}; got {block!r}")


class ResNetGenerator(nn.Module):
    """linear z -> (channels[0], 4, 4); GBlocks channels[i] -> channels[i+1], the first ``n_up`` of them upsampling;
    BN-ReLU-conv3x3 -> ``image_channels``; tanh."""

    def __init__(self, z_dim: int, image_channels: int, channels: Sequence[int], n_up: int, block: str = "chainer",
                 name: str = "resnet"):
        super().__init__()
        _check_style(name, block)
        self.seed = nn.Sequential(nn.Linear(z_dim, channels[0] * 4 * 4), nn.Unflatten(1, (channels[0], 4, 4)))
        self.blocks = nn.Sequential(*(GBlock(c_in, c_out, upsample=i < n_up, style=block)
                                      for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:]))))
        self.to_image = nn.Sequential(nn.BatchNorm2d(channels[-1]), nn.ReLU(), _conv3x3(channels[-1], image_channels),
                                      nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.to_image(self.blocks(self.seed(z)))


class ResNetDiscriminator(nn.Module):
    """First block -> channels[0] (downsampling); DBlocks channels[i] -> channels[i+1], downsampling where
    ``downsample[i]``; ReLU; global ``pool`` ("sum" as in Miyato et al. 2018, or "mean" as in compare_gan) over
    space; linear -> 1 logit."""

    def __init__(self, name: str, image_channels: int, channels: Sequence[int], downsample: Sequence[bool],
                 norm: NormFactory = identity_norm, pool: str = "sum", block: str = "chainer"):
        super().__init__()
        if pool not in POOLS:
            from ganbench.errors import ConfigError
            raise ConfigError(f"model={name} discriminator pool must be one of {', '.join(POOLS)}; got {pool!r}")
        _check_style(name, block)
        assert len(downsample) == len(channels) - 1
        self.pool = pool
        first = DInputBlock(image_channels, channels[0]) if block == "chainer" else \
            DBlock(image_channels, channels[0], downsample=True, norm=norm, style=block)
        self.blocks = nn.Sequential(
            first,
            *(DBlock(c_in, c_out, downsample=down, norm=norm, style=block)
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
