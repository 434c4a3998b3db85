"""Unpaired image-to-image data for ``family=cyclegan``: ``data=digits2tinted`` (embedded) and ``data=unpaired``
(a folder in CycleGAN's layout).

An unpaired datamodule holds two domains, A and B, each with its own images (and labels, or 0):

- ``domain(name, split)``: a Dataset of (x, label) of domain ``"A"`` or ``"B"``;
- ``dataset(split)``: domain B alone, the view every other consumer of a datamodule expects: the metrics'
  reference (FID/KID of the translations A -> B against B), content fingerprints, the domain classifier;
- the training loader yields batches (A, B) drawn independently from the two domains, as CycleGAN's
  ``unaligned`` dataset does (junyanz/pytorch-CycleGAN-and-pix2pix@032e884 ``data/unaligned_dataset.py``: A by
  index, B at random): B's indices come from the base class's resumable sampler (seed ``seed``), A's from a second
  one (seed ``seed + 1``) over domain A, both restarting after the module's ``d_step`` batches on resume.

``shape`` is B's shape, ``input_shape`` A's. ``unpaired = True`` marks the contract (``family=cyclegan`` refuses
data without it).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ganbench.data.base import GANDataModule, ResumableBatchSampler, tensor_dataset
from ganbench.data.folder import ImageFiles, list_images
from ganbench.errors import ConfigError

DOMAINS = ("A", "B")


class UnpairedItems(Dataset):
    """(A[i], B[j]) for an index pair (i, j): the images only (labels stay in the domain views)."""

    def __init__(self, a: Dataset, b: Dataset):
        self.a, self.b = a, b

    def __len__(self) -> int:
        return len(self.b)

    def __getitem__(self, index: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        i, j = index
        return self.a[i][0], self.b[j][0]


class UnpairedBatches(Sampler[list[tuple[int, int]]]):
    """Batches of index pairs from two resumable samplers, one per domain, zipped."""

    def __init__(self, a: ResumableBatchSampler, b: ResumableBatchSampler):
        self.a, self.b = a, b

    def __iter__(self):
        for ia, ib in zip(self.a, self.b):
            yield list(zip(ia, ib))


class UnpairedDataModule(GANDataModule):
    """Base of the unpaired datamodules: subclasses implement ``make_domain(name, split)`` (a Dataset of (x, label))."""

    unpaired = True
    input_shape: tuple[int, ...] = ()

    def make_domain(self, name: str, split: str) -> Dataset:
        raise NotImplementedError

    def domain(self, name: str, split: str = "train") -> Dataset:
        if name not in DOMAINS:
            raise ValueError(f"an unpaired datamodule has domains {', '.join(DOMAINS)}; got {name!r}")
        if split not in self.splits:
            raise ConfigError(f"data={self.name} has splits {', '.join(self.splits)}; got split={split!r}")
        key = f"{name}:{split}"
        if key not in self._datasets:
            self._datasets[key] = self.make_domain(name, split)
        return self._datasets[key]

    def make_split(self, split: str) -> Dataset:
        return self.domain("B", split)

    def train_dataloader(self) -> DataLoader:
        """Batches (A, B): B's indices from the base class's loader (its sampler, seed, resume point and checks),
        A's from a sampler over domain A with seed + 1 and the same resume point, rank and world size."""
        b_sampler = self.batch_sampler(len(self.dataset("train")))
        a = self.domain("A", "train")
        if len(a) < self.batch_size:
            raise ConfigError(f"optim.batch_size={self.batch_size} is larger than data={self.name}'s {len(a)} "
                              f"training images of domain A")
        size = len(a)
        if self.overfit_batches:
            size = min(size, self.overfit_batches * self.batch_size * b_sampler.world_size)
        a_sampler = ResumableBatchSampler(size, self.batch_size, self.seed + 1, start=b_sampler.start,
                                          rank=b_sampler.rank, world_size=b_sampler.world_size)
        return self.batch_loader(UnpairedItems(a, self.domain("B", "train")), UnpairedBatches(a_sampler, b_sampler))


# -- digits2tinted ---------------------------------------------------------------------------------------------------
SPLIT_IDS = {"train": 0, "test": 1}


def hue_to_rgb(hue: torch.Tensor) -> torch.Tensor:
    """(N,) hues in [0, 1) -> (N, 3) RGB of full saturation and value: channel n is 1 - clamp(min(k, 4 - k), 0, 1)
    with k = (n + 6 h) mod 6 and n = 5, 3, 1 for R, G, B (the HSV -> RGB formula at s = v = 1). Every colour has
    its largest channel at 1."""
    k = (torch.tensor([5.0, 3.0, 1.0]) + 6 * hue[:, None]) % 6
    return 1 - torch.minimum(k, 4 - k).clamp(0, 1)


def tint(x: torch.Tensor, colours: torch.Tensor) -> torch.Tensor:
    """Grey images (N, 1, H, W) in [-1, 1] tinted: (x + 1) / 2 * colour per image, back to [-1, 1]."""
    return ((x + 1) / 2 * colours[:, :, None, None]) * 2 - 1


def split_domains(n: int, seed: int, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A's indices, B's indices, B's hues): a permutation from numpy's default_rng([seed, split id]) whose even
    positions go to A and odd ones to B (disjoint images, different orders), then one hue per B image."""
    rng = np.random.default_rng([int(seed), SPLIT_IDS[split]])
    order = rng.permutation(n)
    a, b = order[0::2], order[1::2]
    return a, b, rng.random(len(b))


class Digits2Tinted(UnpairedDataModule):
    """grey digit <-> tinted digit, unpaired, on scikit-learn's bundled digits (offline, deterministic).

    Each split of ``data=digits`` at ``resolution`` (the fixed stratified 1437/360 split) is cut in two disjoint
    halves by ``split_domains(seed=tint_seed)``: domain A holds the digits of one half in grey, replicated to 3
    channels (CycleGAN's G maps C channels to C, and its identity loss feeds B to G_A); domain B holds the other
    half tinted by one colour per image of a random hue (full saturation and value, so the largest channel of a B
    pixel is its grey level: B -> A has an exact answer, A -> B is one-to-many). No image of A has its tinted
    twin in B. Train: 719 A, 718 B; test: 180 A, 180 B. Labels (the digit) come with both domains, so the domain
    classifier (trained on B) scores the translations A -> B.
    """

    name = "digits2tinted"
    num_classes = 10
    default_extractor = "domain"

    def __init__(self, resolution: int = 32, tint_seed: int = 0, **kw):
        super().__init__(**kw)
        from ganbench.data.digits import Digits

        self.digits = Digits(resolution=resolution)  # checks the resolution
        self.resolution = self.digits.resolution
        if isinstance(tint_seed, bool) or not isinstance(tint_seed, int) or tint_seed < 0:
            raise ConfigError(f"data.tint_seed must be an integer >= 0; got {tint_seed!r}")
        self.tint_seed = tint_seed
        self.shape = self.input_shape = (3, self.resolution, self.resolution)
        self._tensors: dict[str, dict[str, tuple[torch.Tensor, torch.Tensor]]] = {}

    def tensors(self, split: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """{"A": (images, labels), "B": (images, labels)} of a split."""
        if split not in self._tensors:
            x, y = self.digits.make_split(split).tensors
            a, b, hues = split_domains(len(x), self.tint_seed, split)
            colours = hue_to_rgb(torch.from_numpy(hues).float())
            self._tensors[split] = {"A": (x[a].repeat(1, 3, 1, 1), y[a]), "B": (tint(x[b], colours), y[b])}
        return self._tensors[split]

    def make_domain(self, name: str, split: str) -> Dataset:
        return tensor_dataset(*self.tensors(split)[name])


# -- a folder in CycleGAN's layout -----------------------------------------------------------------------------------
LAYOUT = "root/trainA, root/trainB, root/testA, root/testB (CycleGAN's unaligned layout)"


class UnpairedFolder(UnpairedDataModule):
    """``data=unpaired``: the images of root/<split><domain> (trainA, trainB, testA, testB), each folder listed
    recursively and sorted by path. Every image is converted to RGB or grey (``channels`` for B, ``input_channels``
    for A), centre-cropped to its largest square and resized (bilinear, antialiased) to ``resolution``, as
    ``data=folder`` does; no random crop or flip (CycleGAN's load 286 / crop 256 jitter). Unlabelled (label 0)."""

    name = "unpaired"

    def __init__(self, root: str | None = None, resolution: int = 64, channels: int = 3,
                 input_channels: int | None = None, **kw):
        if not root:
            raise ConfigError(f"data.root is required for data=unpaired: a directory with {LAYOUT}")
        super().__init__(root=root, **kw)
        input_channels = channels if input_channels is None else input_channels
        for key, value in (("channels", channels), ("input_channels", input_channels)):
            if value not in (1, 3):
                raise ConfigError(f"data.{key} must be 1 (grey) or 3 (RGB) for data=unpaired; got {value!r}")
        if int(resolution) < 8 or int(resolution) % 8:
            raise ConfigError(f"data.resolution must be a positive multiple of 8 for data=unpaired; got {resolution}")
        self.resolution = int(resolution)
        self.shape = (int(channels), self.resolution, self.resolution)
        self.input_shape = (int(input_channels), self.resolution, self.resolution)

    def check_layout(self) -> None:
        """root and its trainA, trainB exist (checked when a domain is first read, not at construction)."""
        if not self.root.is_dir():
            raise ConfigError(f"data.root={self.root}: no such directory (data=unpaired needs {LAYOUT})")
        missing = [f"train{d}" for d in DOMAINS if not (self.root / f"train{d}").is_dir()]
        if missing:
            raise ConfigError(f"data.root={self.root} has no {' or '.join(missing)}: data=unpaired needs {LAYOUT}")

    def make_domain(self, name: str, split: str) -> Dataset:
        from ganbench.data.vision import image_transform

        self.check_layout()
        folder = self.root / f"{split}{name}"
        files = list_images(folder) if folder.is_dir() else []
        if not files:
            raise ConfigError(f"data=unpaired: no images in {folder} (data=unpaired needs {LAYOUT})")
        channels = (self.input_shape if name == "A" else self.shape)[0]
        return ImageFiles(files, "RGB" if channels == 3 else "L", image_transform(self.resolution, crop="square"))
