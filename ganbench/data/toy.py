"""2-D toy mixtures: the mode-collapse benchmarks of VEEGAN (Srivastava et al. 2017) and PacGAN (Lin et al. 2018)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from ganbench.data.base import GANDataModule, ResumableBatchSampler, tensor_dataset


def ring_modes(n_modes: int = 8, radius: float = 2.0) -> torch.Tensor:
    angles = torch.arange(n_modes, dtype=torch.float64) * (2 * math.pi / n_modes)
    return torch.stack([radius * torch.cos(angles), radius * torch.sin(angles)], dim=1).float()


def grid_modes(side: int = 5, spacing: float = 2.0) -> torch.Tensor:
    ticks = (torch.arange(side, dtype=torch.float32) - (side - 1) / 2) * spacing
    gx, gy = torch.meshgrid(ticks, ticks, indexing="ij")
    return torch.stack([gx.flatten(), gy.flatten()], dim=1)


class MixtureDataModule(GANDataModule):
    """An equal-weight mixture of isotropic Gaussians; ``modes`` and ``std`` define it (and the toy metrics).

    ``draw_seed``: None (default) draws every split from a fixed seed, the same data for every run; an integer
    draws them from that seed (PacGAN draws its 100k points anew in every run: ``draw_seed: ${seed}``).
    ``fixed_packs``: 0 (default) trains on the points; m >= 1 on PacGAN's packed data set (fjxmlzn/PacGAN@190853e
    ``synthetic_data_experiments/PacGAN/pacgan/datasets.py`` GaussianPackingMixture): ``n_train`` packs, member j
    of pack t being point ``ids_j[t]`` with ``ids_j`` drawn uniformly with replacement, fixed for the whole run
    (m = 1: a bootstrap resample of the points). Pack t is rows t m .. t m + m - 1 and batches take whole packs in
    a shuffled order, so D's packs (``family.pack`` = m, consecutive samples) are exactly these.
    """

    shape = (2,)
    default_extractor = "toy"

    def __init__(self, modes: torch.Tensor, std: float, n_train: int = 50_000, n_test: int = 10_000,
                 draw_seed: int | None = None, fixed_packs: int = 0, **kw):
        super().__init__(**kw)
        from ganbench.errors import ConfigError

        self.modes = modes
        self.num_classes = len(modes)  # the mixture component is the label
        self.std = float(std)
        if not (self.std > 0 and self.std < float("inf")):
            raise ConfigError(f"data.std must be a finite number > 0 (each mode's standard deviation); got {std}")
        self.n = {"train": int(n_train), "test": int(n_test)}
        self.draw_seed = None if draw_seed is None else int(draw_seed)
        try:
            self.fixed_packs = int(fixed_packs)
            ok = not isinstance(fixed_packs, bool) and self.fixed_packs == float(fixed_packs) >= 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ConfigError(f"data.fixed_packs must be an integer >= 0 (0: no fixed packs); got {fixed_packs!r}")
        if self.fixed_packs > 1 and self.batch_size % self.fixed_packs:
            raise ConfigError(f"data.fixed_packs={self.fixed_packs} needs optim.batch_size divisible by it (batches "
                              f"take whole packs); got optim.batch_size={self.batch_size}")

    def generator(self, split: str) -> torch.Generator:
        index = self.splits.index(split)
        if self.draw_seed is None:
            return torch.Generator().manual_seed(1000 + index)  # data fixed; training seed separate
        return torch.Generator().manual_seed(int(np.random.SeedSequence([self.draw_seed, index]).generate_state(1)[0]))

    def make_split(self, split: str):
        g = self.generator(split)
        n = self.n[split]
        labels = torch.randint(len(self.modes), (n,), generator=g)
        x = self.modes[labels] + self.std * torch.randn(n, 2, generator=g)
        if split == "train" and self.fixed_packs:
            ids = torch.randint(n, (n, self.fixed_packs), generator=g)  # ids[t, j]: member j of pack t
            x, labels = x[ids.flatten()], labels[ids.flatten()]
        return tensor_dataset(x, labels)

    def train_dataloader(self) -> DataLoader:
        m = self.fixed_packs
        if m <= 1:
            return super().train_dataloader()
        ds = self.dataset("train")
        rows = self.batch_sampler(len(ds))
        packs = ResumableBatchSampler(rows.size // m, self.batch_size // m, self.seed, start=rows.start,
                                      rank=rows.rank, world_size=rows.world_size)
        return self.batch_loader(ds, WholePacks(packs, m))


class WholePacks(Sampler[list[int]]):
    """Batches of pack indices (from ``packs``) as the row indices of those packs: pack t is rows t m .. t m + m - 1."""

    def __init__(self, packs: ResumableBatchSampler, m: int):
        self.packs, self.m = packs, int(m)

    def __iter__(self):
        for batch in self.packs:
            yield [t * self.m + j for t in batch for j in range(self.m)]


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
