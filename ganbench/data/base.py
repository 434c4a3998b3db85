"""The datamodule contract shared by every dataset."""

from __future__ import annotations

import hashlib
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset


#: ``data.range``: the interval D and the penalties see images in. The data and G's output stay in [-1, 1] (G ends
#: in tanh; samples and metrics use [-1, 1]); with ``unit`` both are mapped to [0, 1] by (x + 1) / 2 on their way
#: into D (compare_gan's convention: its generators end in a sigmoid or (tanh + 1) / 2 and its penalties take
#: gradients with respect to [0, 1] inputs).
DATA_RANGES = {"symmetric": (-1.0, 1.0), "unit": (0.0, 1.0)}


class GANDataModule(L.LightningDataModule):
    """Base datamodule. Subclasses implement ``make_split(split) -> Dataset`` of (x, y) pairs: images in [-1, 1],
    toy vectors in their own coordinates (the MLP generator has a linear output).

    ``shape`` is the shape of one sample, ``(C, H, W)`` or ``(D,)``. Training batches are shuffled with a generator
    seeded from ``seed`` and drop the last partial batch, so every D step sees a full fresh batch.
    """

    name: str = "base"
    shape: tuple[int, ...] = ()
    num_classes: int | None = None
    #: which feature space scores this data by default: "inception", "domain" (a small classifier trained on the
    #: data, for digits/MNIST-like sets) or "toy" (2-D mode metrics)
    default_extractor: str = "inception"
    splits: tuple[str, ...] = ("train", "test")

    def __init__(self, batch_size: int = 64, seed: int = 0, num_workers: int = 0, root: str | None = None,
                 download: bool = False, overfit_batches: int = 0, range: str = "symmetric"):  # noqa: A002
        super().__init__()
        if range not in DATA_RANGES:
            from ganbench.errors import ConfigError
            raise ConfigError(f"data.range must be one of {', '.join(DATA_RANGES)}; got {range!r}")
        self.range = range
        if int(overfit_batches) < 0:
            from ganbench.errors import ConfigError
            raise ConfigError(f"data.overfit_batches must be an integer >= 0 (0: all the data); got {overfit_batches}")
        self.overfit_batches = int(overfit_batches)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.num_workers = int(num_workers)
        self.root = Path(root).expanduser() if root else None
        self.download = bool(download)
        self._datasets: dict[str, Dataset] = {}

    # -- to implement -------------------------------------------------------------------------------------------
    def make_split(self, split: str) -> Dataset:
        raise NotImplementedError

    # -- shared -------------------------------------------------------------------------------------------------
    def dataset(self, split: str = "train") -> Dataset:
        if split not in self.splits:
            from ganbench.errors import ConfigError
            raise ConfigError(f"data={self.name} has splits {', '.join(self.splits)}; got split={split!r}")
        if split not in self._datasets:
            self._datasets[split] = self.make_split(split)
        return self._datasets[split]

    def setup(self, stage: str | None = None) -> None:
        self.dataset("train")

    def train_dataloader(self) -> DataLoader:
        """An endless loader of shuffled full batches (``ResumableBatchSampler``). Under a trainer it starts after
        the batches the module has already consumed (its ``d_step``, restored from a checkpoint) and gives each
        rank its own share."""
        ds = self.dataset("train")
        return self.batch_loader(ds, self.batch_sampler(len(ds)))

    def batch_sampler(self, size: int) -> "ResumableBatchSampler":
        """The training batches' sampler over ``size`` samples: this module's seed and batch size, the trainer's
        resume point (the module's ``d_step``), rank and world size, ``debug=overfit``'s cap."""
        if size < self.batch_size:
            from ganbench.errors import ConfigError
            raise ConfigError(f"optim.batch_size={self.batch_size} is larger than data={self.name}'s "
                              f"{size} training samples")
        trainer = getattr(self, "trainer", None)
        start, rank, world = 0, 0, 1
        if trainer is not None:
            start = int(getattr(trainer.lightning_module, "d_step", 0))
            rank, world = trainer.global_rank, trainer.world_size
        if self.overfit_batches:  # debug=overfit: the same few batches' samples over and over
            size = min(size, self.overfit_batches * self.batch_size * world)
        return ResumableBatchSampler(size, self.batch_size, self.seed, start=start, rank=rank, world_size=world)

    def batch_loader(self, ds: Dataset, batches: Sampler[list[int]]) -> DataLoader:
        """A loader of the batches of indices ``batches`` yields. A ``TensorDataset`` (the toy sets, digits,
        in-memory images) is indexed with a whole batch at once: one gather per tensor instead of ``batch_size``
        item lookups and a stack (the same values)."""
        kw = dict(num_workers=self.num_workers, generator=torch.Generator().manual_seed(self.seed),
                  persistent_workers=self.num_workers > 0)
        if isinstance(ds, TensorDataset):
            return DataLoader(ds, sampler=batches, batch_size=None, **kw)
        return DataLoader(ds, batch_sampler=batches, **kw)

    def real_samples(self, n: int, split: str = "train") -> torch.Tensor:
        """The first ``n`` samples of a split (deterministic order), stacked: the reference set for metrics."""
        ds = self.dataset(split)
        n = min(int(n), len(ds))
        if isinstance(ds, TensorDataset):
            return ds.tensors[0][:n]
        return torch.stack([ds[i][0] for i in range(n)])

    def fingerprint(self, split: str = "train", n: int | None = None) -> str:
        """A content hash of a split (its first ``n`` samples), used to key caches of features and statistics."""
        x = self.real_samples(n or len(self.dataset(split)), split)
        h = hashlib.sha256()
        h.update(f"{self.name}:{split}:{tuple(x.shape)}".encode())
        h.update(x.contiguous().float().numpy().tobytes())
        return h.hexdigest()[:16]


class ResumableBatchSampler(Sampler[list[int]]):
    """An endless, exactly resumable stream of full batches.

    The data is cut into global batches of ``batch_size * world_size``: epoch ``e`` is a permutation of the dataset
    drawn from ``numpy.random.default_rng([seed, e])`` (the remainder that does not fill a global batch is dropped),
    and rank ``r`` takes the ``r``-th slice of each. ``start`` skips the first ``start`` batches of this rank, so a run
    resumed after ``d_step`` discriminator steps sees exactly the batches an uninterrupted run would, also across
    epoch boundaries. Each batch depends only on (seed, batch index): no state but ``start`` is needed.
    """

    def __init__(self, size: int, batch_size: int, seed: int = 0, start: int = 0, rank: int = 0,
                 world_size: int = 1):
        self.size, self.batch_size, self.seed = int(size), int(batch_size), int(seed)
        self.start, self.rank, self.world_size = int(start), int(rank), int(world_size)
        self.per_epoch = self.size // (self.batch_size * self.world_size)
        if self.per_epoch < 1:
            raise ValueError(f"{size} samples cannot fill one batch of {batch_size} on {world_size} rank(s)")
        self._cached: tuple[int, np.ndarray] | None = None

    def permutation(self, epoch: int) -> np.ndarray:
        if self._cached is None or self._cached[0] != epoch:
            self._cached = (epoch, np.random.default_rng([self.seed, epoch]).permutation(self.size))
        return self._cached[1]

    def batch(self, index: int) -> list[int]:
        """This rank's ``index``-th batch."""
        epoch, position = divmod(index, self.per_epoch)
        first = (position * self.world_size + self.rank) * self.batch_size
        return self.permutation(epoch)[first:first + self.batch_size].tolist()

    def __iter__(self):
        index = self.start
        while True:
            yield self.batch(index)
            index += 1


def tensor_dataset(x: torch.Tensor, y: torch.Tensor | None = None) -> TensorDataset:
    if y is None:
        y = torch.zeros(len(x), dtype=torch.long)
    return TensorDataset(x.float(), y.long())
