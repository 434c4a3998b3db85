"""SNDCGAN: the standard CNN of Miyato et al. 2018 ("Spectral Normalization for GANs", Table 3), the "SNDCGAN" of
Kurach et al. 2019 (compare_gan's ``sndcgan``).

- G: linear z -> (512, s/8, s/8), BN, ReLU; deconv 4x4 stride 2 -> 256, 128, 64, each + BN + ReLU;
  conv 3x3 stride 1 -> C; tanh.
- D: conv3x3 s1 64, conv4x4 s2 64, conv3x3 s1 128, conv4x4 s2 128, conv3x3 s1 256, conv4x4 s2 256, conv3x3 s1 512,
  each followed by LeakyReLU(0.1) ([norm] before it on all but the first); flatten; linear -> 1.

``width`` is the base channel count (paper: 64, so 512 = 8 * width). Serves square sides divisible by 8, >= 8.
"""

from __future__ import annotations

import torch
from torch import nn

from ganbench.nets.layers import NormFactory, check_image_shape, identity_norm

NAME = "sndcgan"
# Discriminator convs: (channel multiplier, kernel, stride); padding 1 throughout.
D_CONVS = ((1, 3, 1), (1, 4, 2), (2, 3, 1), (2, 4, 2), (4, 3, 1), (4, 4, 2), (8, 3, 1))


def _check(data_shape: tuple) -> tuple[int, int]:
    image_channels, side = check_image_shape(NAME, data_shape, min_side=8, multiple_of=8)
    return image_channels, side // 8


class Generator(nn.Module):
    def __init__(self, z_dim: int, data_shape: tuple, width: int = 64):
        super().__init__()
        image_channels, m = _check(data_shape)
        layers: list[nn.Module] = [nn.Linear(z_dim, 8 * width * m * m), nn.Unflatten(1, (8 * width, m, m)),
                                   nn.BatchNorm2d(8 * width), nn.ReLU()]
        for c_in, c_out in ((8 * width, 4 * width), (4 * width, 2 * width), (2 * width, width)):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]
        layers += [nn.Conv2d(width, image_channels, 3, padding=1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class Discriminator(nn.Module):
    def __init__(self, data_shape: tuple, norm: NormFactory = identity_norm, width: int = 64):
        super().__init__()
        image_channels, m = _check(data_shape)
        layers: list[nn.Module] = []
        c_in = image_channels
        for i, (mult, kernel, stride) in enumerate(D_CONVS):
            c_out = mult * width
            layers += [nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=1),
                       nn.Identity() if i == 0 else norm(c_out), nn.LeakyReLU(0.1)]
            c_in = c_out
        self.net = nn.Sequential(*layers, nn.Flatten())
        self.feature_dim = c_in * m * m
        self.head = nn.Linear(self.feature_dim, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.net(x)).flatten()
