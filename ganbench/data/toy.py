"""2-D toy mixtures: the mode-collapse benchmarks of VEEGAN (Srivastava et al. 2017) and PacGAN (Lin et al. 2018)."""

from __future__ import annotations

import math

import torch

from ganbench.data.base import GANDataModule, tensor_dataset


def ring_modes(n_modes: int = 8, radius: float = 2.0) -> torch.Tensor:
    angles = torch.arange(n_modes, dtype=torch.float64) * (2 * math.pi / n_modes)
    return torch.stack([radius * torch.cos(angles), radius * torch.sin(angles)], dim=1).float()


def grid_modes(side: int = 5, spacing: float = 2.0) -> torch.Tensor:
    ticks = (torch.arange(side, dtype=torch.float32) - (side - 1) / 2) * spacing
    gx, gy = torch.meshgrid(ticks, ticks, indexing="ij")
    return torch.stack([gx.flatten(), gy.flatten()], dim=1)


class MixtureDataModule(GANDataModule):
    """An equal-weight mixture of isotropic Gaussians; ``modes`` and ``std`` define it (and the toy metrics)."""

    shape = (2,)
    default_extractor = "toy"

    def __init__(self, modes: torch.Tensor, std: float, n_train: int = 50_000, n_test: int = 10_000, **kw):
        super().__init__(**kw)
        self.modes = modes
        self.std = float(std)
        self.n = {"train": int(n_train), "test": int(n_test)}

    def make_split(self, split: str):
        g = torch.Generator().manual_seed(1000 + self.splits.index(split))  # data fixed; training seed separate
        n = self.n[split]
        labels = torch.randint(len(self.modes), (n,), generator=g)
        x = self.modes[labels] + self.std * torch.randn(n, 2, generator=g)
        return tensor_dataset(x, labels)


class Ring8(MixtureDataModule):
    """8 Gaussians on a circle of radius 2, std 0.02 (VEEGAN's 2-D ring)."""

    name = "ring8"

    def __init__(self, radius: float = 2.0, std: float = 0.02, **kw):
        super().__init__(ring_modes(8, radius), std, **kw)


class Grid25(MixtureDataModule):
    """25 Gaussians on a 5x5 grid with spacing 2, std 0.05 (PacGAN's 2-D grid)."""

    name = "grid25"

    def __init__(self, spacing: float = 2.0, std: float = 0.05, **kw):
        super().__init__(grid_modes(5, spacing), std, **kw)


class SwissRoll(GANDataModule):
    """scikit-learn's swiss roll projected to its (x, z) plane, scaled to unit-ish range; no discrete modes."""

    name = "swissroll"
    shape = (2,)
    default_extractor = "toy"

    def __init__(self, noise: float = 0.25, n_train: int = 50_000, n_test: int = 10_000, **kw):
        super().__init__(**kw)
        self.noise = float(noise)
        self.n = {"train": int(n_train), "test": int(n_test)}

    def make_split(self, split: str):
        from sklearn.datasets import make_swiss_roll

        x, _ = make_swiss_roll(self.n[split], noise=self.noise, random_state=1000 + self.splits.index(split))
        return tensor_dataset(torch.from_numpy(x[:, [0, 2]] / 5.0).float())
