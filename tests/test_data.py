"""Datamodules: shapes, ranges, splits and one-line errors, all offline on tiny fake data."""

from __future__ import annotations

import itertools
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image, ImageDraw

from ganbench.data import vision
from ganbench.data.base import ResumableBatchSampler
from ganbench.data.digits import Digits
from ganbench.data.folder import ImageFolder, holdout_indices
from ganbench.data.toy import Grid25, Ring8, SwissRoll
from ganbench.errors import ConfigError, DataNotFoundError, GanbenchError

CONF = Path(__file__).resolve().parents[1] / "conf" / "data"
VISION = [vision.MNIST, vision.FashionMNIST, vision.CIFAR10, vision.CIFAR100, vision.STL10, vision.CelebA,
          vision.LSUNBedroom]


def check_images(ds, shape, n):
    assert len(ds) == n
    for i in (0, n - 1):
        x, y = ds[i]
        assert x.dtype == torch.float32 and tuple(x.shape) == shape
        assert -1 <= x.min() and x.max() <= 1 and x.max() > x.min()
        assert isinstance(y, int) and y >= 0


# -- (a) missing data: one line naming the directory and the fix ----------------------------------------------------
@pytest.mark.parametrize("cls", VISION, ids=lambda c: c.name)
def test_vision_missing_data_is_one_line(cls, tmp_path):
    dm = cls(root=str(tmp_path))
    assert not any(tmp_path.iterdir())  # construction touched nothing
    with pytest.raises(DataNotFoundError) as err:
        dm.dataset("train")
    msg = str(err.value)
    assert str(tmp_path) in msg and "download" in msg and "\n" not in msg
    assert msg.startswith(f"data={cls.name}:")


def test_vision_download_failure_is_one_line(tmp_path, monkeypatch):
    from urllib.error import URLError

    import torchvision.datasets.cifar

    def offline(*a, **k):
        raise URLError("no network\nat all")

    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", offline)
    with pytest.raises(DataNotFoundError, match="download into .* failed") as err:
        vision.CIFAR10(root=str(tmp_path), download=True).dataset("train")
    assert "\n" not in str(err.value) and str(tmp_path) in str(err.value)


def test_lsun_without_lmdb_says_so(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "lmdb", None)  # `import lmdb` fails, whether or not it is installed
    for d in ("bedroom_train_lmdb", "bedroom_val_lmdb"):
        (tmp_path / d).mkdir()
    with pytest.raises(GanbenchError, match="pip install lmdb"):
        vision.LSUNBedroom(root=str(tmp_path)).dataset("train")


def test_default_root_and_resolution_checks():
    dm = vision.CIFAR10()
    assert dm.root == Path("~/.cache/ganbench/data/cifar10").expanduser() and dm.shape == (3, 32, 32)
    assert vision.STL10().shape == (3, 48, 48) and vision.MNIST(resolution=64).shape == (1, 64, 64)
    with pytest.raises(ConfigError, match="multiple of 8"):
        vision.MNIST(resolution=28)


# -- (b) the real loading path on fake files in torchvision's layouts ------------------------------------------------
def write_idx(path: Path, arr: np.ndarray):
    magic = 0x0800 | arr.ndim  # uint8 (type 0x08), then the number of dimensions
    path.write_bytes(struct.pack(f">i{arr.ndim}i", magic, *arr.shape) + arr.astype(np.uint8).tobytes())


@pytest.mark.parametrize("cls", [vision.MNIST, vision.FashionMNIST], ids=lambda c: c.name)
def test_mnist_idx_files(cls, tmp_path):
    raw = tmp_path / cls.subdir
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 5), ("t10k", 3)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, (n,)))
    dm = cls(root=str(tmp_path))
    check_images(dm.dataset("train"), (1, 32, 32), 5)
    check_images(dm.dataset("test"), (1, 32, 32), 3)
    assert cls(root=str(tmp_path), resolution=16).dataset("test")[0][0].shape == (1, 16, 16)


def test_cifar10_pickle_batches(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar

    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)  # fake files fail the md5 checks
    base = tmp_path / vision.CIFAR10.subdir
    base.mkdir()
    rng = np.random.default_rng(0)
    for name, _ in tv_cifar.CIFAR10.train_list + tv_cifar.CIFAR10.test_list:
        batch = {"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), "labels": [1, 2, 3, 9]}
        (base / name).write_bytes(pickle.dumps(batch))
    (base / "batches.meta").write_bytes(pickle.dumps({"label_names": [str(i) for i in range(10)]}))
    dm = vision.CIFAR10(root=str(tmp_path))
    check_images(dm.dataset("train"), (3, 32, 32), 20)
    check_images(dm.dataset("test"), (3, 32, 32), 4)
    assert dm.dataset("test")[3][1] == 9


def test_stl10_binary_resized_to_48(tmp_path, monkeypatch):
    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets.STL10, "_check_integrity", lambda self: True)
    base = tmp_path / vision.STL10.subdir
    base.mkdir()
    rng = np.random.default_rng(0)
    (base / "unlabeled_X.bin").write_bytes(rng.integers(0, 256, 3 * 3 * 96 * 96, dtype=np.uint8).tobytes())
    (base / "test_X.bin").write_bytes(rng.integers(0, 256, 2 * 3 * 96 * 96, dtype=np.uint8).tobytes())
    (base / "test_y.bin").write_bytes(bytes([1, 10]))  # 1-based on disk
    dm = vision.STL10(root=str(tmp_path))
    check_images(dm.dataset("train"), (3, 48, 48), 3)
    check_images(dm.dataset("test"), (3, 48, 48), 2)
    assert dm.dataset("train")[0][1] == 0 and dm.dataset("test")[1][1] == 9  # unlabelled -> 0


def test_celeba_crop_160_resize_64(tmp_path, monkeypatch):
    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets.CelebA, "_check_integrity", lambda self: True)
    base = tmp_path / "celeba"
    (base / "img_align_celeba").mkdir(parents=True)
    names = ["000001.jpg", "000002.jpg", "000003.jpg", "000004.jpg"]  # (torchvision fails on a 1-image split)
    for i, n in enumerate(names):
        img = Image.new("RGB", (178, 218), (40 * i, 90, 200))
        ImageDraw.Draw(img).ellipse((50, 60, 128, 160), fill=(250, 200, 150))
        img.save(base / "img_align_celeba" / n)
    rows = lambda vals: "".join(f"{n} {v}\n" for n, v in zip(names, vals))  # noqa: E731
    (base / "list_eval_partition.txt").write_text(rows([0, 0, 2, 2]))
    (base / "identity_CelebA.txt").write_text(rows([7, 8, 9, 9]))
    (base / "list_bbox_celeba.txt").write_text("4\nimage_id x_1 y_1 width height\n" + rows(["1 2 3 4"] * 4))
    (base / "list_landmarks_align_celeba.txt").write_text("4\nlefteye_x lefteye_y\n" + rows(["69 109"] * 4))
    (base / "list_attr_celeba.txt").write_text("4\nSmiling\n" + rows([1, -1, 1, 1]))
    dm = vision.CelebA(root=str(tmp_path))
    check_images(dm.dataset("train"), (3, 64, 64), 2)
    check_images(dm.dataset("test"), (3, 64, 64), 2)


def test_center_square():
    img = Image.new("RGB", (30, 20))
    assert vision.CenterSquare()(img).size == (20, 20)


# -- (c) image folders --------------------------------------------------------------------------------------------
@pytest.fixture
def image_dir(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "imgs"
    for i in range(12):
        sub = root / f"group{i % 3}" / ("deep" if i % 2 else "")
        sub.mkdir(parents=True, exist_ok=True)
        w, h = int(rng.integers(20, 40)), int(rng.integers(20, 40))
        img = Image.new("RGB", (w, h), tuple(int(c) for c in rng.integers(0, 256, 3)))
        ImageDraw.Draw(img).polygon([tuple(int(v) for v in rng.integers(0, 20, 2)) for _ in range(4)],
                                    fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
        img.save(sub / f"img{i}.{['png', 'jpg', 'bmp'][i % 3]}")
    (root / "notes.txt").write_text("not an image")
    return root


def test_folder_shapes_and_split(image_dir):
    dm = ImageFolder(root=str(image_dir), resolution=16, test_fraction=0.25)
    train, test = dm.dataset("train"), dm.dataset("test")
    assert (len(train), len(test)) == (9, 3)
    check_images(train, (3, 16, 16), 9)
    assert set(train.paths).isdisjoint(test.paths) and len(set(train.paths) | set(test.paths)) == 12
    again = ImageFolder(root=str(image_dir), resolution=16, test_fraction=0.25)
    assert again.dataset("test").paths == test.paths  # deterministic
    assert len(ImageFolder(root=str(image_dir)).dataset("test")) == 1  # default 0.1 of 12


def test_folder_grayscale(image_dir):
    check_images(ImageFolder(root=str(image_dir), resolution=8, channels=1).dataset("train"), (1, 8, 8), 11)


def test_holdout_indices_even_and_distinct():
    assert holdout_indices(12, 0.25) == [2, 6, 10]
    assert holdout_indices(10, 0.0) == [] and holdout_indices(1, 0.5) == []
    assert len(set(holdout_indices(1000, 0.1))) == 100


@pytest.mark.parametrize("make", ["empty", "missing"])
def test_folder_errors(tmp_path, make):
    root = tmp_path / "empty"
    if make == "empty":
        (root / "sub").mkdir(parents=True)
        (root / "sub" / "a.txt").write_text("x")
    with pytest.raises(DataNotFoundError) as err:
        ImageFolder(root=str(root)).dataset("train")
    msg = str(err.value)
    assert str(root) in msg and "png" in msg and "webp" in msg and "\n" not in msg
    with pytest.raises(ConfigError):
        ImageFolder(root=None)
    with pytest.raises(ConfigError):
        ImageFolder(root=str(root), channels=2)


# -- (d) digits and toys --------------------------------------------------------------------------------------------
def test_digits_shape_range_and_fixed_disjoint_split():
    dm = Digits(resolution=16)
    train, test = dm.dataset("train").tensors[0], dm.dataset("test").tensors[0]
    assert train.shape == (1437, 1, 16, 16) and test.shape == (360, 1, 16, 16)
    assert train.min() >= -1 and train.max() <= 1
    as_rows = lambda t: {row.numpy().tobytes() for row in t.flatten(1)}  # noqa: E731
    assert not as_rows(train) & as_rows(test)
    assert torch.equal(Digits(resolution=16).dataset("test").tensors[0], test)


@pytest.mark.parametrize("cls", [Ring8, Grid25, SwissRoll], ids=lambda c: c.name)
def test_toy_shapes_fixed_and_disjoint(cls):
    dm = cls(n_train=500, n_test=200)
    x, xt = dm.dataset("train").tensors[0], dm.dataset("test").tensors[0]
    assert x.shape == (500, 2) and xt.shape == (200, 2) and dm.shape == (2,)
    assert torch.equal(cls(n_train=500, n_test=200).dataset("train").tensors[0], x)  # fixed data
    assert not torch.equal(x[:200], xt)  # train and test are different draws


def test_ring8_samples_near_a_mode():
    dm = Ring8(n_train=2000, n_test=10)
    x, labels = dm.dataset("train").tensors
    dist = torch.cdist(x, dm.modes).min(dim=1).values
    assert (dist < 4 * dm.std * 2 ** 0.5).all()  # 2-D radius: well inside 4 std per axis
    assert torch.bincount(labels, minlength=8).min() > 150  # every mode used


# -- (e) every config instantiates without touching disk --------------------------------------------------------
SHAPES = {"mnist": (1, 32, 32), "fashion_mnist": (1, 32, 32), "cifar10": (3, 32, 32), "cifar100": (3, 32, 32),
          "stl10": (3, 48, 48), "celeba": (3, 64, 64), "lsun_bedroom": (3, 128, 128), "folder": (3, 64, 64),
          "digits": (1, 16, 16), "ring8": (2,), "grid25": (2,), "swissroll": (2,), "polygons": (3, 32, 32),
          "edges2digits": (1, 32, 32), "paired": (3, 64, 64), "sr": (3, 64, 64), "sr_patches": (3, 32, 32),
          "digits2tinted": (3, 32, 32), "unpaired": (3, 64, 64)}


@pytest.mark.parametrize("path", sorted(CONF.glob("*.yaml")), ids=lambda p: p.stem)
def test_config_instantiates_lazily(path, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # the default root ~/.cache/... must not be created
    cfg = OmegaConf.load(path)
    if path.stem in ("folder", "paired", "unpaired"):
        assert OmegaConf.is_missing(cfg, "root")
        cfg.root = str(tmp_path / "imgs")
    if path.stem == "sr":  # HR from data=folder by default (root: null in the YAML)
        cfg.root = str(tmp_path / "imgs")
    dm = instantiate(cfg, batch_size=8, seed=0)
    assert dm.name == path.stem and dm.shape == SHAPES[path.stem]
    assert dm.batch_size == 8 and dm._datasets == {}
    assert not any(tmp_path.iterdir())
    assert path.read_text().startswith("# ")
    assert set(SHAPES) == {p.stem for p in CONF.glob("*.yaml")}


# -- (f) loaders ----------------------------------------------------------------------------------------------------
def test_train_loader_is_endless_full_shuffled_batches(image_dir):
    batches = list(itertools.islice(Ring8(n_train=100, n_test=10, batch_size=32).train_dataloader(), 7))
    assert all(b[0].shape == (32, 2) for b in batches)  # 3 per epoch, the remainder of 4 dropped
    assert not torch.equal(batches[0][0], batches[3][0])  # epoch 2 is reshuffled
    x, y = next(iter(ImageFolder(root=str(image_dir), resolution=8, batch_size=4).train_dataloader()))
    assert x.shape == (4, 3, 8, 8) and y.dtype == torch.long


def test_tensor_data_is_gathered_a_batch_at_a_time_with_the_per_item_loaders_values():
    dm = Ring8(n_train=100, n_test=10, batch_size=16, seed=2)
    loader = dm.train_dataloader()
    assert loader.batch_size is None  # the dataset is indexed with a whole batch of indices
    per_item = torch.utils.data.DataLoader(dm.dataset("train"), batch_sampler=ResumableBatchSampler(100, 16, seed=2))
    for (x, y), (x_ref, y_ref) in itertools.islice(zip(loader, per_item), 8):  # past the end of epoch 1 (6 batches)
        assert torch.equal(x, x_ref) and torch.equal(y, y_ref) and y.dtype == y_ref.dtype

def test_resumable_sampler_epochs_resume_and_ranks():
    sampler = ResumableBatchSampler(100, 8, seed=3)
    stream = list(itertools.islice(iter(sampler), 36))  # 12 batches per epoch, 3 epochs
    for epoch in range(3):
        seen = [i for b in stream[12 * epoch:12 * (epoch + 1)] for i in b]
        assert len(seen) == len(set(seen)) == 96  # each epoch: distinct indices, full batches
    assert stream[:12] != stream[12:24]
    # starting at batch k gives exactly the tail of the uninterrupted stream, across epoch boundaries
    for k in (5, 12, 17):
        assert list(itertools.islice(iter(ResumableBatchSampler(100, 8, seed=3, start=k)), 36 - k)) == stream[k:]
    assert list(itertools.islice(iter(ResumableBatchSampler(100, 8, seed=4)), 12)) != stream[:12]
    # two ranks split every global batch of 2 x 8 without overlap
    ranks = [list(itertools.islice(iter(ResumableBatchSampler(100, 8, seed=3, rank=r, world_size=2)), 6))
             for r in (0, 1)]
    for a, b in zip(*ranks):
        assert len(set(a) | set(b)) == 16


def test_batch_larger_than_data_is_config_error(image_dir):
    with pytest.raises(ConfigError, match="batch_size=64"):
        Ring8(n_train=10, n_test=10, batch_size=64).train_dataloader()
    with pytest.raises(ConfigError, match="11 training samples"):
        ImageFolder(root=str(image_dir), batch_size=12).train_dataloader()
