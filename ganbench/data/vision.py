"""Image datasets from ``torchvision.datasets``, preprocessed as in the GAN literature.

Every datamodule here is a few lines on top of ``TorchvisionDataModule``, which builds the transform (optional crop,
bilinear antialiased resize, scaling to [-1, 1]) and turns torchvision's "Dataset not found" errors into one-line
``DataNotFoundError``s. Nothing touches disk until a split is first asked for, and ``shape`` is known at construction.

Data lives under ``root`` (default ``~/.cache/ganbench/data/<name>``) and is fetched only when ``download=True``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch.utils.data import Dataset

from ganbench.data.base import GANDataModule
from ganbench.errors import ConfigError, DataNotFoundError, GanbenchError

DEFAULT_DATA_DIR = Path("~/.cache/ganbench/data")


class CenterSquare:
    """Crop a PIL image to the largest centred square (a picklable transform, so it works in DataLoader workers)."""

    def __call__(self, img):
        w, h = img.size
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        return img.crop((left, top, left + s, top + s))

    def __repr__(self) -> str:
        return "CenterSquare()"


def image_transform(resolution: int, native: int | None = None, crop: int | str | None = None) -> Callable:
    """PIL image -> float tensor (C, resolution, resolution) in [-1, 1].

    ``crop`` is a centre-crop size in pixels, ``"square"`` (largest centred square) or None. The resize is bilinear
    with antialiasing and is skipped when the (cropped) image already has ``native == resolution``.
    """
    from torchvision import transforms as T

    steps: list[Callable] = []
    if crop == "square":
        steps.append(CenterSquare())
    elif crop is not None:
        steps.append(T.CenterCrop(int(crop)))
    if native != resolution:
        steps.append(T.Resize((resolution, resolution), interpolation=T.InterpolationMode.BILINEAR, antialias=True))
    steps += [T.ToTensor(), T.Normalize(0.5, 0.5)]  # [0, 1] -> [-1, 1], any channel count
    return T.Compose(steps)


class LabelledImages(Dataset):
    """Wraps a torchvision dataset so it yields ``(x, y)`` with ``y`` an int class; unlabelled samples get 0.

    (STL-10's unlabelled split marks its samples -1 and CelebA/LSUN have no class at all: ``tensor_dataset`` gives
    unlabelled data 0 too, and those datamodules have ``num_classes = None`` so no class-conditional model uses y.)
    ``targets`` is every label as a tensor, read from the torchvision dataset's ``targets`` (MNIST, CIFAR) or
    ``labels`` (STL-10) without decoding any image; None when it has neither.
    """

    def __init__(self, base: Dataset):
        self.base = base

    @property
    def targets(self) -> torch.Tensor | None:
        labels = getattr(self.base, "targets", None)
        if labels is None:
            labels = getattr(self.base, "labels", None)
        return None if labels is None else torch.as_tensor(labels).long().clamp(min=0)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x, y = self.base[i]
        return x, 0 if y is None else max(int(y), 0)


class TorchvisionDataModule(GANDataModule):
    """A torchvision image dataset. Subclasses set the class attributes, and ``torchvision_class`` or ``load``.

    ``native`` is the stored side length (after ``crop``), ``default_resolution`` the literature's training size,
    ``subdir`` the folder below ``root`` that torchvision reads (named in the not-found error).
    """

    channels: int = 3
    native: int | None = 32  # None: sizes vary (always resize)
    default_resolution: int = 32
    crop: int | str | None = None
    subdir: str = ""
    #: how to fix missing files; ``{dir}`` is the directory torchvision looks in
    fix: str = "pass data.download=true to fetch it, or put the files in {dir}"

    def __init__(self, resolution: int | None = None, **kw):
        super().__init__(**kw)
        resolution = int(resolution if resolution is not None else self.default_resolution)
        if resolution < 8 or resolution % 8:
            raise ConfigError(f"data.resolution must be a positive multiple of 8 for data={self.name}; "
                              f"got {resolution}")
        self.resolution = resolution
        self.shape = (self.channels, resolution, resolution)
        if self.root is None:
            self.root = (DEFAULT_DATA_DIR / self.name).expanduser()

    # -- to implement -------------------------------------------------------------------------------------------
    #: the torchvision.datasets class of a dataset with the usual ``train=True/False`` splits (else override load)
    torchvision_class: str | None = None

    def load(self, split: str, root: str, transform: Callable, download: bool) -> Dataset:
        """Construct the torchvision dataset for ``split`` ("train" or "test")."""
        if self.torchvision_class is None:
            raise NotImplementedError
        import torchvision.datasets

        dataset = getattr(torchvision.datasets, self.torchvision_class)
        return dataset(root, train=split == "train", transform=transform, download=download)

    def missing(self) -> bool:
        """True when the files are absent, for datasets whose torchvision class neither downloads nor checks."""
        return False

    # -- shared -------------------------------------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        """The exact directory torchvision reads the files from."""
        return self.root / self.subdir if self.subdir else self.root

    def not_found(self, download_error: BaseException | None = None) -> DataNotFoundError:
        if download_error is None:
            msg = f"data={self.name}: dataset not found in {self.data_dir}; {self.fix.format(dir=self.data_dir)}"
        else:
            msg = (f"data={self.name}: download into {self.root} failed ({type(download_error).__name__}: "
                   f"{download_error}); check the network, or put the files in {self.data_dir}")
        return DataNotFoundError(" ".join(msg.splitlines()))  # one line, whatever torchvision's message held

    def make_split(self, split: str) -> Dataset:
        if self.missing():
            raise self.not_found()
        transform = image_transform(self.resolution, self.native, self.crop)
        try:
            base = self.load(split, str(self.root.resolve()), transform, self.download)
        except (RuntimeError, OSError, ImportError) as e:  # torchvision: "Dataset not found or corrupted..."
            raise self.not_found(e if self.download else None) from None
        return LabelledImages(base)


# -- the datasets -------------------------------------------------------------------------------------------------
class MNIST(TorchvisionDataModule):
    """MNIST (LeCun et al. 1998): 60k train / 10k test, 28x28 grey.

    Resized (bilinear) to 32x32 by default: the DCGAN-style nets of Kurach et al. 2019 / Lucic et al. 2018 halve the
    resolution three times, so they need a multiple of 8.
    """

    name = "mnist"
    num_classes = 10
    default_extractor = "domain"
    channels, native, default_resolution = 1, 28, 32
    subdir = "MNIST/raw"
    torchvision_class = "MNIST"


class FashionMNIST(TorchvisionDataModule):
    """Fashion-MNIST (Xiao et al. 2017): 60k train / 10k test, 28x28 grey; resized to 32x32 like ``MNIST``."""

    name = "fashion_mnist"
    num_classes = 10
    default_extractor = "domain"
    channels, native, default_resolution = 1, 28, 32
    subdir = "FashionMNIST/raw"
    torchvision_class = "FashionMNIST"


class CIFAR10(TorchvisionDataModule):
    """CIFAR-10 (Krizhevsky 2009): 50k train / 10k test, 32x32 RGB, used at native size."""

    name = "cifar10"
    num_classes = 10
    subdir = "cifar-10-batches-py"
    torchvision_class = "CIFAR10"


class CIFAR100(TorchvisionDataModule):
    """CIFAR-100 (Krizhevsky 2009): 50k train / 10k test, 32x32 RGB, 100 fine classes."""

    name = "cifar100"
    num_classes = 100
    subdir = "cifar-100-python"
    torchvision_class = "CIFAR100"


class STL10(TorchvisionDataModule):
    """STL-10 (Coates et al. 2011) as in SN-GAN (Miyato et al. 2018): 96x96 resized to 48x48.

    Train is the 100k-image ``unlabeled`` split (``train_split="unlabeled"``, the default; no labels, so
    ``num_classes`` is None and no class-conditional training), or the 5k labelled ``train`` split
    (``train_split="train"``, 10 classes); test is the 8k labelled ``test`` split.
    """

    name = "stl10"
    native, default_resolution = 96, 48
    subdir = "stl10_binary"
    train_splits = ("unlabeled", "train")

    def __init__(self, train_split: str = "unlabeled", **kw):
        if train_split not in self.train_splits:
            raise ConfigError(f"data.train_split must be one of {', '.join(self.train_splits)} for data=stl10; "
                              f"got {train_split!r}")
        super().__init__(**kw)
        self.train_split = train_split
        self.num_classes = 10 if train_split == "train" else None

    def load(self, split, root, transform, download):
        from torchvision.datasets import STL10
        return STL10(root, split={"train": self.train_split, "test": "test"}[split], transform=transform,
                     download=download)


class CelebA(TorchvisionDataModule):
    """CelebA (Liu et al. 2015), aligned and cropped, as in Lucic et al. 2018: centre crop 160x160, resize to 64x64.

    Train/test are the official 162,770 / 19,962 partitions. torchvision downloads it from Google Drive (needs the
    ``gdown`` package, and Drive often refuses with a quota error): otherwise put the files in the folder named.
    """

    name = "celeba"
    num_classes = None
    native, default_resolution, crop = 160, 64, 160
    subdir = "celeba"
    fix = ("pass data.download=true to fetch it (Google Drive, needs gdown), or put img_align_celeba/ and the "
           "list_*.txt / identity_CelebA.txt files in {dir}")

    def load(self, split, root, transform, download):
        from torchvision.datasets import CelebA
        return CelebA(root, split=split, target_type=[], transform=transform, download=download)


class LSUNBedroom(TorchvisionDataModule):
    """LSUN bedrooms (Yu et al. 2015) at 128x128 as in Kurach et al. 2019: centre crop to square, then resize.

    Train is ``bedroom_train`` (3M images), test ``bedroom_val`` (300). torchvision cannot download LSUN and reads
    it with the ``lmdb`` package. torchvision caches the key list in a ``_cache_*`` file in the working directory, so
    the datasets are opened from inside ``root`` to keep that cache beside the data.
    """

    name = "lsun_bedroom"
    num_classes = None
    native, default_resolution, crop = None, 128, "square"
    fix = ("torchvision cannot download LSUN, so put bedroom_train_lmdb/ and bedroom_val_lmdb/ in {dir} "
           "(from the LSUN download.py script)")
    lmdb_dirs = {"train": "bedroom_train_lmdb", "test": "bedroom_val_lmdb"}

    def missing(self) -> bool:
        return not all((self.root / d).is_dir() for d in self.lmdb_dirs.values())

    def load(self, split, root, transform, download):
        import contextlib

        try:
            import lmdb  # noqa: F401  (torchvision imports it itself; check first for a clear message)
        except ImportError:
            raise GanbenchError("data=lsun_bedroom needs the lmdb package: pip install lmdb") from None
        from torchvision.datasets import LSUN

        with contextlib.chdir(root):
            return LSUN(root, classes=[self.lmdb_dirs[split].removesuffix("_lmdb")], transform=transform)


__all__ = ["TorchvisionDataModule", "MNIST", "FashionMNIST", "CIFAR10", "CIFAR100", "STL10", "CelebA",
                      "LSUNBedroom", "CenterSquare", "image_transform"]
