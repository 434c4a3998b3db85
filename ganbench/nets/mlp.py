"""Fully connected nets for the 2-D toy mixtures, in the style of VEEGAN (Srivastava et al. 2017) and PacGAN
(Lin et al. 2018).

- G: z -> ``layers`` x (linear ``hidden``, BN, ReLU) -> linear D. The output is linear, not tanh: the toy data
  (ring of radius 2, grid spanning [-4, 4]) lies outside [-1, 1].
- D: x -> linear ``hidden``, LeakyReLU(0.2); (``layers`` - 1) x (linear ``hidden``, [norm], LeakyReLU(0.2));
  linear -> 1.
"""

from __future__ import annotations

import torch
from torch import nn

from ganbench.nets.layers import NormFactory, identity_norm

NAME = "mlp"


def _check(data_shape: tuple, layers: int) -> int:
    from ganbench.errors import ConfigError

    shape = tuple(int(s) for s in data_shape)
    if len(shape) != 1:
        raise ConfigError(f"model={NAME} serves flat vectors (D,) such as the 2-D toy data; the data has shape "
                          f"{shape} (pick an image model, e.g. model=dcgan)")
    if int(layers) < 1:
        raise ConfigError(f"model={NAME} needs layers >= 1; got layers={layers}")
    return shape[0]


class Generator(nn.Module):
    def __init__(self, z_dim: int, data_shape: tuple, hidden: int = 128, layers: int = 3):
        super().__init__()
        dim = _check(data_shape, layers)
        blocks: list[nn.Module] = []
        for i in range(layers):
            blocks += [nn.Linear(z_dim if i == 0 else hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU()]
        self.net = nn.Sequential(*blocks, nn.Linear(hidden, dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class Discriminator(nn.Module):
    def __init__(self, data_shape: tuple, norm: NormFactory = identity_norm, hidden: int = 128, layers: int = 3):
        super().__init__()
        dim = _check(data_shape, layers)
        blocks: list[nn.Module] = [nn.Linear(dim, hidden), nn.LeakyReLU(0.2)]
        for _ in range(layers - 1):
            blocks += [nn.Linear(hidden, hidden), norm(hidden), nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*blocks)
        self.feature_dim = hidden
        self.head = nn.Linear(hidden, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.net(x)).flatten()
