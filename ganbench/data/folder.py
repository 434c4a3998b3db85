"""Any directory of images as a GAN dataset: centre-cropped to a square and resized, like LSUN in Kurach et al. 2019.

``labels=subdirs`` labels each image by its first-level sub-folder (``root/<class>/.../img.png``), classes numbered
in sorted order of the folder names (torchvision's ``ImageFolder`` convention); ``labels=none`` labels every image 0
and the data has no classes (``num_classes`` None).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from ganbench.data.base import GANDataModule
from ganbench.data.vision import image_transform
from ganbench.errors import ConfigError, DataNotFoundError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
LABELS = ("none", "subdirs")


def list_images(root: Path) -> list[Path]:
    """Every image file below ``root`` (recursive, case-insensitive extension), sorted by relative path."""
    files = (p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def holdout_indices(n: int, fraction: float) -> list[int]:
    """``round(n * fraction)`` indices (at least 1 when fraction > 0 and n > 1) spread evenly over ``range(n)``.

    Taking every (n / n_test)-th item of a sorted list gives a split that depends only on the file names: no hash,
    no seed, and a test set that samples the whole directory rather than its last sub-folder.
    """
    if fraction <= 0 or n < 2:
        return []
    n_test = min(max(round(n * fraction), 1), n - 1)
    return [int((j + 0.5) * n / n_test) for j in range(n_test)]


def class_names(root: Path, files: list[Path]) -> list[str]:
    """The sorted first-level sub-folders of ``root`` holding the images; a ConfigError if an image lies in
    ``root`` itself (it would have no class)."""
    loose = [p for p in files if p.parent == root]
    if loose:
        raise ConfigError(f"data.labels=subdirs: {len(loose)} image(s) lie directly in {root} (e.g. {loose[0].name}), "
                          f"outside any class folder; put each class in its own sub-folder {root}/<class>/ or set "
                          f"data.labels=none")
    return sorted({p.relative_to(root).parts[0] for p in files})


class ImageFiles(Dataset):
    """Decodes image files with PIL on access; ``labels`` (one int per file) or every label 0. ``targets`` holds the
    labels as a tensor without decoding any image."""

    def __init__(self, paths: list[Path], mode: str, transform, labels: list[int] | None = None):
        self.paths, self.mode, self.transform = paths, mode, transform
        self.labels = list(labels) if labels is not None else [0] * len(paths)

    @property
    def targets(self) -> torch.Tensor:
        return torch.tensor(self.labels, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        with Image.open(self.paths[i]) as img:
            return self.transform(img.convert(self.mode)), self.labels[i]


class ImageFolder(GANDataModule):
    """A directory tree of png/jpg/jpeg/bmp/webp images, found recursively and sorted by path.

    Each image is converted to RGB (``channels=3``) or grey (``channels=1``), centre-cropped to the largest square and
    resized (bilinear, antialiased) to ``resolution``. ``test_fraction`` of the sorted files, evenly spaced, form the
    test split; the rest train. ``labels=subdirs``: class = first-level sub-folder (see the module docstring). The
    directory is only read when a split (or, with labels, ``num_classes``) is first asked for.
    """

    name = "folder"

    def __init__(self, root: str | None = None, resolution: int = 64, channels: int = 3, test_fraction: float = 0.1,
                 labels: str | None = "none", **kw):
        if not root:
            raise ConfigError("data.root is required for data=folder: the directory of images to train on")
        super().__init__(root=root, **kw)
        resolution, channels, test_fraction = int(resolution), int(channels), float(test_fraction)
        if resolution < 8 or resolution % 8:
            raise ConfigError(f"data.resolution must be a positive multiple of 8 for data=folder; got {resolution}")
        if channels not in (1, 3):
            raise ConfigError(f"data.channels must be 1 (grey) or 3 (RGB) for data=folder; got {channels}")
        if not 0 <= test_fraction < 1:
            raise ConfigError(f"data.test_fraction must be in [0, 1) for data=folder; got {test_fraction}")
        labels = "none" if labels is None else str(labels)
        if labels not in LABELS:
            raise ConfigError(f"data.labels must be one of {', '.join(LABELS)} for data=folder; got {labels!r}")
        self.resolution, self.channels, self.test_fraction = resolution, channels, test_fraction
        self.labels = labels
        self.shape = (channels, resolution, resolution)
        self._files: list[Path] | None = None

    @property
    def classes(self) -> list[str] | None:
        """The class folder names (``labels=subdirs``), else None."""
        return class_names(self.root, self.files()) if self.labels == "subdirs" else None

    @property
    def num_classes(self) -> int | None:
        classes = self.classes
        return len(classes) if classes is not None else None

    def files(self) -> list[Path]:
        if self._files is None:
            files = list_images(self.root) if self.root.is_dir() else []
            if not files:
                what = "no images in" if self.root.is_dir() else "no directory"
                raise DataNotFoundError(f"data=folder: {what} {self.root} (looked recursively for "
                                        f"{'/'.join(e[1:] for e in IMAGE_EXTENSIONS)} files); set data.root")
            self._files = files
        return self._files

    def make_split(self, split: str) -> Dataset:
        files = self.files()
        test = set(holdout_indices(len(files), self.test_fraction))
        paths = [p for i, p in enumerate(files) if (i in test) == (split == "test")]
        transform = image_transform(self.resolution, crop="square")
        classes = self.classes
        labels = None
        if classes is not None:
            index = {name: k for k, name in enumerate(classes)}
            labels = [index[p.relative_to(self.root).parts[0]] for p in paths]
        return ImageFiles(paths, "RGB" if self.channels == 3 else "L", transform, labels)
