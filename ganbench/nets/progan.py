"""ProGAN (Karras et al. 2018, "Progressive Growing of GANs for Improved Quality, Stability, and Variation") in
plain PyTorch: the networks of tkarras/progressive_growing_of_gans@2504c3f ``networks.py::G_paper``/``D_paper``.

- Equalized learning rate (``get_weight`` with ``use_wscale``): weights ~ N(0, 1), scaled at run time by the He
  constant gain / sqrt(fan_in) (gain sqrt(2); 1 for toRGB and D's output; sqrt(2)/4 for G's first dense, "to match
  the original Theano implementation"); biases start at 0 and are *not* scaled. These are not nn.Linear/nn.Conv2d,
  so ``model.*.init`` and ``reg=sn`` leave them alone (their N(0, 1) init is part of the method).
- Pixel norm: x * rsqrt(mean_C(x^2) + 1e-8), on z (``normalize_latents``) and after every G conv.
- G: 4x4 = pixel-normed z -> dense (nf(1) * 16, reshaped to 4x4, one bias per channel), conv 3x3; each further
  resolution: nearest 2x upsampling + conv 3x3, conv 3x3 (the official ``fused_scale`` transposed conv with summed
  shifted kernels is this map with the 3x3 kernel flipped: checked numerically, an equivalent parametrisation of
  the N(0, 1) weights); leaky ReLU 0.2 then pixel norm after each; toRGB 1x1 per resolution; linear output (no tanh,
  as official; ganbench's metrics clamp to [-1, 1]).
- D mirrors it: fromRGB 1x1 + lReLU per resolution; blocks conv 3x3, conv 3x3 then 2x2 box downscaling (exactly
  the fused ``conv2d_downscale2d``: the activation after the pooling); at 4x4 minibatch std (groups of min(4, N),
  strided as the official reshape), conv 3x3, dense nf(0) (``features``) and dense 1 (``head``, gain 1).
- Channels: nf(stage) = min(int(fmap_base / 2 ** (stage * fmap_decay)), fmap_max); the block at 2^r px has nf(r-1).
- Level of detail: both nets hold ``lod`` (a buffer: in the state dict, and copied into G's EMA with the other
  buffers). With lod = k + f (k integer, 0 <= f < 1) only the resolutions up to 2^(log2(side) - k) run, as the
  official "recursive" structure: G's image is lerp(toRGB(new), upscale(toRGB(old)), f) nearest-upsampled by 2^k to
  the full side (so G always emits full-size images); D takes full-size images, box-downscales them by 2^k and
  blends lerp(block(fromRGB(x)), fromRGB(downscale2(x)), f) in the same way. lod 0 (the default) is the full net:
  under family=gan these are the official ``-nogrowing`` networks; family=progan sets lod each step.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganbench.errors import ConfigError
from ganbench.nets.layers import NormFactory, check_image_shape, identity_norm
from ganbench.nets.stylegan2_ops import minibatch_std

SQRT2 = math.sqrt(2)


# -- pure pieces --------------------------------------------------------------------------------------------------
def pixel_norm(x: Tensor, eps: float = 1e-8) -> Tensor:
    return x * (x.square().mean(1, keepdim=True) + eps).rsqrt()


def lerp(a: Tensor, b: Tensor, t: float) -> Tensor:
    return a + (b - a) * t


def upscale(x: Tensor, factor: int) -> Tensor:
    """Nearest-neighbour upscaling by an integer factor (each pixel repeated factor x factor times)."""
    return x if factor == 1 else x.repeat_interleave(factor, 2).repeat_interleave(factor, 3)


def downscale(x: Tensor, factor: int) -> Tensor:
    """Box-filter downscaling: the mean of each factor x factor cell."""
    return x if factor == 1 else F.avg_pool2d(x, factor)


def split_lod(lod: float) -> tuple[int, float]:
    """(k, f) with lod = k + f, k = floor(lod)."""
    k = math.floor(lod)
    return k, lod - k


def nf(stage: int, base: int, decay: float, maximum: int) -> int:
    return min(int(base / (2.0 ** (stage * decay))), maximum)


def check_widths(net: str, base, decay, maximum) -> None:
    for key, value in (("fmap_base", base), ("fmap_max", maximum)):
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            raise ConfigError(f"model.{net}.{key} must be an integer >= 1 (official: 8192 and 512); got {value!r}")
    if not (isinstance(decay, (int, float)) and decay >= 0):
        raise ConfigError(f"model.{net}.fmap_decay must be a number >= 0 (official: 1.0); got {decay!r}")


# -- equalized-learning-rate layers --------------------------------------------------------------------------------
class EqualizedLinear(nn.Module):
    """x (W * gain / sqrt(in))^T + b, W ~ N(0, 1), b = 0 unscaled (``dense`` + ``apply_bias``)."""

    def __init__(self, in_features: int, out_features: int, gain: float = SQRT2, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self.scale = gain / math.sqrt(in_features)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


class EqualizedConv2d(nn.Module):
    """conv(x, W * gain / sqrt(in k k)) ('same' padding), then [2x2 box downscaling], + b (``conv2d`` /
    ``conv2d_downscale2d`` + ``apply_bias``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, gain: float = SQRT2,
                 down: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.scale = gain / math.sqrt(in_channels * kernel_size ** 2)
        self.down, self.padding = down, kernel_size // 2

    def forward(self, x: Tensor) -> Tensor:
        x = F.conv2d(x, self.weight * self.scale, padding=self.padding)
        return (downscale(x, 2) if self.down else x) + self.bias.reshape(1, -1, 1, 1)


def lrelu(x: Tensor) -> Tensor:
    return F.leaky_relu(x, 0.2)


class LodMixin:
    """The level of detail shared by G and D: a float buffer ``lod`` in [0, max_lod]."""

    res_log2: int

    @property
    def max_lod(self) -> int:
        return self.res_log2 - 2

    def set_lod(self, lod: float) -> None:
        if not 0 <= lod <= self.max_lod:
            raise ValueError(f"lod must lie in [0, {self.max_lod}]; got {lod}")
        self.lod.fill_(float(lod))

    def active(self) -> tuple[int, int, float]:
        """(highest active resolution log2, k, f) for the current lod = k + f."""
        k, f = split_lod(float(self.lod))
        return self.res_log2 - k, k, f


# -- generator ----------------------------------------------------------------------------------------------------
class GeneratorBlock(nn.Module):
    """Nearest 2x upsampling, conv 3x3, conv 3x3; lReLU and pixel norm after each conv."""

    def __init__(self, in_channels: int, out_channels: int, use_pixelnorm: bool):
        super().__init__()
        self.conv0 = EqualizedConv2d(in_channels, out_channels, 3)
        self.conv1 = EqualizedConv2d(out_channels, out_channels, 3)
        self.norm = pixel_norm if use_pixelnorm else (lambda x: x)

    def forward(self, x: Tensor) -> Tensor:
        x = self.norm(lrelu(self.conv0(upscale(x, 2))))
        return self.norm(lrelu(self.conv1(x)))


class FirstGeneratorBlock(nn.Module):
    """[pixel norm of z], dense to nf(1) x 4 x 4 (gain sqrt(2)/4, one bias per channel), conv 3x3."""

    def __init__(self, z_dim: int, channels: int, use_pixelnorm: bool, normalize_latents: bool):
        super().__init__()
        self.dense = EqualizedLinear(z_dim, channels * 16, gain=SQRT2 / 4, bias=False)
        self.bias = nn.Parameter(torch.zeros(channels))
        self.conv = EqualizedConv2d(channels, channels, 3)
        self.norm = pixel_norm if use_pixelnorm else (lambda x: x)
        self.normalize_latents, self.channels = normalize_latents, channels

    def forward(self, z: Tensor) -> Tensor:
        z = pixel_norm(z) if self.normalize_latents else z
        x = self.dense(z).reshape(-1, self.channels, 4, 4) + self.bias.reshape(1, -1, 1, 1)
        x = self.norm(lrelu(x))
        return self.norm(lrelu(self.conv(x)))


class Generator(LodMixin, nn.Module):
    """G(z) -> (N, C, side, side): the current lod's image, faded and nearest-upsampled to the full side."""

    def __init__(self, z_dim: int, data_shape: tuple, fmap_base: int = 8192, fmap_decay: float = 1.0,
                 fmap_max: int = 512, normalize_latents: bool = True, use_pixelnorm: bool = True):
        super().__init__()
        channels, side = check_image_shape("progan", data_shape, min_side=4, power_of_two=True)
        check_widths("generator", fmap_base, fmap_decay, fmap_max)
        self.res_log2 = int(math.log2(side))
        ch = {r: nf(r - 1, fmap_base, fmap_decay, fmap_max) for r in range(2, self.res_log2 + 1)}
        blocks = [FirstGeneratorBlock(int(z_dim), ch[2], use_pixelnorm, normalize_latents)]
        blocks += [GeneratorBlock(ch[r - 1], ch[r], use_pixelnorm) for r in range(3, self.res_log2 + 1)]
        self.blocks = nn.ModuleList(blocks)  # blocks[r - 2] runs at 2^r px
        self.torgb = nn.ModuleList(EqualizedConv2d(ch[r], channels, 1, gain=1.0) for r in ch)
        self.register_buffer("lod", torch.zeros(()))

    def forward(self, z: Tensor) -> Tensor:
        hi, k, f = self.active()
        x, prev = self.blocks[0](z), None
        for r in range(3, hi + 1):
            prev, x = x, self.blocks[r - 2](x)
        img = self.torgb[hi - 2](x)
        if f > 0 and hi > 2:
            img = lerp(img, upscale(self.torgb[hi - 3](prev), 2), f)
        return upscale(img, 2 ** k)


# -- discriminator ------------------------------------------------------------------------------------------------
class DiscriminatorBlock(nn.Module):
    """conv 3x3 (nf(r-1)), conv 3x3 to nf(r-2) with 2x2 box downscaling; lReLU (and ``norm``) after each."""

    def __init__(self, in_channels: int, out_channels: int, norm: NormFactory):
        super().__init__()
        self.conv0 = EqualizedConv2d(in_channels, in_channels, 3)
        self.conv1 = EqualizedConv2d(in_channels, out_channels, 3, down=True)
        self.norm0, self.norm1 = norm(in_channels), norm(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm1(lrelu(self.conv1(self.norm0(lrelu(self.conv0(x))))))


class Discriminator(LodMixin, nn.Module):
    """D(x) -> (N,) logits on full-size images at the current lod; ganbench's contract: ``features(x)`` is the
    4x4 epilogue's first dense (N, nf(0)), ``head`` the output dense on it."""

    def __init__(self, data_shape: tuple, norm: NormFactory = identity_norm, fmap_base: int = 8192,
                 fmap_decay: float = 1.0, fmap_max: int = 512, mbstd_group_size: int = 4):
        super().__init__()
        channels, side = check_image_shape("progan", data_shape, min_side=4, power_of_two=True)
        check_widths("discriminator", fmap_base, fmap_decay, fmap_max)
        if not (isinstance(mbstd_group_size, int) and not isinstance(mbstd_group_size, bool)
                and mbstd_group_size >= 0):
            raise ConfigError(f"model.discriminator.mbstd_group_size must be an integer >= 0 (official: 4; 0 or 1: "
                              f"no minibatch std); got {mbstd_group_size!r}")
        self.res_log2 = int(math.log2(side))
        ch = {r: nf(r - 1, fmap_base, fmap_decay, fmap_max) for r in range(1, self.res_log2 + 1)}
        self.fromrgb = nn.ModuleList(EqualizedConv2d(channels, ch[r], 1) for r in range(2, self.res_log2 + 1))
        self.blocks = nn.ModuleList(DiscriminatorBlock(ch[r], ch[r - 1], norm) for r in range(3, self.res_log2 + 1))
        self.mbstd_group_size = mbstd_group_size if mbstd_group_size > 1 else 0
        self.conv = EqualizedConv2d(ch[2] + (1 if self.mbstd_group_size else 0), ch[2], 3)
        self.norm = norm(ch[2])
        self.dense = EqualizedLinear(ch[2] * 16, ch[1])
        self.feature_dim = ch[1]
        self.head = EqualizedLinear(ch[1], 1, gain=1.0)
        self.register_buffer("lod", torch.zeros(()))

    def from_rgb(self, x: Tensor, r: int) -> Tensor:
        """fromRGB at 2^r px of the full-size x box-downscaled to that side."""
        return lrelu(self.fromrgb[r - 2](downscale(x, 2 ** (self.res_log2 - r))))

    def features(self, x: Tensor) -> Tensor:
        hi, k, f = self.active()
        h = self.from_rgb(x, hi)
        if hi > 2:
            h = self.blocks[hi - 3](h)
            if f > 0:
                h = lerp(h, self.from_rgb(x, hi - 1), f)
        for r in range(hi - 1, 2, -1):
            h = self.blocks[r - 3](h)
        if self.mbstd_group_size:
            h = minibatch_std(h, self.mbstd_group_size, 1)
        h = self.norm(lrelu(self.conv(h)))
        return lrelu(self.dense(h.flatten(1)))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x)).flatten()
