"""DCGAN (Radford et al. 2016, "Unsupervised Representation Learning with Deep Convolutional GANs", Fig. 1).

- G: linear z -> (top, 4, 4), BN, ReLU; ConvTranspose2d(4, stride 2, pad 1) + BN + ReLU blocks, each halving the
  channels, up to side/2; a last ConvTranspose2d(4, 2, 1) -> C; tanh.
- D mirrors it: Conv2d(4, 2, 1) blocks + LeakyReLU(0.2) from the image down to 4x4, each doubling the channels
  (``norm`` after every conv but the first); flatten; linear -> 1.

The feature map next to the image has ``width`` channels and the count doubles towards 4x4, capped at 8 * width.
At 64x64 this is the paper's network (4x4x1024 ... 32x32x128 for width=128, the common 512...64 for width=64);
smaller sides drop the widest layers (32x32: top 4 * width; 8x8: a single layer of width), 128x128 repeats 8 * width.
"""

from __future__ import annotations

import torch
from torch import nn

from ganbench.nets.layers import NormFactory, check_image_shape, identity_norm

NAME = "dcgan"


def _layout(data_shape: tuple, width: int) -> tuple[int, list[int]]:
    """(image channels, feature channels from the side/2 map down to the 4x4 map)."""
    image_channels, side = check_image_shape(NAME, data_shape, min_side=8, power_of_two=True)
    n_maps = side.bit_length() - 3  # log2(side / 4) stride-2 layers
    return image_channels, [width * min(2 ** k, 8) for k in range(n_maps)]


def _up(c_in: int, c_out: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1)


def _down(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=4, stride=2, padding=1)


class Generator(nn.Module):
    def __init__(self, z_dim: int, data_shape: tuple, width: int = 64):
        super().__init__()
        image_channels, channels = _layout(data_shape, width)
        top = channels[-1]
        layers: list[nn.Module] = [nn.Linear(z_dim, top * 4 * 4), nn.Unflatten(1, (top, 4, 4)), nn.BatchNorm2d(top),
                                   nn.ReLU()]
        from_top = channels[::-1]  # 4x4 map first
        for c_in, c_out in zip(from_top[:-1], from_top[1:]):
            layers += [_up(c_in, c_out), nn.BatchNorm2d(c_out), nn.ReLU()]
        layers += [_up(channels[0], image_channels), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class Discriminator(nn.Module):
    def __init__(self, data_shape: tuple, norm: NormFactory = identity_norm, width: int = 64):
        super().__init__()
        image_channels, channels = _layout(data_shape, width)
        layers: list[nn.Module] = [_down(image_channels, channels[0]), nn.LeakyReLU(0.2)]
        for c_in, c_out in zip(channels[:-1], channels[1:]):
            layers += [_down(c_in, c_out), norm(c_out), nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*layers, nn.Flatten())
        self.feature_dim = channels[-1] * 4 * 4
        self.head = nn.Linear(self.feature_dim, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.net(x)).flatten()
