"""ganbench's Inception metrics against torch-fidelity's ``calculate_metrics`` on the same images and weights.

No network: both use one randomly initialised InceptionV3 weights file, and every cache lives in a tmp dir.
InceptionV3 runs a few images per second on CPU, so the sets are small (12 + 12 images, each embedded once by
each library).
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset

from ganbench.data.base import GANDataModule, tensor_dataset
from ganbench.errors import ConfigError
from ganbench.metrics import Evaluator
from ganbench.metrics.extractors import inception_input, random_inception_weights, resolve_inception_weights
from ganbench.metrics.kid import kernel_inception_distance

N = 12


# the test machines are small and shared: one torch thread avoids oversubscription (many times faster)
pytestmark = pytest.mark.usefixtures("one_cpu_thread")


class UInt8Images(Dataset):
    """What torch-fidelity reads: uint8 (3, H, W) tensors."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i]


class Synthetic(GANDataModule):
    """A test-split-only datamodule holding given images (in [-1, 1])."""

    name = "synthetic"
    shape = (3, 32, 32)
    default_extractor = "inception"

    def __init__(self, images: torch.Tensor, **kw):
        super().__init__(**kw)
        self.images = images

    def make_split(self, split):
        return tensor_dataset(self.images)


def as_float(u8: torch.Tensor) -> torch.Tensor:
    """uint8 -> [-1, 1]; ganbench's rounding conversion must give back the same uint8."""
    return u8.float() / 127.5 - 1


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    return str(random_inception_weights(tmp_path_factory.mktemp("weights") / "inception-random.pth", seed=0))


@pytest.fixture(autouse=True)
def private_torch_home(tmp_path, monkeypatch):
    """Never read or write the user's torch hub / torch-fidelity caches."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)


def synthetic_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images: smooth random blobs (real) and uniform noise (fake).

    The sets are far apart on purpose: with N << 2048, torch-fidelity's tr sqrtm (eigenvalues of the non-symmetric
    S1 S2) carries ~2000 * sqrt(1e-16 * max eig) of rounding noise, and its KID sums float32 kernels; relative to
    an FID of ~70 and a KID of ~0.2 both stay below 1e-6, while for two similar sets (FID ~1.5) they do not.
    """
    g = torch.Generator().manual_seed(0)
    low = torch.rand(N, 3, 4, 4, generator=g)
    real = (torch.nn.functional.interpolate(low, size=32, mode="bilinear", align_corners=False) * 255).round()
    fake = torch.randint(0, 256, (N, 3, 32, 32), generator=g)
    return real.to(torch.uint8), fake.to(torch.uint8)


def test_uint8_conversion_round_trips_and_grayscale_is_repeated():
    u8 = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    prepared = inception_input(as_float(u8))
    assert prepared.dtype == torch.uint8 and prepared.shape == (1, 3, 16, 16)
    assert torch.equal(prepared[:, 0], u8[:, 0]) and torch.equal(prepared[:, 2], u8[:, 0])


def test_agrees_with_torch_fidelity(weights, tmp_path):
    import torch_fidelity
    from torch_fidelity.metric_kid import kid_features_to_metric

    real, fake = synthetic_pair()
    kid_subsets, kid_subset_size, is_splits = 10, N // 2, 2
    ev = Evaluator(Synthetic(as_float(real)), num_real=N, num_fake=N, batch_size=N, kid_subsets=kid_subsets,
                   kid_subset_size=kid_subset_size, is_splits=is_splits, inception_weights=weights,
                   cache_dir=str(tmp_path / "cache"), device="cpu")
    ours = ev.evaluate(lambda n: as_float(fake))
    fidelity_cache = tmp_path / "fidelity_cache"
    kid_options = dict(kid_subsets=kid_subsets, kid_subset_size=kid_subset_size)  # rng_seed: both default to 2020
    theirs = torch_fidelity.calculate_metrics(
        input1=UInt8Images(fake), input2=UInt8Images(real), fid=True, kid=True, isc=True, cuda=False,
        feature_extractor="inception-v3-compat", feature_extractor_weights_path=weights, isc_splits=is_splits,
        **kid_options, cache_root=str(fidelity_cache), input1_cache_name="fake", input2_cache_name="real",
        save_cpu_ram=True, verbose=False, batch_size=N)
    tag = f"inception_test{N}"
    assert ours[f"fid/{tag}"] == pytest.approx(theirs["frechet_inception_distance"], rel=1e-6)
    # IS of a random network is close to 1: compare the part above 1
    assert ours[f"is_mean/{tag}"] - 1 == pytest.approx(theirs["inception_score_mean"] - 1, rel=1e-3)
    assert ours[f"is_std/{tag}"] == pytest.approx(theirs["inception_score_std"], rel=1e-3)
    assert ours[f"is_mean/{tag}"] > 1.005 and ours[f"is_std/{tag}"] > 0  # the random logits are not degenerate
    assert ours[f"kid_mean/{tag}"] == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-6)
    # torch-fidelity computes KID kernels in float32 (numpy matmul of float32 features), which moves its std by
    # ~2e-6; its own estimator run in float64 on the features it extracted (read back from its tmp cache) equals
    # ganbench's estimator on those same features.
    assert ours[f"kid_std/{tag}"] == pytest.approx(theirs["kernel_inception_distance_std"], rel=1e-5)
    features = {name: torch.load(fidelity_cache / f"{name}-inception-v3-compat-features-2048.pt")
                for name in ("fake", "real")}
    exact = kid_features_to_metric(features["fake"].double(), features["real"].double(), **kid_options,
                                   verbose=False)
    mean, std = kernel_inception_distance(features["fake"], features["real"], kid_subsets, kid_subset_size)
    assert mean == pytest.approx(exact["kernel_inception_distance_mean"], rel=1e-9)
    assert std == pytest.approx(exact["kernel_inception_distance_std"], rel=1e-9)
    protocol = ev.protocol()
    assert protocol["resize"] == "tf1-bilinear-299" and len(protocol["weights_sha256"]) == 16


def test_missing_weights_without_network_is_one_config_error(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(ConfigError) as err:
        resolve_inception_weights(None)
    message = str(err.value)
    assert "\n" not in message and "metrics.inception_weights=PATH" in message and "with network" in message
