"""Super-resolution pairs (LR, HR) for ``family=srgan``: ``data=sr_patches`` (embedded) and ``data=sr`` (any image
data set of ganbench).

A super-resolution datamodule is a paired datamodule (``ganbench/data/paired.py``: ``pairs(split)`` gives (A, B),
``dataset(split)`` the target view (B, label)) with A = LR = the bicubic downscaling of B = HR by ``scale``:

    LR = clamp(interpolate(HR, size=(H / s, W / s), mode="bicubic", antialias=True, align_corners=False), -1, 1)

on HR in [-1, 1] (torch's antialiased bicubic, not MATLAB's ``imresize`` that mmagic's DIV2K LR files come from; no
rounding to 8 bits). ``shape`` is HR's (C, H, W), ``input_shape`` LR's (C, H / s, W / s), ``scale`` the factor
(2, 4 or 8; the resolution must be divisible by it).

- ``data=sr_patches``: fixed crops of the two photos scikit-learn bundles (``sklearn.datasets.load_sample_images``:
  china.jpg, flower.jpg, 427x640 RGB; offline, deterministic). Each photo's right ``test_fraction`` of columns is
  the test region and the rest the training region, so no test pixel is ever seen in training; crop corners are
  drawn uniformly inside a region by a generator seeded with ``crop_seed`` (and the split), alternating between the
  photos, and redrawn while the crop's standard deviation (on [-1, 1]) is below ``min_std`` (0.1: the photos' sky
  and blurred background would otherwise give flat crops that bicubic upsampling already restores at ~50 dB). The label is the photo (0 china, 1 flower): the domain classifier that scores FID/KID offline
  (``metrics.extractor=domain``) tells the two apart.
- ``data=sr``: HR from another data config (``base``: the name of a conf/data YAML, e.g. folder, cifar10, celeba,
  digits) at ``resolution``, its splits, labels and default extractor kept; ``root`` and ``base_options`` (other
  keys of that YAML) are passed to it.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset, TensorDataset

from ganbench.data.base import GANDataModule, tensor_dataset
from ganbench.data.paired import PairedDataModule
from ganbench.errors import ConfigError
from ganbench.nets.srresnet import SCALES, check_scale


def bicubic_down(hr: Tensor, scale: int) -> Tensor:
    """LR images (N, C, H / s, W / s) of HR images (N, C, H, W) in [-1, 1] (module docstring)."""
    h, w = hr.shape[-2:]
    lr = F.interpolate(hr.float(), size=(h // scale, w // scale), mode="bicubic", antialias=True,
                       align_corners=False)
    return lr.clamp(-1, 1)


def bicubic_up(lr: Tensor, scale: int) -> Tensor:
    """The bicubic baseline of an SR output (N, C, s h, s w), clamped to [-1, 1]."""
    return F.interpolate(lr.float(), scale_factor=scale, mode="bicubic", align_corners=False).clamp(-1, 1)


def check_resolution(resolution: Any, scale: Any, data: str, *, min_side: int = 8, max_side: int | None = None):
    """(resolution, scale) after checking both: the scale in SCALES, the resolution a multiple of it."""
    s = check_scale(scale)
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < min_side or \
            (max_side is not None and resolution > max_side) or resolution % s:
        bound = f" and <= {max_side}" if max_side is not None else ""
        raise ConfigError(f"data.resolution must be an integer >= {min_side}{bound} divisible by data.scale={s} for "
                          f"data={data} (the LR side is resolution / scale); got {resolution!r}")
    return resolution, s


class LowResPairs(Dataset):
    """(LR, HR) of a target view of (HR, label), LR computed on access."""

    def __init__(self, hr_view: Dataset, scale: int):
        self.hr_view, self.scale = hr_view, scale

    def __len__(self) -> int:
        return len(self.hr_view)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        hr = self.hr_view[i][0]
        return bicubic_down(hr[None], self.scale)[0], hr


def sr_pairs(hr_view: Dataset, scale: int) -> Dataset:
    """(LR, HR) pairs: computed at once for an in-memory view, on access otherwise."""
    if isinstance(hr_view, TensorDataset):
        hr = hr_view.tensors[0]
        return TensorDataset(torch.cat([bicubic_down(chunk, scale) for chunk in hr.split(512)]), hr)
    return LowResPairs(hr_view, scale)


class SRDataModule(PairedDataModule):
    """Base of the super-resolution datamodules: a subclass sets ``shape`` and implements ``make_split`` (HR)."""

    scale: int = 4

    def set_shapes(self, channels: int, resolution: int, scale: int) -> None:
        self.scale = scale
        self.shape = (channels, resolution, resolution)
        self.input_shape = (channels, resolution // scale, resolution // scale)

    def make_pairs(self, split: str) -> Dataset:
        return sr_pairs(self.dataset(split), self.scale)


# -- sr_patches ------------------------------------------------------------------------------------------------------
SPLIT_STREAM = {"train": 0, "test": 1}
MAX_DRAWS = 1000


def sample_photos() -> list[tuple[str, Tensor]]:
    """(file name, (3, H, W) uint8) of scikit-learn's bundled photos, sorted by name."""
    from pathlib import Path

    from sklearn.datasets import load_sample_images

    bunch = load_sample_images()
    named = sorted(zip((Path(f).name for f in bunch.filenames), bunch.images))
    return [(name, torch.from_numpy(img.copy()).permute(2, 0, 1).contiguous()) for name, img in named]


def crop_corners(n: int, photos: list[Tensor], regions: list[tuple[int, int, int, int]], size: int,
                 generator: torch.Generator, min_std: float = 0.0) -> list[tuple[int, int, int]]:
    """``n`` (photo, top, left) of size x size crops, photo i % len(regions), uniform inside its region
    (top0, top1, left0, left1; end-exclusive), redrawn while the crop's std (on [-1, 1]) is below ``min_std``."""
    corners = []
    for i in range(n):
        p = i % len(regions)
        top0, top1, left0, left1 = regions[p]
        for _ in range(MAX_DRAWS):
            top = top0 + int(torch.randint(top1 - top0 - size + 1, (1,), generator=generator))
            left = left0 + int(torch.randint(left1 - left0 - size + 1, (1,), generator=generator))
            if float(photos[p][:, top:top + size, left:left + size].float().std()) / 127.5 >= min_std:
                break
        else:
            raise ConfigError(f"data.min_std={min_std}: no {size}x{size} crop of photo {p} that textured in "
                              f"{MAX_DRAWS} draws; lower data.min_std")
        corners.append((p, top, left))
    return corners


def split_regions(photos: list[Tensor], split: str, test_fraction: float) -> list[tuple[int, int, int, int]]:
    """Each photo's region for a split: the right ``test_fraction`` of its columns for test, the rest for train."""
    regions = []
    for img in photos:
        h, w = img.shape[-2:]
        cut = w - round(w * test_fraction)
        regions.append((0, h, cut, w) if split == "test" else (0, h, 0, cut))
    return regions


class SRPatches(SRDataModule):
    """``data=sr_patches`` (module docstring): ``train_crops`` / ``test_crops`` HR crops of side ``resolution``."""

    name = "sr_patches"
    num_classes = 2
    default_extractor = "domain"

    def __init__(self, resolution: int = 32, scale: int = 4, train_crops: int = 1024, test_crops: int = 128,
                 test_fraction: float = 0.2, crop_seed: int = 0, min_std: float = 0.1, **kw):
        super().__init__(**kw)
        if not 0 < float(test_fraction) < 1:
            raise ConfigError(f"data.test_fraction must be in (0, 1) for data=sr_patches; got {test_fraction}")
        self.test_fraction = float(test_fraction)
        strip = round(640 * self.test_fraction)  # both photos are 640 px wide
        resolution, scale = check_resolution(resolution, scale, self.name, max_side=min(strip, 640 - strip, 427))
        for key, value in (("train_crops", train_crops), ("test_crops", test_crops)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise ConfigError(f"data.{key} must be an integer >= 2 for data=sr_patches; got {value!r}")
        if isinstance(min_std, bool) or not isinstance(min_std, (int, float)) or not 0 <= min_std < 1:
            raise ConfigError(f"data.min_std must be a number in [0, 1) (the least std of a crop on [-1, 1]); "
                              f"got {min_std!r}")
        self.resolution, self.crop_seed, self.min_std = resolution, int(crop_seed), float(min_std)
        self.crops = {"train": train_crops, "test": test_crops}
        self.set_shapes(3, resolution, scale)

    def make_split(self, split: str) -> Dataset:
        named = sample_photos()
        photos = [img for _, img in named]
        gen = torch.Generator().manual_seed(self.crop_seed * len(SPLIT_STREAM) + SPLIT_STREAM[split])
        corners = crop_corners(self.crops[split], photos, split_regions(photos, split, self.test_fraction),
                               self.resolution, gen, self.min_std)
        r = self.resolution
        hr = torch.stack([photos[p][:, t:t + r, left:left + r] for p, t, left in corners])
        labels = torch.tensor([p for p, _, _ in corners])
        return tensor_dataset(hr.float() / 127.5 - 1, labels)


# -- sr: any image data config -----------------------------------------------------------------------------------------
def base_datamodule(base: str, options: Mapping, batch_size: int, seed: int) -> GANDataModule:
    """The datamodule of conf/data/<base>.yaml with ``options`` merged in."""
    from omegaconf import OmegaConf

    from ganbench.build import instantiate_or_explain
    from ganbench.config import CONF_DIR

    available = sorted(p.stem for p in (CONF_DIR / "data").glob("*.yaml") if p.stem not in ("sr", "sr_patches"))
    path = CONF_DIR / "data" / f"{base}.yaml"
    if not isinstance(base, str) or base in ("sr", "sr_patches") or not path.is_file():
        raise ConfigError(f"data.base must name an image data config ({', '.join(available)}); got {base!r}")
    node = OmegaConf.merge(OmegaConf.load(path), dict(options))
    missing = sorted(OmegaConf.missing_keys(node))
    if missing:
        key = "data.root" if missing[0] == "root" else f"data.base_options.{missing[0]}"
        raise ConfigError(f"{key} is required for data=sr with data.base={base} (conf/data/{base}.yaml leaves it "
                          f"unset)")
    return instantiate_or_explain(node, batch_size=batch_size, seed=seed)


class SuperResolution(SRDataModule):
    """``data=sr`` (module docstring): HR = the ``base`` data at ``resolution``, LR its bicubic downscaling."""

    name = "sr"

    def __init__(self, base: str = "folder", resolution: int = 64, scale: int = 4, root: str | None = None,
                 base_options: Mapping | None = None, **kw):
        resolution, scale = check_resolution(resolution, scale, self.name)
        super().__init__(**kw)
        options = {**dict(base_options or {}), "resolution": resolution, **({"root": root} if root else {})}
        self.base = base_datamodule(base, options, self.batch_size, self.seed)
        shape = tuple(self.base.shape)
        if len(shape) != 3 or getattr(self.base, "paired", False):
            raise ConfigError(f"data.base={base} must be unpaired image data (C, H, W); it has shape {shape}"
                              f"{' and pairs' if getattr(self.base, 'paired', False) else ''}")
        if shape[1:] != (resolution, resolution):
            raise ConfigError(f"data.base={base} gives {shape[1]}x{shape[2]} images; data=sr needs them square at "
                              f"data.resolution={resolution}")
        self.base_name, self.splits = base, tuple(self.base.splits)
        self.num_classes, self.default_extractor = self.base.num_classes, self.base.default_extractor
        self.set_shapes(shape[0], resolution, scale)

    def make_split(self, split: str) -> Dataset:
        return self.base.dataset(split)


__all__ = ["SCALES", "SRDataModule", "SRPatches", "SuperResolution", "bicubic_down", "bicubic_up", "sr_pairs"]
