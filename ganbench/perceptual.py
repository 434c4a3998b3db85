"""Pretrained-feature losses and metrics that must never download: SRGAN's VGG19 perceptual loss and LPIPS.

Perceptual loss (``family.perceptual_weight`` > 0 in ``family=srgan``), as mmagic's SRGAN
(open-mmlab/mmagic@0a560bba9b79ebe78574e1d4cbbdd0e798e63568 ``mmagic/models/losses/perceptual_loss.py``
``PerceptualLoss``/``PerceptualVGG``; ``configs/srgan_resnet/srgan_x4c64b16_1xb16-1000k_div2k.py``:
``layer_weights={'34': 1.0}``, ``vgg_type='vgg19'``, ``perceptual_weight=1.0``, criterion ``l1``):

    L_perc = weight * mean |phi(SR) - phi(HR)|,   phi = torchvision vgg19.features[:layer + 1] of
             (x01 - ImageNet mean) / ImageNet std,  x01 = (x + 1) / 2 in [0, 1] (mmagic's images are [0, 1])

``layer`` 34 is conv5_4 before its ReLU (the SRGAN paper's phi_5,4); grey images are repeated to RGB; phi is frozen
and in eval mode, and gradients flow to SR only. The VGG is held outside the LightningModule's submodules, so it
is neither trained nor written into checkpoints.

Weights, never downloaded: ``family.perceptual_weights=PATH`` (a torchvision ``vgg19`` state dict, e.g.
``vgg19-dcbb9e9d.pth``), else torchvision's file in torch's hub cache (``$TORCH_HOME/hub/checkpoints``, where
``vgg19(weights=IMAGENET1K_V1)`` caches it); neither: one ConfigError naming both. Only the feature layers used are
built (``torchvision.models.vgg.make_layers(cfgs["E"])``, vgg19's ``features``) and loaded, so the 400 MB
classifier is never allocated.

LPIPS (``lpips_available``): torchmetrics' ``LearnedPerceptualImagePatchSimilarity`` ships its linear weights but
loads its AlexNet backbone through torchvision, a download unless the file is already in the hub cache.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import Tensor, nn

from ganbench.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VGG19_CONV5_4 = 34


def hub_checkpoint(url: str) -> Path:
    """Where torch's hub keeps the file of ``url``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def vgg19_cache_path() -> Path:
    from torchvision.models import VGG19_Weights

    return hub_checkpoint(VGG19_Weights.IMAGENET1K_V1.url)


def resolve_vgg_weights(path: str | os.PathLike | None) -> Path:
    """The VGG19 weights file: ``path`` if given, else torchvision's in the hub cache; a ConfigError if absent."""
    if path is not None:
        weights = Path(path).expanduser()
        if not weights.is_file():
            raise ConfigError(f"family.perceptual_weights={path} is not a file (a torchvision vgg19 state dict)")
        return weights
    cached = vgg19_cache_path()
    if not cached.is_file():
        raise ConfigError(f"family.perceptual_weight > 0 needs VGG19 weights and ganbench never downloads them: "
                          f"put torchvision's {cached.name} in {cached.parent} (the torch hub cache) or pass "
                          f"family.perceptual_weights=PATH; or set family.perceptual_weight=0")
    return cached


def vgg19_features(layer: int) -> nn.Sequential:
    """vgg19's ``features[:layer + 1]``, randomly initialised."""
    from torchvision.models.vgg import cfgs, make_layers

    features = make_layers(cfgs["E"])
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < len(features):
        raise ConfigError(f"family.perceptual_layer must be an index of vgg19.features (0..{len(features) - 1}; "
                          f"34 = conv5_4); got {layer!r}")
    return features[:layer + 1]


def load_features(features: nn.Sequential, weights: Path) -> nn.Sequential:
    """Load the ``features.<i>.*`` entries of a vgg19 state dict into the kept layers (every one must be there)."""
    state = torch.load(weights, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    wanted = {f"features.{k}": k for k in features.state_dict()}
    missing = sorted(set(wanted) - set(state))
    if missing:
        raise ConfigError(f"family.perceptual_weights: {weights} is not a torchvision vgg19 state dict (no "
                          f"{missing[0]})")
    features.load_state_dict({local: state[key] for key, local in wanted.items()})
    return features


class PerceptualLoss:
    """``loss(sr, hr)`` = weight * L1 between the frozen VGG19 features of SR and HR (module docstring)."""

    def __init__(self, weight: float, weights_path: str | None = None, layer: int = VGG19_CONV5_4):
        self.weight, self.layer = float(weight), layer
        self.weights_file = resolve_vgg_weights(weights_path)
        net = load_features(vgg19_features(layer), self.weights_file).eval()
        self.net = net.requires_grad_(False)
        self.mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

    def features(self, x: Tensor) -> Tensor:
        if self.mean.device != x.device:
            self.net, self.mean, self.std = self.net.to(x.device), self.mean.to(x.device), self.std.to(x.device)
        x = (x.float() + 1) / 2
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        return self.net((x - self.mean) / self.std)

    def __call__(self, sr: Tensor, hr: Tensor) -> Tensor:
        with torch.no_grad():
            target = self.features(hr)
        return self.weight * (self.features(sr) - target).abs().mean()

    def protocol(self) -> dict:
        return {"weight": self.weight, "layer": self.layer, "net": "torchvision vgg19.features",
                "weights_file": self.weights_file.name, "criterion": "l1", "input": "ImageNet-normalised [0, 1]"}


# -- LPIPS -------------------------------------------------------------------------------------------------------------
def lpips_backbone_file() -> Path:
    from torchvision.models import AlexNet_Weights

    return hub_checkpoint(AlexNet_Weights.DEFAULT.url)


def lpips_available() -> tuple[bool, str]:
    """(whether torchmetrics' LPIPS (AlexNet) can be built offline, why not)."""
    path = lpips_backbone_file()
    if not path.is_file():
        return False, f"its AlexNet weights {path.name} are not in {path.parent} (LPIPS needs them offline)"
    return True, ""


def lpips_metric() -> nn.Module:
    """torchmetrics' LPIPS with AlexNet on [0, 1] images (``normalize=True``): ``update`` per batch, ``compute``
    the mean over every image seen since ``reset``."""
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    return LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=True)
