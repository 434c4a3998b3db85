"""Paired image-to-image data for ``family=pix2pix``: ``data=edges2digits`` (embedded) and ``data=paired`` (a folder).

A paired datamodule has two views of each split:

- ``pairs(split)``: (A, B) pairs, A the input and B the target, both in [-1, 1]; the training loader draws its
  batches from ``pairs("train")`` (with the base class's resumable sampler);
- ``dataset(split)``: the target domain B alone, as (B, label) (label 0 without classes), the view every other
  consumer of a datamodule expects: the metrics' reference (``real_samples``: FID/KID of the translations against
  the targets), content fingerprints, the domain classifier (trained on B and its labels).

``shape`` is B's shape, ``input_shape`` A's; both have the same side. ``paired = True`` marks the contract
(``family=pix2pix`` refuses data without it).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

from ganbench.data.base import GANDataModule, tensor_dataset
from ganbench.data.folder import holdout_indices, list_images
from ganbench.errors import ConfigError


class PairedDataModule(GANDataModule):
    """Base of the paired datamodules: subclasses implement ``make_pairs(split)`` (a Dataset of (A, B)) and
    ``make_split(split)`` (the target view, a Dataset of (B, label))."""

    paired = True
    input_shape: tuple[int, ...] = ()

    def make_pairs(self, split: str) -> Dataset:
        raise NotImplementedError

    def pairs(self, split: str = "train") -> Dataset:
        if split not in self.splits:
            raise ConfigError(f"data={self.name} has splits {', '.join(self.splits)}; got split={split!r}")
        key = f"pairs:{split}"
        if key not in self._datasets:
            self._datasets[key] = self.make_pairs(split)
        return self._datasets[key]

    def train_dataloader(self) -> DataLoader:
        """The base class's endless resumable loader (its sampler, seed and checks), over the (A, B) pairs."""
        return self.batch_loader(self.pairs("train"), self.batch_sampler(len(self.dataset("train"))))


# -- edges2digits ----------------------------------------------------------------------------------------------------
SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def sobel_magnitude(x: torch.Tensor) -> torch.Tensor:
    """sqrt(g_x^2 + g_y^2) of single-channel images (N, 1, H, W), Sobel kernels, border replicated."""
    kernels = torch.stack([SOBEL_X, SOBEL_X.T]).unsqueeze(1).to(x)
    g = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernels)
    return g.square().sum(1, keepdim=True).sqrt()


def digit_edges(b: torch.Tensor, threshold: float) -> torch.Tensor:
    """The edge map A of digits B in [-1, 1]: 1 where the Sobel gradient magnitude of (B + 1) / 2 is at least
    ``threshold`` times the image's largest, -1 elsewhere (a blank image has no edges)."""
    m = sobel_magnitude((b + 1) / 2)
    peak = m.amax(dim=(1, 2, 3), keepdim=True)
    return torch.where((m >= threshold * peak) & (peak > 0), 1.0, -1.0).to(b.dtype)


class Edges2Digits(PairedDataModule):
    """edges -> digit on scikit-learn's bundled digits (offline, deterministic, no randomness at all).

    B is exactly ``data=digits`` at ``resolution`` (bilinear from 8x8, [-1, 1], the same fixed stratified 80/20
    split with seed 0: 1437 train, 360 test); A = ``digit_edges(B, threshold)``, binary {-1, 1}. Labels (the digit)
    come with the target view, so the digit classifier scores the translations.
    """

    name = "edges2digits"
    num_classes = 10
    default_extractor = "domain"

    def __init__(self, resolution: int = 32, threshold: float = 0.4, **kw):
        super().__init__(**kw)
        from ganbench.data.digits import Digits

        self.digits = Digits(resolution=resolution)  # checks the resolution
        self.resolution = self.digits.resolution
        self.threshold = float(threshold)
        if not 0 < self.threshold <= 1:
            raise ConfigError(f"data.threshold must be in (0, 1] (a fraction of each image's largest gradient); "
                              f"got {threshold}")
        self.shape = self.input_shape = (1, self.resolution, self.resolution)
        self._tensors: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def tensors(self, split: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(A, B, labels) of a split."""
        if split not in self._tensors:
            b, y = self.digits.make_split(split).tensors
            self._tensors[split] = (digit_edges(b, self.threshold), b, y)
        return self._tensors[split]

    def make_split(self, split: str) -> Dataset:
        _, b, y = self.tensors(split)
        return tensor_dataset(b, y)

    def make_pairs(self, split: str) -> Dataset:
        a, b, _ = self.tensors(split)
        return TensorDataset(a, b)


# -- a folder of pairs ------------------------------------------------------------------------------------------------
LAYOUTS = ("auto", "side_by_side", "folders")
DIRECTIONS = ("AtoB", "BtoA")
FORMAT = ("a folder of side-by-side A|B images (pix2pix's aligned format) or two aligned folders root/A and root/B "
          "with the same file names")


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file's header."""
    from PIL import Image

    with Image.open(path) as img:
        return img.size


class PairedFiles(Dataset):
    """(A, B) decoded on access: ``items`` of (path, None) (side by side: A the left half) or (path_a, path_b)."""

    def __init__(self, items: list[tuple[Path, Path | None]], modes: tuple[str, str], transform, swap: bool):
        self.items, self.modes, self.transform, self.swap = items, modes, transform, swap

    def __len__(self) -> int:
        return len(self.items)

    def images(self, i: int):
        from PIL import Image

        first, second = self.items[i]
        if second is None:
            with Image.open(first) as img:
                w, h = img.size
                left, right = img.crop((0, 0, w // 2, h)), img.crop((w // 2, 0, w // 2 * 2, h))
        else:
            with Image.open(first) as img_a, Image.open(second) as img_b:
                left, right = img_a.copy(), img_b.copy()
        return (right, left) if self.swap else (left, right)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = self.images(i)
        return self.transform(a.convert(self.modes[0])), self.transform(b.convert(self.modes[1]))


class TargetView(Dataset):
    """(B, 0) of a paired dataset (no labels)."""

    def __init__(self, pairs: Dataset):
        self.pairs = pairs

    @property
    def targets(self) -> torch.Tensor:
        return torch.zeros(len(self.pairs), dtype=torch.long)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.pairs[i][1], 0


class PairedFolder(PairedDataModule):
    """``data=paired``: pairs from ``root`` (see FORMAT), listed recursively and sorted by path; ``test_fraction``
    of them, evenly spaced, form the test split (as ``data=folder``). Images are used at their size, which must be
    ``resolution`` square with A and B of the same size, unless ``resize: true`` resizes both (bilinear,
    antialiased, aspect not kept, as pix2pix's ``load_size``). ``direction: BtoA`` swaps the roles. No random
    crop or flip (pix2pix's jitter) is applied."""

    name = "paired"

    def __init__(self, root: str | None = None, layout: str = "auto", resolution: int = 64, channels: int = 3,
                 input_channels: int | None = None, resize: bool = False, direction: str = "AtoB",
                 test_fraction: float = 0.1, **kw):
        if not root:
            raise ConfigError(f"data.root is required for data=paired: {FORMAT}")
        super().__init__(root=root, **kw)
        for key, value, allowed in (("layout", layout, LAYOUTS), ("direction", direction, DIRECTIONS)):
            if value not in allowed:
                raise ConfigError(f"data.{key} must be one of {', '.join(allowed)} for data=paired; got {value!r}")
        input_channels = channels if input_channels is None else input_channels
        for key, value in (("channels", channels), ("input_channels", input_channels)):
            if value not in (1, 3):
                raise ConfigError(f"data.{key} must be 1 (grey) or 3 (RGB) for data=paired; got {value!r}")
        if int(resolution) < 8 or int(resolution) % 8:
            raise ConfigError(f"data.resolution must be a positive multiple of 8 for data=paired; got {resolution}")
        if not 0 <= float(test_fraction) < 1:
            raise ConfigError(f"data.test_fraction must be in [0, 1) for data=paired; got {test_fraction}")
        self.layout, self.direction, self.resize = layout, direction, bool(resize)
        self.resolution, self.test_fraction = int(resolution), float(test_fraction)
        self.shape = (int(channels), self.resolution, self.resolution)
        self.input_shape = (int(input_channels), self.resolution, self.resolution)
        self._items: list[tuple[Path, Path | None]] | None = None

    def resolved_layout(self) -> str:
        if self.layout != "auto":
            return self.layout
        return "folders" if (self.root / "A").is_dir() and (self.root / "B").is_dir() else "side_by_side"

    def items(self) -> list[tuple[Path, Path | None]]:
        """Every pair, its sizes checked from the file headers."""
        if self._items is None:
            if not self.root.is_dir():
                raise ConfigError(f"data.root={self.root}: no such directory (data=paired needs {FORMAT})")
            items = self._folder_items() if self.resolved_layout() == "folders" else \
                [(p, None) for p in list_images(self.root)]
            if len(items) < 2:
                raise ConfigError(f"data.root={self.root}: {len(items)} image pair(s) found; data=paired needs at "
                                  f"least 2 ({FORMAT})")
            for item in items:
                self._check_sizes(item)
            self._items = items
        return self._items

    def _folder_items(self) -> list[tuple[Path, Path | None]]:
        a_root, b_root = self.root / "A", self.root / "B"
        if not (a_root.is_dir() and b_root.is_dir()):
            raise ConfigError(f"data.layout=folders needs {a_root} and {b_root}; one is missing")
        items = []
        for p in list_images(a_root):
            partner = b_root / p.relative_to(a_root)
            if not partner.is_file():
                raise ConfigError(f"data=paired: {p} has no partner {partner} (root/A and root/B must hold the same "
                                  f"file names)")
            items.append((p, partner))
        return items

    def _check_sizes(self, item: tuple[Path, Path | None]) -> None:
        first, second = item
        w, h = image_size(first)
        if second is None:
            if w % 2:
                raise ConfigError(f"data=paired: {first} is {w}x{h}, an odd width cannot hold A|B side by side")
            size_a = size_b = (w // 2, h)
        else:
            size_a, size_b = (w, h), image_size(second)
        if self.resize:
            return
        if size_a != size_b:
            raise ConfigError(f"data=paired: A and B of {first.name} differ in size ({size_a[0]}x{size_a[1]} vs "
                              f"{size_b[0]}x{size_b[1]}); set data.resize=true to resize both to data.resolution")
        if size_a != (self.resolution, self.resolution):
            raise ConfigError(f"data=paired: the images of {first.name} are {size_a[0]}x{size_a[1]} and "
                              f"data.resolution={self.resolution}; set data.resolution to their (square) size or "
                              f"data.resize=true")

    def make_pairs(self, split: str) -> Dataset:
        from ganbench.data.vision import image_transform

        items = self.items()
        test = set(holdout_indices(len(items), self.test_fraction))
        chosen = [it for i, it in enumerate(items) if (i in test) == (split == "test")]
        modes = tuple("RGB" if s[0] == 3 else "L" for s in (self.input_shape, self.shape))
        transform = image_transform(self.resolution, native=None if self.resize else self.resolution)
        return PairedFiles(chosen, modes, transform, swap=self.direction == "BtoA")

    def make_split(self, split: str) -> Dataset:
        return TargetView(self.pairs(split))
