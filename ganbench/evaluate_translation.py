"""``python -m ganbench.evaluate`` for the image-to-image families (pix2pix, cyclegan, srgan): their own metrics
first, and scoring a checkpoint on a test folder.

    python -m ganbench.evaluate checkpoint=<run>/checkpoints/best.ckpt                 (the run's own test split)
    python -m ganbench.evaluate checkpoint=<run>/checkpoints/best.ckpt test_dir=DIR    (a folder of test images)
    python -m ganbench.evaluate checkpoint=... test_dir=DIR metrics=none               (family metrics only: PSNR,
                                                                                        SSIM, L1, cycle L1, LPIPS)

- The record's primary metric is the family's own (``ganbench.analyze.table.FAMILY_PRIMARY``: PSNR against the
  ground truth for pix2pix, PSNR on Y or RGB for srgan; cyclegan keeps the evaluator's FID), listed first, with
  ``higher_is_better``. The file name keeps the evaluator's protocol tag.
- ``test_dir=DIR`` replaces the run's data by DIR in the layout the family reads (the data modules' own readers,
  ``ganbench/data/{paired,unpaired,sr}.py``), at the run's resolution and channel counts, every image in the test
  split (:data:`TEST_FOLDERS`):
    pix2pix: A|B side-by-side images (A on the left) or DIR/A and DIR/B with the same file names, resized to the
             run's resolution (data=paired with resize: true);
    cyclegan: DIR/testA and DIR/testB (CycleGAN's layout; no train folders needed), centre-cropped and resized;
    srgan:    any image folder: HR = each image centre-cropped and resized to the run's HR side, LR its bicubic
              downscaling by the run's scale.
  A folder in another family's layout is one ConfigError naming the layout expected.
- ``metrics=none`` scores the family's metrics alone (no feature space: no FID, so no Inception weights needed for
  a folder without a domain classifier).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf
from torch.utils.data import Dataset

from ganbench.data.folder import list_images
from ganbench.data.paired import PairedFiles, PairedFolder, image_size
from ganbench.data.sr import SuperResolution
from ganbench.data.unpaired import UnpairedFolder
from ganbench.errors import ConfigError

#: the family modules' buffers built from the data (sample-grid inputs): taken from the new data, not the checkpoint
DATA_BUFFERS = ("fixed_a", "fixed_b", "fixed_lr", "fixed_hr")


# -- test folders: every image in the test split --------------------------------------------------------------------
class PairedTestFolder(PairedFolder):
    """data=paired over a test folder: every pair in both splits (no held-out fraction)."""

    name = "paired_test"

    def make_pairs(self, split: str) -> Dataset:
        from ganbench.data.vision import image_transform

        modes = tuple("RGB" if s[0] == 3 else "L" for s in (self.input_shape, self.shape))
        transform = image_transform(self.resolution, native=None if self.resize else self.resolution)
        return PairedFiles(self.items(), modes, transform, swap=self.direction == "BtoA")


class UnpairedTestFolder(UnpairedFolder):
    """data=unpaired over a test folder: DIR/testA and DIR/testB serve every split (no trainA/trainB needed)."""

    name = "unpaired_test"

    def check_layout(self) -> None:
        missing = [f"test{d}" for d in "AB" if not (self.root / f"test{d}").is_dir()]
        if missing:
            raise ConfigError(f"test_dir={self.root} has no {' or '.join(missing)}: family=cyclegan is scored on "
                              f"DIR/testA and DIR/testB (CycleGAN's layout)")

    def make_domain(self, name: str, split: str) -> Dataset:
        return super().make_domain(name, "test")


class SRTestFolder(SuperResolution):
    """data=sr over a test folder (base=folder with no held-out fraction): every image in both splits."""

    name = "sr_test"

    def make_split(self, split: str) -> Dataset:
        return self.base.dataset("train")


def _images(root: Path) -> list[Path]:
    if not root.is_dir():
        raise ConfigError(f"test_dir={root}: no such directory")
    files = list_images(root)
    if not files:
        raise ConfigError(f"test_dir={root} holds no images (png, jpg, jpeg, bmp, webp)")
    return files


def paired_layout(root: Path) -> str:
    """``folders`` (DIR/A, DIR/B) or ``side_by_side`` (A|B images twice as wide as tall); else a ConfigError."""
    expected = "A|B side-by-side images (A on the left) or DIR/A and DIR/B with the same file names"
    if (root / "A").is_dir() and (root / "B").is_dir():
        return "folders"
    if (root / "testA").is_dir() or (root / "trainA").is_dir():
        raise ConfigError(f"test_dir={root} is in CycleGAN's unpaired layout (testA, testB); family=pix2pix is "
                          f"scored on pairs: {expected}")
    first = _images(root)[0]
    w, h = image_size(first)
    if w != 2 * h:
        raise ConfigError(f"test_dir={root}: {first.name} is {w}x{h}, not two squares side by side; family=pix2pix "
                          f"is scored on pairs: {expected}")
    return "side_by_side"


def paired_data(root: Path, run_data: DictConfig, shape: tuple, input_shape: tuple) -> dict:
    """pix2pix: the pairs of ``root`` resized to the run's side, with the run's A and B channel counts."""
    return {"_target_": f"{__name__}.PairedTestFolder", "root": str(root), "layout": paired_layout(root),
            "resolution": shape[-1], "channels": shape[0], "input_channels": input_shape[0], "resize": True,
            "direction": "AtoB", "test_fraction": 0.0, "num_workers": 0, "range": run_data.get("range", "symmetric")}


def unpaired_data(root: Path, run_data: DictConfig, shape: tuple, input_shape: tuple) -> dict:
    """cyclegan: root/testA and root/testB at the run's side and channel counts."""
    if not root.is_dir():
        raise ConfigError(f"test_dir={root}: no such directory")
    UnpairedTestFolder(root=str(root)).check_layout()
    return {"_target_": f"{__name__}.UnpairedTestFolder", "root": str(root), "resolution": shape[-1],
            "channels": shape[0], "input_channels": input_shape[0], "num_workers": 0,
            "range": run_data.get("range", "symmetric")}


def sr_data(root: Path, run_data: DictConfig, shape: tuple, input_shape: tuple) -> dict:
    """srgan: every image of ``root`` as HR at the run's side and channels, LR by the run's scale."""
    _images(root)
    if (root / "testA").is_dir() or ((root / "A").is_dir() and (root / "B").is_dir()):
        raise ConfigError(f"test_dir={root} is a folder of image pairs (A/B or testA/testB); family=srgan is scored "
                          f"on a folder of HR images (LR = their bicubic downscaling)")
    return {"_target_": f"{__name__}.SRTestFolder", "base": "folder", "root": str(root), "resolution": shape[-1],
            "scale": shape[-1] // input_shape[-1], "num_workers": 0, "range": run_data.get("range", "symmetric"),
            "base_options": {"channels": shape[0], "test_fraction": 0.0, "num_workers": 0}}


#: family ``_target_`` -> the data config of a test folder (root, the run's data config, HR/B shape, input shape)
TEST_FOLDERS: dict[str, Callable[[Path, DictConfig, tuple, tuple], dict]] = {
    "ganbench.families.pix2pix.Pix2Pix": paired_data,
    "ganbench.families.cyclegan.CycleGAN": unpaired_data,
    "ganbench.families.srgan.SRGAN": sr_data,
}


def is_translation(run_cfg: DictConfig) -> bool:
    return str((run_cfg.get("family") or {}).get("_target_")) in TEST_FOLDERS


def test_folder_config(run_cfg: DictConfig, test_dir: str) -> DictConfig:
    """The data config scoring ``run_cfg``'s model on ``test_dir`` (module docstring); ConfigError for a family
    without test folders or a folder of the wrong layout."""
    from ganbench.build import instantiate_or_explain

    family = str((run_cfg.get("family") or {}).get("_target_"))
    if family not in TEST_FOLDERS:
        raise ConfigError(f"test_dir= scores an image-to-image checkpoint (family=pix2pix, cyclegan or srgan); this "
                          f"run's family is {family}: use images=DIR (generated images) or data=... instead")
    dm = instantiate_or_explain(run_cfg.data, batch_size=1, seed=0)
    shape, input_shape = tuple(dm.shape), tuple(getattr(dm, "input_shape", dm.shape))
    root = Path(test_dir).expanduser()
    return OmegaConf.create(TEST_FOLDERS[family](root, run_cfg.data, shape, input_shape))


def keep_data_buffers(state: dict, module) -> dict:
    """The checkpoint's state dict with the data-built buffers (sample-grid inputs) of ``module`` instead: scored
    on other data, the module keeps the inputs of that data (their count may differ)."""
    own = module.state_dict()
    return {**state, **{k: own[k] for k in DATA_BUFFERS if k in own and k in state}}


# -- family metrics without a feature space (metrics=none) ----------------------------------------------------------
class FamilyMetricsOnly:
    """What a family's ``extra_metrics`` needs from an evaluator, without a feature space: the test split, a
    batch size, the device; no FID (``primary`` is the family's)."""

    kind = "none"
    num_fake = 0

    def __init__(self, datamodule, batch_size: int = 64, device: str = "auto", cache_dir: str | None = None):
        import torch

        self.datamodule, self.split, self.batch_size = datamodule, "test", int(batch_size)
        self.device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
        self.cache_dir = Path(cache_dir or "~/.cache/ganbench/metrics").expanduser()
        self.primary = ""

    def setup(self) -> None:
        pass

    def evaluate(self, sample_fn) -> dict[str, float]:
        return {}

    def protocol(self) -> dict:
        return {"extractor": None, "dataset": self.datamodule.name, "reference_split": self.split,
                "feature_metrics": "none (metrics=none: the family's own metrics only)"}


def order_values(values: dict[str, float], run_cfg: DictConfig, fallback: str) -> tuple[str, dict[str, Any]]:
    """(the primary metric, the values with it first): the family's own primary when it has one, else
    ``fallback`` (the evaluator's), else (metrics=none) the family's first metric (cyclegan: cycle L1 A -> B -> A)."""
    from ganbench.analyze.table import family_primary

    config = OmegaConf.to_container(run_cfg, resolve=False)
    primary = family_primary(config, values) or fallback or next(iter(values), "")
    if primary not in values:
        return primary, values
    return primary, {primary: values[primary], **{k: v for k, v in values.items() if k != primary}}
