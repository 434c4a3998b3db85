"""The "InfoGAN-style" architecture of Lucic et al. 2018 ("Are GANs Created Equal?", Table 7), used there for every
model; after Chen et al. 2016's InfoGAN MNIST networks. As their code builds it (google/compare_gan v1@d6c5976
``compare_gan/src/gans/abstract_gan.py``: ``generator``, ``discriminator``; ``ops.py``: ``batch_norm``, ``lrelu``):

- G: FC 1024, BN, act; FC 128 * s/4 * s/4, BN, act; deconv 64 4x4 stride 2, BN, act; deconv C 4x4 stride 2;
  tanh (v1 ends in a sigmoid for its [0, 1] images; ganbench's images are in [-1, 1]). ``activation``: ``lrelu``
  (slope 0.2, v1's code; default) or ``relu``.
- D: conv 64 4x4 stride 2, lReLU; conv 128 4x4 stride 2, [norm], lReLU; FC 1024, [norm], lReLU; FC 1.

Every batch norm of v1 (G's, and D's with ``batch_norm=True``) is ``tf.contrib.layers.batch_norm(decay=0.999,
epsilon=0.001)``: torch momentum 0.001, eps 1e-3. LeakyReLU slope 0.2. D's [norm] is the regularizer's (reg=bn,
reg=ln), or v1's batch norm with ``batch_norm=True``: Lucic et al. search over "batch norm in D: on/off" as a
hyperparameter of this architecture. ``width`` scales 64 / 128 / 1024 as width / 2 * width / 16 * width (paper:
width=64). Serves square sides that are multiples of 4, >= 8 (28x28 MNIST included).
"""

from __future__ import annotations

import torch
from torch import nn

from ganbench.errors import ConfigError
from ganbench.nets.layers import FeatureBatchNorm, NormFactory, check_image_shape, identity_norm

NAME = "infogan"
V1_BN = {"eps": 1e-3, "momentum": 0.001}  # TF decay 0.999 = torch momentum 1 - 0.999
ACTIVATIONS = {"lrelu": lambda: nn.LeakyReLU(0.2), "relu": nn.ReLU}


def v1_batch_norm(channels: int) -> nn.Module:
    return FeatureBatchNorm(channels, **V1_BN)


def _check(data_shape: tuple) -> tuple[int, int]:
    image_channels, side = check_image_shape(NAME, data_shape, min_side=8, multiple_of=4)
    return image_channels, side // 4


class Generator(nn.Module):
    def __init__(self, z_dim: int, data_shape: tuple, width: int = 64, activation: str = "lrelu"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ConfigError(f"model.generator.activation must be one of {', '.join(ACTIVATIONS)}; "
                              f"got {activation!r}")
        act = ACTIVATIONS[activation]
        image_channels, m = _check(data_shape)
        self.net = nn.Sequential(
            nn.Linear(z_dim, 16 * width), nn.BatchNorm1d(16 * width, **V1_BN), act(),
            nn.Linear(16 * width, 2 * width * m * m), nn.BatchNorm1d(2 * width * m * m, **V1_BN), act(),
            nn.Unflatten(1, (2 * width, m, m)),
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1), nn.BatchNorm2d(width, **V1_BN), act(),
            nn.ConvTranspose2d(width, image_channels, 4, stride=2, padding=1), nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class Discriminator(nn.Module):
    def __init__(self, data_shape: tuple, norm: NormFactory = identity_norm, width: int = 64,
                 batch_norm: bool = False):
        super().__init__()
        image_channels, m = _check(data_shape)
        if batch_norm:
            if norm is not identity_norm:
                raise ConfigError("model.discriminator.batch_norm=true and a normalization in reg (bn, ln) both "
                                  "normalize D: keep one")
            norm = v1_batch_norm
        self.net = nn.Sequential(
            nn.Conv2d(image_channels, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), norm(2 * width), nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(2 * width * m * m, 16 * width), norm(16 * width), nn.LeakyReLU(0.2),
        )
        self.feature_dim = 16 * width
        self.head = nn.Linear(self.feature_dim, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.net(x)).flatten()
