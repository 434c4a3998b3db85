"""Class conditioning around ganbench's nets: label codes, conditional batch norm, and the G and D wrappers of
``family=conditional`` (``ganbench/families/conditional.py``).

Every wrapper holds an unconditional ganbench net as ``inner`` and adds the label ``y`` (N,) (int64 classes):

- ``ConcatGenerator``: G(z, y) = inner([z, code(y)]); ``inner`` is built with ``z_dim + code dim`` inputs
  (Mirza & Osindero 2014; eriklindernoren/PyTorch-GAN@022e6aa ``implementations/cgan/cgan.py``, which uses a
  learned ``nn.Embedding(K, K)``; ``embed_dim=None`` is the paper's one-hot y).
- ``CBNGenerator``: every BatchNorm of ``inner`` (of a ResNet G: every one in its blocks; the one before the output
  conv stays unconditional, as SNP's ``b5`` and BigGAN's ``output_layer``) becomes a ``ConditionalBatchNorm``:
  BN without affine, then out = gain(y) * x_hat + bias(y) per channel.
  - per-class tables (``shared_dim=None``): gain = Embedding(K, C) initialised to 1, bias = Embedding(K, C)
    initialised to 0 (pfnet-research/sngan_projection@e84b1a5
    ``source/links/categorical_conditional_batch_normalization.py``);
  - shared (BigGAN, ajbrock/BigGAN-PyTorch@9845943 ``layers.py::ccbn``, ``BigGAN.py`` Generator): one
    ``nn.Embedding(K, shared_dim)`` e = shared(y) for the whole G (never spectrally normalised: BigGAN's comment,
    "applying SN to G's embedding seems to randomly cripple G"; ``reg.sn.generator=true`` only touches Linear/Conv)
    feeds per-layer bias-free linears: gain = 1 + W_g e, bias = W_b e.
  The BN keeps the replaced layer's eps, momentum and running statistics switch.
- ``ProjectionDiscriminator`` (Miyato & Koyama 2018; SNP ``dis_models/snresnet_32.py``; BigGAN ``BigGAN.py``
  D.forward): logit = head(h) + <embed(y), h>, h = inner.features(x). The embedding is a bias-free
  ``nn.Linear(K, F)`` read as a table (Glorot-uniform, as SNP's ``SNEmbedID``), so ``reg=sn`` normalises it as
  SNP does.
- ``ACGANDiscriminator`` (Odena et al. 2017; POSTECH-CVLab/PyTorch-StudioGAN@947b35e ``src/models/resnet.py``
  ``linear2``): {"logit": head(h), "cls": Linear(F, K, bias=False)(h)}; the losses are the family's.
- ``ConcatDiscriminator``: D(x, y) = inner([x, code(y)]), the code concatenated to the vector (mlp) or broadcast
  over H x W as extra input channels (images; SNP's ``SNResNetConcatDiscriminator`` does the same after block 3),
  ``inner`` built with those extra inputs. A learned code is a Linear-as-table like the projection's (SNP's
  ``SNEmbedID``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from ganbench.errors import ConfigError


# -- pure pieces --------------------------------------------------------------------------------------------------
def channel_affine(x_hat: Tensor, gain: Tensor, bias: Tensor) -> Tensor:
    """gain * x_hat + bias with per-sample, per-channel (N, C) gain and bias broadcast over x_hat's other axes."""
    shape = gain.shape + (1,) * (x_hat.dim() - 2)
    return torch.addcmul(bias.reshape(shape), x_hat, gain.reshape(shape))


def projection_logit(h: Tensor, head: nn.Module, class_embedding: Tensor) -> Tensor:
    """Miyato & Koyama's projection D: head(h) + sum_j embed(y)_j h_j, as an (N,) tensor."""
    return head(h).flatten() + (class_embedding * h).sum(1)


def concat_code(x: Tensor, code: Tensor) -> Tensor:
    """[x, code] along features (N, D) or, broadcast over H x W, along channels (N, C, H, W)."""
    if x.dim() > 2:
        code = code.reshape(*code.shape, *(1,) * (x.dim() - 2)).expand(-1, -1, *x.shape[2:])
    return torch.cat([x, code.to(x.dtype)], dim=1)


def check_labels(y: Tensor) -> None:
    """Labels are an (N,) int64 tensor (the range is the embeddings' to check: no device sync here)."""
    if y.dtype != torch.long or y.dim() != 1:
        raise ValueError(f"class labels must be an (N,) int64 tensor; got {y.dtype} of shape {tuple(y.shape)}")


# -- label codes --------------------------------------------------------------------------------------------------
class LabelCode(nn.Module):
    """y -> a vector per sample: one-hot (``dim=None``, K entries, no weights) or a learned table of ``dim``
    entries: ``nn.Embedding`` (N(0, 1) init; spectral norm never applies) or, with ``normalisable=True``, a bias-free
    ``nn.Linear(K, dim)`` read as a table (Glorot-uniform init; ``reg=sn`` normalises it like any Linear)."""

    def __init__(self, num_classes: int, dim: int | None = None, normalisable: bool = False):
        super().__init__()
        self.num_classes = int(num_classes)
        self.dim = self.num_classes if dim is None else int(dim)
        self.one_hot = dim is None
        self.normalisable = bool(normalisable) and not self.one_hot
        self.table: nn.Module | None = None
        if self.normalisable:
            self.table = nn.Linear(self.num_classes, self.dim, bias=False)
            nn.init.xavier_uniform_(self.table.weight)
        elif not self.one_hot:
            self.table = nn.Embedding(self.num_classes, self.dim)

    def forward(self, y: Tensor) -> Tensor:
        if self.one_hot:
            return F.one_hot(y, self.num_classes).float()
        if self.normalisable:
            return F.embedding(y, self.table.weight.t())  # row y of W^T: W is (dim, K)
        return self.table(y)


# -- generator side -----------------------------------------------------------------------------------------------
class ConditionalBatchNorm(nn.Module):
    """Batch norm without affine, then a class-conditional per-channel gain and bias.

    ``shared_dim=None``: per-class tables (SNP's categorical cBN): gain = gains[y] (init 1), bias = biases[y]
    (init 0); the condition is y. Otherwise BigGAN's ccbn: gain = 1 + W_g e, bias = W_b e with bias-free linears on
    the shared embedding e (N, shared_dim), which is the condition. The owner (``CBNGenerator``) sets
    ``condition`` for one forward pass.
    """

    def __init__(self, bn: _BatchNorm, num_classes: int, shared_dim: int | None = None):
        super().__init__()
        channels = bn.num_features
        self.norm = type(bn)(channels, eps=bn.eps, momentum=bn.momentum, affine=False,
                             track_running_stats=bn.track_running_stats)
        self.shared = shared_dim is not None
        if self.shared:
            self.gain = nn.Linear(int(shared_dim), channels, bias=False)
            self.bias = nn.Linear(int(shared_dim), channels, bias=False)
        else:
            self.gain, self.bias = nn.Embedding(num_classes, channels), nn.Embedding(num_classes, channels)
            nn.init.ones_(self.gain.weight)
            nn.init.zeros_(self.bias.weight)
        self.condition: Tensor | None = None

    def affine(self, condition: Tensor) -> tuple[Tensor, Tensor]:
        gain, bias = self.gain(condition), self.bias(condition)
        return (1 + gain if self.shared else gain), bias

    def forward(self, x: Tensor) -> Tensor:
        if self.condition is None:
            raise RuntimeError("ConditionalBatchNorm called without a class condition: call the CBNGenerator, "
                               "not its inner net")
        return channel_affine(self.norm(x), *self.affine(self.condition))


def conditional_norm_scope(generator: nn.Module) -> nn.Module:
    """Where the BatchNorms to condition live: a residual G's ``blocks`` (ResNet, SAGAN; its output BN stays
    unconditional, as SNP's ``b5`` and BigGAN's ``output_layer``), the whole net otherwise."""
    return generator.blocks if isinstance(getattr(generator, "blocks", None), nn.Module) else generator


def replace_batch_norms(net: nn.Module, num_classes: int, shared_dim: int | None) -> int:
    """Swap every BatchNorm below ``net`` for a ``ConditionalBatchNorm`` in place; return how many."""
    targets = [(name, m) for name, m in net.named_modules() if isinstance(m, _BatchNorm)]
    for name, bn in targets:
        parent_name, _, child = name.rpartition(".")
        setattr(net.get_submodule(parent_name) if parent_name else net, child,
                ConditionalBatchNorm(bn, num_classes, shared_dim))
    return len(targets)


class ConcatGenerator(nn.Module):
    """G(z, y) = inner([z, code(y)]); ``inner`` takes ``z_dim + extra_dim(...)`` inputs."""

    def __init__(self, inner: nn.Module, num_classes: int, embed_dim: int | None = None):
        super().__init__()
        self.inner = inner
        self.num_classes = int(num_classes)
        self.code = LabelCode(num_classes, embed_dim)

    @staticmethod
    def extra_dim(num_classes: int, embed_dim: int | None) -> int:
        return int(num_classes) if embed_dim is None else int(embed_dim)

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        check_labels(y)
        return self.inner(torch.cat([z, self.code(y).to(z.dtype)], dim=1))


class CBNGenerator(nn.Module):
    """G(z, y) = inner(z) with its BatchNorms class-conditional (see ``ConditionalBatchNorm``); with ``shared_dim``
    one shared ``nn.Embedding(K, shared_dim)`` feeds every layer's gain and bias linears (BigGAN)."""

    def __init__(self, inner: nn.Module, num_classes: int, shared_dim: int | None = None, name: str = "the model"):
        super().__init__()
        self.inner = inner
        self.num_classes = int(num_classes)
        if not replace_batch_norms(conditional_norm_scope(inner), num_classes, shared_dim):
            raise ConfigError(f"family.g_cond=cbn makes G's batch norms class-conditional, but {name}'s generator "
                              f"has none: use family.g_cond=concat")
        self.shared = nn.Embedding(num_classes, int(shared_dim)) if shared_dim is not None else None

    def conditional_norms(self) -> list[ConditionalBatchNorm]:
        return [m for m in self.inner.modules() if isinstance(m, ConditionalBatchNorm)]

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        check_labels(y)
        condition = y if self.shared is None else self.shared(y)
        norms = self.conditional_norms()
        for norm in norms:
            norm.condition = condition
        try:
            return self.inner(z)
        finally:
            for norm in norms:
                norm.condition = None


# -- discriminator side -------------------------------------------------------------------------------------------
def check_feature_contract(inner: nn.Module, d_cond: str, name: str) -> int:
    """D's pooled feature size, or a ConfigError when D lacks ganbench's features(x) / feature_dim / head."""
    if not (callable(getattr(inner, "features", None)) and isinstance(getattr(inner, "feature_dim", None), int)
            and isinstance(getattr(inner, "head", None), nn.Module)):
        raise ConfigError(f"family.d_cond={d_cond} puts a class head on D's feature vector, but {name}'s "
                          f"discriminator has no features(x), feature_dim and head (ganbench.nets' contract): use "
                          f"family.d_cond=concat")
    return int(inner.feature_dim)


class FeatureHeadDiscriminator(nn.Module):
    """Base of the discriminators with a class head on the inner D's feature vector h = inner.features(x)."""

    d_cond = ""

    def __init__(self, inner: nn.Module, num_classes: int, name: str = "the model"):
        super().__init__()
        self.feature_dim = check_feature_contract(inner, self.d_cond, name)
        self.inner = inner
        self.num_classes = int(num_classes)

    @property
    def head(self) -> nn.Module:
        return self.inner.head

    def features(self, x: Tensor) -> Tensor:
        return self.inner.features(x)


class ProjectionDiscriminator(FeatureHeadDiscriminator):
    """logit = head(h) + <embed(y), h> (Miyato & Koyama 2018)."""

    d_cond = "projection"

    def __init__(self, inner: nn.Module, num_classes: int, name: str = "the model"):
        super().__init__(inner, num_classes, name)
        self.embed = LabelCode(num_classes, self.feature_dim, normalisable=True)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        check_labels(y)
        return projection_logit(self.features(x), self.head, self.embed(y))


class ACGANDiscriminator(FeatureHeadDiscriminator):
    """{"logit": head(h), "cls": class logits Linear(F, K, bias=False)(h)}; y does not enter D."""

    d_cond = "acgan"

    def __init__(self, inner: nn.Module, num_classes: int, name: str = "the model"):
        super().__init__(inner, num_classes, name)
        self.classifier = nn.Linear(self.feature_dim, self.num_classes, bias=False)

    def forward(self, x: Tensor, y: Tensor | None = None) -> dict[str, Tensor]:
        h = self.features(x)
        return {"logit": self.head(h).flatten(), "cls": self.classifier(h)}


class ConcatDiscriminator(nn.Module):
    """D(x, y) = inner([x, code(y)]), ``inner`` built for ``extra_shape(...)`` inputs."""

    def __init__(self, inner: nn.Module, num_classes: int, embed_dim: int | None = None):
        super().__init__()
        self.inner = inner
        self.num_classes = int(num_classes)
        self.code = LabelCode(num_classes, embed_dim, normalisable=True)

    @staticmethod
    def extra_shape(data_shape: tuple, num_classes: int, embed_dim: int | None) -> tuple:
        """The inner D's input shape: the code's entries added to the features or channels."""
        extra = int(num_classes) if embed_dim is None else int(embed_dim)
        return (int(data_shape[0]) + extra, *(int(s) for s in data_shape[1:]))

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        check_labels(y)
        return self.inner(concat_code(x, self.code(y)))
