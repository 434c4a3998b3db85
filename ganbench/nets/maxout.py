"""PacGAN's 2-D toy networks (Lin et al. 2018), the nets of ALI's mixture experiments (Dumoulin et al. 2017).

Reference: fjxmlzn/PacGAN@190853e ``synthetic_data_experiments/2DGrid_GAN&PacGAN/pacgan_task.py``
(``create_model_brick``, ``create_models``; the 2DRing task is identical) and its ``config.py``; the layers are
Blocks' (mila-iqia/blocks@c69c2dc ``blocks/bricks/simple.py`` LinearMaxout/Maxout, ``blocks/bricks/bn.py``).

- G: z -> 4 x (linear ``hidden`` without bias, batch norm, ReLU) -> linear (with bias) to the data's dimension.
- D: x (m samples of a pack side by side) -> 3 x maxout(``hidden`` units of ``pieces`` pieces) -> linear -> 1.
- Init: every weight N(0, ``init_std``^2), every bias 0 (the reference's IsotropicGaussian(0.02), Constant(0));
  batch-norm scale 1 and shift 0 (Blocks' defaults).

Batch norm is Blocks' as the task trains it (``BlocksBatchNorm``): in training, each of ``bn_groups`` groups is
normalised by its own mean and sqrt(biased variance + 1e-4). PacGAN calls G once per member of a pack (m calls of
100 samples), so every call has its own statistics; ganbench generates all N = 100 m samples at once and packs
consecutive ones, so the reference's j-th call is the group of rows j, j + m, j + 2m, ... (``bn_groups`` = m).
In evaluation the population mean and standard deviation are used; after every training forward they move as
p <- 0.95 p + 0.05 (the batch statistic averaged over the groups), the task's ``bn_updates``.
"""

from __future__ import annotations

import torch
from torch import nn

from ganbench.nets.layers import NormFactory, identity_norm

NAME = "pacgan_toy"


def _check(data_shape: tuple, **positive: int) -> int:
    from ganbench.errors import ConfigError

    shape = tuple(int(s) for s in data_shape)
    if len(shape) != 1:
        raise ConfigError(f"model={NAME} serves flat vectors (D,) such as the 2-D toy data; the data has shape "
                          f"{shape} (pick an image model, e.g. model=dcgan)")
    for key, value in positive.items():
        if int(value) < 1:
            raise ConfigError(f"model={NAME} needs {key} >= 1; got {key}={value}")
    return shape[0]


def gaussian_init(module: nn.Module, std: float) -> None:
    """Every Linear weight N(0, std^2), every Linear bias 0 (the reference's weights_init and biases_init)."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, 0.0, std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class BlocksBatchNorm(nn.Module):
    """Batch norm of (N, C) features as Blocks computes it, with ``groups`` independent batches.

    Training: x of N rows is split into ``groups`` strided groups (group j = rows j, j + groups, ...); each is
    normalised by its mean and stdev = sqrt(mean((x - mean)^2) + eps); then ``scale * x_hat + shift``.
    The population statistics (mean 0 and stdev 1 at the start) move by
    ``p <- (1 - momentum) p + momentum * mean over groups``. Evaluation: (x - population mean) / population stdev.
    """

    def __init__(self, channels: int, groups: int = 1, eps: float = 1e-4, momentum: float = 0.05):
        super().__init__()
        self.groups, self.eps, self.momentum = int(groups), float(eps), float(momentum)
        self.scale = nn.Parameter(torch.ones(channels))
        self.shift = nn.Parameter(torch.zeros(channels))
        self.register_buffer("population_mean", torch.zeros(channels))
        self.register_buffer("population_stdev", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return (x - self.population_mean) / self.population_stdev * self.scale + self.shift
        n, c = x.shape
        if n % self.groups:
            raise ValueError(f"BlocksBatchNorm: {n} rows cannot form {self.groups} equal groups")
        grouped = x.reshape(n // self.groups, self.groups, c)  # [i, j] = row i * groups + j: group j
        mean = grouped.mean(0, keepdim=True)
        stdev = ((grouped - mean).square().mean(0, keepdim=True) + self.eps).sqrt()
        with torch.no_grad():
            self.population_mean.lerp_(mean.mean((0, 1)), self.momentum)
            self.population_stdev.lerp_(stdev.mean((0, 1)), self.momentum)
        return ((grouped - mean) / stdev).reshape(n, c) * self.scale + self.shift


class LinearMaxout(nn.Module):
    """Blocks' LinearMaxout: a linear map to ``units * pieces`` outputs, then the max over each unit's
    consecutive ``pieces`` columns (column k * pieces + p is piece p of unit k)."""

    def __init__(self, in_features: int, units: int, pieces: int):
        super().__init__()
        self.units, self.pieces = int(units), int(pieces)
        self.linear = nn.Linear(in_features, self.units * self.pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).reshape(len(x), self.units, self.pieces).amax(-1)


class Generator(nn.Module):
    def __init__(self, z_dim: int, data_shape: tuple, hidden: int = 400, layers: int = 4, bn_groups: int = 1,
                 init_std: float = 0.02):
        super().__init__()
        dim = _check(data_shape, hidden=hidden, layers=layers, bn_groups=bn_groups)
        blocks: list[nn.Module] = []
        for i in range(int(layers)):
            blocks += [nn.Linear(z_dim if i == 0 else hidden, hidden, bias=False),
                       BlocksBatchNorm(hidden, groups=bn_groups), nn.ReLU()]
        self.net = nn.Sequential(*blocks, nn.Linear(hidden, dim))
        gaussian_init(self, init_std)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class Discriminator(nn.Module):
    def __init__(self, data_shape: tuple, norm: NormFactory = identity_norm, hidden: int = 200, layers: int = 3,
                 pieces: int = 5, init_std: float = 0.02):
        super().__init__()
        dim = _check(data_shape, hidden=hidden, layers=layers, pieces=pieces)
        blocks: list[nn.Module] = []
        for i in range(int(layers)):
            blocks.append(LinearMaxout(dim if i == 0 else hidden, hidden, pieces))
            if i > 0:  # a norm (reg=bn/ln) after every hidden layer but the first, as model=mlp; none in PacGAN
                blocks.append(norm(hidden))
        self.net = nn.Sequential(*blocks)
        self.feature_dim = int(hidden)
        self.head = nn.Linear(self.feature_dim, 1)
        gaussian_init(self, init_std)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.net(x)).flatten()
