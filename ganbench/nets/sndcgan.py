"""SNDCGAN: the standard CNN of Miyato et al. 2018 ("Spectral Normalization for GANs", Table 3), the "SNDCGAN" of
Kurach et al. 2019, as compare_gan implements it (google/compare_gan v2@766edb2
``compare_gan/src/gans/dcgan_architecture.py``: ``sn_generator``, ``sn_discriminator``; master keeps the same
network in ``compare_gan/architectures/sndcgan.py``).

- G: linear z -> 512 * s/8 * s/8, batch norm on that vector (before the reshape, as compare_gan), ReLU; reshape;
  deconv 4x4 stride 2 -> 256, 128, 64, each + BN + ReLU; 3x3 stride 1 -> C; tanh. G's batch norms use eps 2e-5
  and momentum 0.1 (TF decay 0.9), as compare_gan.
- D: seven convs, each followed by LeakyReLU(0.1) ([norm] before it on all but the first); flatten; linear -> 1.
  ``layout=compare_gan`` (default): channels 64, 128, 128, 256, 256, 512, 512, as compare_gan and the SN authors'
  chainer-gan-lib; ``layout=miyato_table3``: 64, 64, 128, 128, 256, 256, 512 as the paper's Table 3 prints it.
  compare_gan's SNDCGAN has no normalization hook in D: ganbench's sndcgan x {bn, ln} cells extend the study.
  ``recenter=true`` maps D's input back from [0, 1] to [-1, 1] (x * 2 - 1) as compare_gan's ``sn_discriminator``
  does, for ``data.range=unit``.

``width`` is the base channel count (64, so 512 = 8 * width). Serves square sides divisible by 8, >= 8.
"""

from __future__ import annotations

import torch
from torch import nn

from ganbench.errors import ConfigError
from ganbench.nets.layers import NormFactory, check_image_shape, identity_norm

NAME = "sndcgan"
# Discriminator convs: (channel multiplier, kernel, stride); padding 1 throughout.
D_LAYOUTS = {
    "compare_gan": ((1, 3, 1), (2, 4, 2), (2, 3, 1), (4, 4, 2), (4, 3, 1), (8, 4, 2), (8, 3, 1)),
    "miyato_table3": ((1, 3, 1), (1, 4, 2), (2, 3, 1), (2, 4, 2), (4, 3, 1), (4, 4, 2), (8, 3, 1)),
}
G_BN = {"eps": 2e-5, "momentum": 0.1}


def _check(data_shape: tuple) -> tuple[int, int]:
    image_channels, side = check_image_shape(NAME, data_shape, min_side=8, multiple_of=8)
    return image_channels, side // 8


class Generator(nn.Module):
    def __init__(self, z_dim: int, data_shape: tuple, width: int = 64):
        super().__init__()
        image_channels, m = _check(data_shape)
        top = 8 * width * m * m
        layers: list[nn.Module] = [nn.Linear(z_dim, top), nn.BatchNorm1d(top, **G_BN), nn.ReLU(),
                                   nn.Unflatten(1, (8 * width, m, m))]
        for c_in, c_out in ((8 * width, 4 * width), (4 * width, 2 * width), (2 * width, width)):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), nn.BatchNorm2d(c_out, **G_BN),
                       nn.ReLU()]
        layers += [nn.Conv2d(width, image_channels, 3, padding=1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class Discriminator(nn.Module):
    def __init__(self, data_shape: tuple, norm: NormFactory = identity_norm, width: int = 64,
                 layout: str = "compare_gan", recenter: bool = False):
        super().__init__()
        self.recenter = bool(recenter)
        if layout not in D_LAYOUTS:
            raise ConfigError(f"model.discriminator.layout must be one of {', '.join(D_LAYOUTS)}; got {layout!r}")
        image_channels, m = _check(data_shape)
        layers: list[nn.Module] = []
        c_in = image_channels
        for i, (mult, kernel, stride) in enumerate(D_LAYOUTS[layout]):
            c_out = mult * width
            layers += [nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=1),
                       nn.Identity() if i == 0 else norm(c_out), nn.LeakyReLU(0.1)]
            c_in = c_out
        self.net = nn.Sequential(*layers, nn.Flatten())
        self.feature_dim = c_in * m * m
        self.head = nn.Linear(self.feature_dim, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * 2 - 1 if self.recenter else x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).flatten()
