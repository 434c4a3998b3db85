"""Feature extractors: frozen networks mapping images in [-1, 1] to the rows the metrics need.

Every extractor returns ``{"features": (n, d), "logits": (n, classes)}`` float32 rows: the features feed FID, KID
and precision/recall, the logits feed the Inception Score. ``EXTRACTORS`` maps the config name to a builder.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

import torch
from torch import nn

from ganbench.errors import ConfigError
from ganbench.metrics.cache import digest, file_sha256, load_or_compute


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats to uint8 with rounding: floor(x * 127.5 + 128) = round(x * 127.5 + 127.5), clamped to
    [0, 255]; plain truncation would bias every pixel down by half a level."""
    return (x * 127.5 + 128).clamp(0, 255).to(torch.uint8)


class Extractor:
    """A frozen network and what identifies it in a protocol: its name, weights hash and input resize.

    ``info`` holds extra protocol entries (the domain classifier's accuracy); ``max_batch`` bounds the images per
    forward pass.
    """

    name: str = "extractor"
    resize: str | None = None
    max_batch: int = 64

    def __init__(self, net: nn.Module, weights_sha256: str, info: dict | None = None):
        self.net = net.eval().requires_grad_(False)
        self.weights_sha256 = weights_sha256
        self.info = dict(info or {})

    def to(self, device: torch.device | str) -> "Extractor":
        self.net.to(device)
        return self

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Map a batch in [-1, 1] to the network's input."""
        return x.clamp(-1, 1)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features, logits = self.net(self.prepare(x))
        return {"features": features.float(), "logits": logits.float()}


# -- InceptionV3 (torch-fidelity's TF1-exact port) -----------------------------------------------------------------

def inception_class():
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    return FeatureExtractorInceptionV3


INCEPTION_FEATURES = ["2048", "logits_unbiased"]


class InceptionExtractor(Extractor):
    """torch-fidelity's ``FeatureExtractorInceptionV3`` (pool3 features, unbiased logits). Images are rounded to
    uint8, grayscale repeated to RGB, then resized inside the network to 299x299 with TF1's exact bilinear."""

    name = "inception"
    resize = "tf1-bilinear-299"

    def __init__(self, weights: Path):
        net = inception_class()("inception-v3-compat", INCEPTION_FEATURES, feature_extractor_weights_path=str(weights))
        # channels-last weights: oneDNN's convolutions and pooling run ~1.5x faster on CPU (and use tensor cores on
        # GPU); the features change only by float32 rounding (~1e-6 relative)
        super().__init__(net.to(memory_format=torch.channels_last), file_sha256(weights))

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        return inception_input(x)


def inception_input(x: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] to what torch-fidelity's InceptionV3 takes: rounded uint8, grayscale repeated to RGB."""
    x = to_uint8(x)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def inception_url() -> str:
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    return URL_INCEPTION_V3


def resolve_weights(path: str | os.PathLike | None, url: str, option: str, what: str) -> Path:
    """A weights file: ``path`` if given (the config key ``option``), else ``url``'s file in the torch hub cache
    (``$TORCH_HOME/hub/checkpoints``, where torch-fidelity and torchvision cache it), downloaded there if missing."""
    if path is not None:
        weights = Path(path).expanduser()
        if not weights.is_file():
            raise ConfigError(f"{option}={path} is not a file")
        return weights
    name = os.path.basename(urlparse(url).path)
    weights = Path(torch.hub.get_dir()) / "checkpoints" / name
    if not weights.is_file():
        weights.parent.mkdir(parents=True, exist_ok=True)
        match = torch.hub.HASH_REGEX.search(name)
        try:
            torch.hub.download_url_to_file(url, str(weights), hash_prefix=match.group(1) if match else None,
                                           progress=False)
        except Exception as err:  # no network, HTTP error, hash mismatch: the same two ways out
            raise ConfigError(f"cannot download the {what} weights ({type(err).__name__}: {err}); pass "
                              f"{option}=PATH to a copy of {name}, or run once with network to "
                              f"cache it in {weights.parent}") from None
    return weights


def resolve_inception_weights(path: str | os.PathLike | None) -> Path:
    """torch-fidelity's InceptionV3 weights: ``path``, or its release file in the torch hub cache."""
    return resolve_weights(path, inception_url(), "metrics.inception_weights", "InceptionV3")


def random_inception_weights(path: str | os.PathLike, seed: int = 0) -> Path:
    """Write a randomly initialised InceptionV3 state dict to ``path`` (for tests and benchmarks without network).

    torch-fidelity's constructor always loads weights, so loading is stubbed out while the module is built; the
    convolutions then get He-normal weights (so activations neither vanish nor explode over 90-odd layers) and
    the classifier large normal ones (std 3), so that the small differences between a random network's features of
    different images still give visibly different class posteriors (an Inception Score well above 1).
    """
    from unittest import mock

    import torch_fidelity.feature_extractor_inceptionv3 as fe

    cls = inception_class()
    with torch.random.fork_rng(devices=[]), mock.patch.object(fe, "load_state_dict_from_url", return_value={}), \
            mock.patch.object(cls, "load_state_dict", return_value=None):
        torch.manual_seed(seed)
        net = cls("inception-v3-compat", INCEPTION_FEATURES)
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=3.0)
                nn.init.zeros_(m.bias)
    path = Path(path)
    torch.save(net.state_dict(), path)
    return path


def build_inception(*, inception_weights: str | None = None, **_) -> InceptionExtractor:
    return InceptionExtractor(resolve_inception_weights(inception_weights))


# -- the domain classifier -----------------------------------------------------------------------------------------

DOMAIN_ARCH = "domain-cnn-v1"


class DomainCNN(nn.Module):
    """A small CNN classifier; ``forward`` returns (penultimate features (n, feature_dim), logits (n, classes))."""

    def __init__(self, channels: int, num_classes: int, width: int = 16, feature_dim: int = 128):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(),  # keeps the 4x4 layout: where the strokes are matters
            nn.Linear(2 * width * 16, feature_dim), nn.ReLU(),
        )
        self.head = nn.Linear(feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(x)
        return features, self.head(features)


def accuracy(net: nn.Module, dataset, batch_size: int = 512) -> float:
    """Top-1 accuracy of ``net`` (returning (features, logits)) on a dataset of (x, y) pairs."""
    correct = total = 0
    with torch.no_grad():
        for x, y in torch.utils.data.DataLoader(dataset, batch_size=batch_size):
            correct += int((net(x)[1].argmax(1) == y).sum())
            total += len(y)
    return correct / total


def random_shift(x: torch.Tensor, generator: torch.Generator, pixels: int = 1) -> torch.Tensor:
    """Roll a batch by one random offset in [-pixels, pixels] along each image axis (translation augmentation)."""
    dy, dx = torch.randint(-pixels, pixels + 1, (2,), generator=generator).tolist()
    return torch.roll(x, (dy, dx), dims=(2, 3))


@contextmanager
def single_thread():
    """Run torch ops on one CPU thread, then restore the thread count. For the domain classifier's tiny batches one
    thread is as fast as several on an idle machine, many times faster on a shared one (no oversubscription), and
    makes the trained weights independent of the core count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def train_domain_classifier(datamodule, epochs: int = 10, batch_size: int = 32, lr: float = 5e-3,
                            seed: int = 0) -> tuple[dict, float]:
    """Train ``DomainCNN`` on the training split (Adam with a one-cycle schedule, cross-entropy, 1-pixel random
    shifts; seeded, on one CPU thread, global RNG untouched) and return (state_dict, accuracy on the test split)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = DomainCNN(datamodule.shape[0], datamodule.num_classes)
    loader = torch.utils.data.DataLoader(datamodule.dataset("train"), batch_size=batch_size, shuffle=True,
                                         generator=gen)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=epochs * len(loader))
    # gradients on even when setup() runs inside the trainer's no_grad / inference_mode evaluation
    with torch.inference_mode(False), torch.enable_grad(), single_thread():
        for _ in range(epochs):
            for x, y in loader:
                loss = nn.functional.cross_entropy(net(random_shift(x, gen))[1], y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
    net.eval()
    split = "test" if "test" in datamodule.splits else "train"
    return net.state_dict(), accuracy(net, datamodule.dataset(split))


def state_sha256(state: dict) -> str:
    """The first 16 hex digits of the sha256 over a state dict's names and tensor bytes."""
    import hashlib

    h = hashlib.sha256()
    for name, tensor in sorted(state.items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class DomainExtractor(Extractor):
    """``DomainCNN`` trained once per dataset and cached under ``cache_dir``, keyed by the training split's
    fingerprint and the architecture version. ``trained_now`` says whether this construction trained it."""

    name = "domain"
    max_batch = 1024

    def __init__(self, datamodule, cache_dir: str | os.PathLike):
        if not datamodule.num_classes:
            raise ConfigError(f"metrics.extractor=domain trains a classifier and needs labels; data={datamodule.name}"
                              f" has none: use metrics.extractor=inception")
        if len(datamodule.shape) != 3:
            raise ConfigError(f"metrics.extractor=domain needs images; data={datamodule.name} has shape "
                              f"{tuple(datamodule.shape)}")
        key = {"arch": DOMAIN_ARCH, "data": datamodule.name, "train": datamodule.fingerprint("train"),
               "shape": list(datamodule.shape), "classes": int(datamodule.num_classes)}
        path = Path(cache_dir).expanduser() / f"domain-{datamodule.name}-{digest(key)}.pt"
        payload, self.trained_now = load_or_compute(path, key, lambda: dict(zip(
            ("state_dict", "accuracy"), train_domain_classifier(datamodule))))
        net = DomainCNN(datamodule.shape[0], datamodule.num_classes)
        net.load_state_dict(payload["state_dict"])
        super().__init__(net, state_sha256(payload["state_dict"]), {"domain_accuracy": float(payload["accuracy"])})


def build_domain(*, datamodule, cache_dir: str | os.PathLike, **_) -> DomainExtractor:
    return DomainExtractor(datamodule, cache_dir)


# -- VGG-16 (precision and recall as Kynkaanniemi et al. 2019 and torch-fidelity compute them) ---------------------

def vgg16_class():
    from torch_fidelity.feature_extractor_vgg16 import FeatureExtractorVGG16

    return FeatureExtractorVGG16


#: torch-fidelity's default layer for "prc" (FeatureExtractorVGG16.get_default_feature_layer_for_metric)
VGG16_FEATURES = ["fc2_relu"]


class VGG16Extractor(Extractor):
    """torch-fidelity's ``FeatureExtractorVGG16`` (torch-fidelity 0.4.0, feature_extractor_vgg16.py): torchvision's
    VGG-16 up to fc2 + ReLU (4096 features), images rounded to uint8, grayscale repeated to RGB, resized to 224x224
    with TF1's bilinear and normalised with ImageNet's mean and std inside the network. It is the feature space of
    torch-fidelity's precision/recall (its DEFAULT_FEATURE_EXTRACTOR["prc"]); Kynkaanniemi et al. 2019 use a VGG-16's
    fc2 too (NVIDIA's own conversion of the weights, not torchvision's: the values differ a little). Features only,
    no logits: it scores precision and recall, not FID or IS."""

    name = "vgg16"

    def __init__(self, weights: Path):
        cls = vgg16_class()
        self.resize = f"tf1-bilinear-{cls.INPUT_IMAGE_SIZE}"
        super().__init__(cls("vgg16", VGG16_FEATURES, feature_extractor_weights_path=str(weights)),
                         file_sha256(weights))

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        return inception_input(x)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        (features,) = self.net(self.prepare(x))
        return {"features": features.float()}


def vgg16_url() -> str:
    """torchvision's VGG16_Weights.IMAGENET1K_V1, which torch-fidelity loads when given no weights file."""
    import torchvision

    return torchvision.models.VGG16_Weights.IMAGENET1K_V1.url


def resolve_vgg16_weights(path: str | os.PathLike | None) -> Path:
    """A torchvision VGG-16 state dict: ``path``, or torchvision's release file in the torch hub cache."""
    return resolve_weights(path, vgg16_url(), "metrics.vgg16_weights", "VGG-16")


def random_vgg16_weights(path: str | os.PathLike, seed: int = 0) -> Path:
    """Write a random torchvision VGG-16 state dict to ``path`` (for tests and benchmarks without network).

    Each weight is a Hankel-structured view of a few thousand N(0, 2 / fan_in) numbers (w[i, j, ...] = s[i + j + ...],
    He's scale; biases zero), so the file is a few hundred kB instead of 528 MB; torch-fidelity's load_state_dict
    copies the views into its dense float32 VGG-16 all the same."""
    import torchvision

    with torch.device("meta"):
        shapes = {k: v.shape for k, v in torchvision.models.vgg16(init_weights=False).state_dict().items()}
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in shapes.items():
        if name.endswith("bias"):
            state[name] = torch.zeros(shape)
            continue
        base = torch.randn(sum(shape) - len(shape) + 1, generator=gen) * (2.0 / torch.Size(shape[1:]).numel()) ** 0.5
        state[name] = base.as_strided(shape, (1,) * len(shape))
    path = Path(path)
    torch.save(state, path)
    return path


def build_vgg16(*, vgg16_weights: str | None = None, **_) -> VGG16Extractor:
    return VGG16Extractor(resolve_vgg16_weights(vgg16_weights))


#: config name -> builder(datamodule=, inception_weights=, vgg16_weights=, cache_dir=) of an ``Extractor`` with
#: features and logits (metrics.extractor: FID, KID, IS, and precision/recall unless metrics.pr_extractor says)
EXTRACTORS: dict[str, Callable[..., Extractor]] = {"inception": build_inception, "domain": build_domain}
#: the extractors precision/recall may use (metrics.pr_extractor): those above, and VGG-16 (features only)
PR_EXTRACTORS: dict[str, Callable[..., Extractor]] = {**EXTRACTORS, "vgg16": build_vgg16}
