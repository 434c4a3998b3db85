"""StyleGAN2 (Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN") in plain PyTorch.

The networks of NVlabs/stylegan2-ada-pytorch@d72cc7d (SG2A) ``training/networks.py``, rewritten (FIR resampling
and bias-activation: ``ganbench/nets/fir.py``; the pure tensor operations: ``ganbench/nets/stylegan2_ops.py``):

- Equalized learning rate (``FullyConnected``, ``Conv2dLayer``): weights ~ N(0, 1) / lr_mul scaled at run time by
  lr_mul / sqrt(fan_in), biases by lr_mul. These are not nn.Linear/nn.Conv2d: ``model.*.init``, ``reg=sn`` and
  ``reg=l2`` refuse them with one line (their N(0, 1) init is part of the method).
- Mapping (``MappingNetwork``): x = normalize_2nd_moment(z) (x * rsqrt(mean(x^2) + 1e-8)); with classes, the
  one-hot y through a linear embedding (w_dim), normalized the same way, concatenated; then ``num_layers`` lrelu
  layers with lr_mul 0.01. In training w_avg <- lerp(mean(w), w_avg, 0.995); the w is broadcast to ``num_ws``
  copies. Truncation: w_avg + psi (w - w_avg) on the first ``cutoff`` copies (all when null).
- Modulated convolution (``modulated_conv2d``): s = affine(w) (bias init 1); per sample w'_oik = W_oik s_i and with
  demodulation d_o = rsqrt(sum_ik w'_oik^2 + 1e-8); computed as SG2A trains ("non-fused"): x * s, the convolution
  with W, times d, plus noise.
- Synthesis (``skip`` architecture): a learned 4x4 constant, per resolution conv0 (upsampling, from 8x8), conv1 and
  a ToRGB (1x1 modulated conv without demodulation, styles times 1/sqrt(C)) whose outputs are summed over
  resolutions, the running image FIR-upsampled. Noise: per layer a learned strength (init 0) times N(0, 1) of shape
  (N, 1, H, W) (``noise_mode`` random), a fixed buffer (const) or nothing (none). Each block's ToRGB shares its w
  with the next block's first conv (SG2A's ws split). The output is linear, as SG2A's (no tanh; ganbench's
  metrics clamp to [-1, 1]).
- Style mixing (SG2A ``training/loss.py::run_G``), in training only: with probability ``style_mixing`` the ws from
  a random cutoff in [1, num_ws) on come from a second z = randn_like(z) (w_avg not updated by it).
- Discriminator: blocks from the data's side to 8x8, each (fromRGB in the first block only) conv 3x3, conv 3x3 with
  FIR downsampling; ``resnet`` adds a 1x1 downsampling skip with both paths times sqrt(0.5); ``orig`` has none (SG2A
  ``cifar``). Epilogue at 4x4: minibatch std (groups of min(group, N) samples, strided as SG2A's reshape(G, -1),
  the std over the group averaged over C/F channels and pixels, F = ``mbstd_num_channels`` maps appended), conv
  3x3, FC (``features``: (N, C4)) and the output FC (``head``). With classes (``model.native_d``) the head gives
  cmap_dim outputs projected on cmap = mapping(one-hot y) (8 lr_mul 0.01 layers, SG2A's D mapping defaults):
  logit = <head(h), cmap> / sqrt(cmap_dim).
- Channels at resolution r: min(channel_base // r, channel_max) (SG2A ``fmaps=1``: 32768 and 512).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganbench.errors import ConfigError
from ganbench.nets.fir import ACTIVATIONS, bias_act, conv2d_resample, setup_filter, upsample2d
from ganbench.nets.layers import NormFactory, check_image_shape, identity_norm
# the pure operations; modulation is re-exported for callers of ganbench.nets.stylegan2
from ganbench.nets.stylegan2_ops import minibatch_std, modulated_conv2d, modulation, normalize_2nd_moment  # noqa: F401

SQRT_HALF = math.sqrt(0.5)
NOISE_MODES = ("random", "const", "none")
#: D architecture -> whether its blocks have the residual 1x1 skip
ARCHITECTURES = {"orig": False, "resnet": True}


def channels(res: int, base: int, maximum: int) -> int:
    return min(base // res, maximum)


def _check(ok: bool, key: str, value, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"model.{key} must be {allowed}; got {value!r}")


def _is_int(value, low: int = 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def check_style_mixing(prob: float, num_ws: int) -> float:
    _check(isinstance(prob, (int, float)) and 0 <= prob <= 1, "generator.style_mixing", prob,
           "a probability in [0, 1] (SG2A: 0.9; 0 for cifar)")
    if prob > 0 and num_ws < 2:
        raise ConfigError(f"model.generator.style_mixing={prob} mixes the ws of two latents at a cutoff, but this "
                          f"synthesis network takes a single w; set model.generator.style_mixing=0")
    return float(prob)


# -- equalized-learning-rate layers --------------------------------------------------------------------------------
class FullyConnected(nn.Module):
    """act(x (W lr_mul / sqrt(in))^T + b lr_mul) (SG2A ``FullyConnectedLayer``)."""

    def __init__(self, in_features: int, out_features: int, activation: str = "linear", lr_multiplier: float = 1.0,
                 bias_init: float = 0.0):
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))
        self.weight_gain, self.bias_gain = lr_multiplier / math.sqrt(in_features), lr_multiplier

    def forward(self, x: Tensor) -> Tensor:
        return bias_act(x @ (self.weight * self.weight_gain).t(), self.bias * self.bias_gain, self.activation)


class Conv2dLayer(nn.Module):
    """act(conv(x, W / sqrt(in k k)) + b) * gain, with FIR up/downsampling (SG2A ``Conv2dLayer``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, activation: str = "linear",
                 down: int = 1, bias: bool = True, conv_clamp: float | None = None):
        super().__init__()
        self.activation, self.down, self.conv_clamp, self.padding = activation, down, conv_clamp, kernel_size // 2
        self.register_buffer("resample_filter", setup_filter(), persistent=False)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)

    def forward(self, x: Tensor, gain: float = 1.0) -> Tensor:
        x = conv2d_resample(x, self.weight * self.weight_gain, self.resample_filter, down=self.down,
                            padding=self.padding)
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        return bias_act(x, self.bias, self.activation, ACTIVATIONS[self.activation][1] * gain, clamp)


# -- generator ----------------------------------------------------------------------------------------------------
class MappingNetwork(nn.Module):
    """z (and a one-hot label c) -> w (N, w_dim), broadcast to (N, num_ws, w_dim) unless num_ws is None."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int | None, num_layers: int = 8,
                 lr_multiplier: float = 0.01, w_avg_beta: float | None = 0.995):
        super().__init__()
        self.z_dim, self.c_dim, self.num_ws, self.w_avg_beta = z_dim, c_dim, num_ws, w_avg_beta
        embed = w_dim if c_dim else 0
        self.embed = FullyConnected(c_dim, embed) if c_dim else None
        dims = [z_dim + embed] + [w_dim] * num_layers
        self.layers = nn.Sequential(*[FullyConnected(a, b, "lrelu", lr_multiplier) for a, b in zip(dims, dims[1:])])
        if w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: Tensor | None, c: Tensor | None = None, update_w_avg: bool = True) -> Tensor:
        parts = [normalize_2nd_moment(z.float())] if self.z_dim else []
        if self.c_dim:
            parts.append(normalize_2nd_moment(self.embed(c.float())))
        w = self.layers(torch.cat(parts, dim=1))
        if self.w_avg_beta is not None and self.training and update_w_avg:
            self.w_avg.copy_(w.detach().mean(0).lerp(self.w_avg, self.w_avg_beta))
        return w if self.num_ws is None else w.unsqueeze(1).repeat(1, self.num_ws, 1)

    def truncate(self, ws: Tensor, psi: float, cutoff: int | None = None) -> Tensor:
        """w_avg + psi (w - w_avg) on ws[:, :cutoff] (all when cutoff is None)."""
        if psi == 1:
            return ws
        cut = ws.shape[1] if cutoff is None else cutoff
        return torch.cat([self.w_avg.lerp(ws[:, :cut], psi), ws[:, cut:]], dim=1)


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (optionally upsampling), noise, bias, lrelu (SG2A ``SynthesisLayer``)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: int = 1,
                 conv_clamp: float | None = None):
        super().__init__()
        self.up, self.resolution, self.conv_clamp = up, resolution, conv_clamp
        self.register_buffer("resample_filter", setup_filter(), persistent=False)
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def noise(self, x: Tensor, mode: str) -> Tensor | None:
        r = self.resolution
        return {"random": lambda: torch.randn(x.shape[0], 1, r, r, device=x.device) * self.noise_strength,
                "const": lambda: self.noise_const * self.noise_strength, "none": lambda: None}[mode]()

    def forward(self, x: Tensor, w: Tensor, noise_mode: str = "random") -> Tensor:
        x = modulated_conv2d(x, self.weight, self.affine(w), self.noise(x, noise_mode), up=self.up, padding=1,
                             resample_filter=self.resample_filter, flip_weight=self.up == 1)
        return bias_act(x, self.bias, "lrelu", clamp=self.conv_clamp)


class ToRGB(nn.Module):
    """1x1 modulated conv without demodulation, styles times 1/sqrt(C), plus bias (SG2A ``ToRGBLayer``)."""

    def __init__(self, in_channels: int, img_channels: int, w_dim: int, conv_clamp: float | None = None):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(img_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(img_channels))
        self.weight_gain = 1 / math.sqrt(in_channels)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        x = modulated_conv2d(x, self.weight, self.affine(w) * self.weight_gain, demodulate=False)
        return bias_act(x, self.bias, clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution of the skip synthesis: (const | conv0 up) -> conv1 -> ToRGB added to the upsampled image."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 conv_clamp: float | None = None):
        super().__init__()
        self.register_buffer("resample_filter", setup_filter(), persistent=False)
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
            convs = []
        else:
            convs = [SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2, conv_clamp=conv_clamp)]
        convs.append(SynthesisLayer(out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp))
        self.convs = nn.ModuleList(convs)
        self.torgb = ToRGB(out_channels, img_channels, w_dim, conv_clamp)
        self.num_conv = len(convs)

    def forward(self, x: Tensor | None, img: Tensor | None, ws: Tensor, noise_mode: str) -> tuple[Tensor, Tensor]:
        w = ws.unbind(1)
        if x is None:
            x = self.const.unsqueeze(0).repeat(ws.shape[0], 1, 1, 1)
        for layer, w_i in zip(self.convs, w):
            x = layer(x, w_i, noise_mode)
        y = self.torgb(x, w[self.num_conv])
        return x, (y if img is None else upsample2d(img, self.resample_filter) + y)


class SynthesisNetwork(nn.Module):
    """ws (N, num_ws, w_dim) -> images (N, C, side, side); block r takes ws[r_start : r_start + num_conv + 1]."""

    def __init__(self, w_dim: int, side: int, img_channels: int, channel_base: int, channel_max: int,
                 conv_clamp: float | None = None):
        super().__init__()
        res = [2 ** i for i in range(2, int(math.log2(side)) + 1)]
        ch = {r: channels(r, channel_base, channel_max) for r in res}
        self.blocks = nn.ModuleList([SynthesisBlock(ch[r // 2] if r > 4 else 0, ch[r], w_dim, r, img_channels,
                                                    conv_clamp) for r in res])
        self.w_dim = w_dim
        self.num_ws = sum(b.num_conv for b in self.blocks) + 1

    def forward(self, ws: Tensor, noise_mode: str = "random") -> Tensor:
        x = img = None
        start = 0
        for block in self.blocks:
            x, img = block(x, img, ws.narrow(1, start, block.num_conv + 1), noise_mode)
            start += block.num_conv
        return img


class Generator(nn.Module):
    """G(z) or, with ``num_classes`` K > 0, G(z, y): synthesis(styles(z, y)); see the module docstring."""

    def __init__(self, z_dim: int, data_shape: tuple, num_classes: int = 0, w_dim: int = 512,
                 mapping_layers: int = 2, mapping_lr: float = 0.01, w_avg_beta: float = 0.995,
                 channel_base: int = 32768, channel_max: int = 512, style_mixing: float = 0.0,
                 truncation_psi: float = 1.0, truncation_cutoff: int | None = None, noise_mode: str = "random",
                 conv_clamp: float | None = None):
        super().__init__()
        img_channels, side = check_image_shape("stylegan2", data_shape, min_side=8, power_of_two=True)
        check_widths("generator", channel_base, channel_max, side)
        for key, value in (("w_dim", w_dim), ("mapping_layers", mapping_layers)):
            _check(_is_int(value), f"generator.{key}", value, "an integer >= 1")
        _check(isinstance(mapping_lr, (int, float)) and mapping_lr > 0, "generator.mapping_lr", mapping_lr,
               "a number > 0 (SG2A: 0.01)")
        _check(isinstance(w_avg_beta, (int, float)) and 0 <= w_avg_beta <= 1, "generator.w_avg_beta", w_avg_beta,
               "a number in [0, 1] (SG2A: 0.995)")
        _check(isinstance(truncation_psi, (int, float)) and 0 <= truncation_psi <= 1, "generator.truncation_psi",
               truncation_psi, "a number in [0, 1] (1: no truncation)")
        _check(noise_mode in NOISE_MODES, "generator.noise_mode", noise_mode, f"one of {', '.join(NOISE_MODES)}")
        self.synthesis = SynthesisNetwork(w_dim, side, img_channels, channel_base, channel_max, conv_clamp)
        self.num_ws = self.synthesis.num_ws
        _check(truncation_cutoff is None or (_is_int(truncation_cutoff) and truncation_cutoff <= self.num_ws),
               "generator.truncation_cutoff", truncation_cutoff, f"null or an integer in [1, {self.num_ws}] (num_ws)")
        self.style_mixing = check_style_mixing(style_mixing, self.num_ws)
        self.num_classes = int(num_classes)
        self.mapping = MappingNetwork(z_dim, self.num_classes, w_dim, self.num_ws, mapping_layers, mapping_lr,
                                      w_avg_beta)
        self.truncation_psi, self.truncation_cutoff = float(truncation_psi), truncation_cutoff
        self.noise_mode = noise_mode

    def sampling_protocol(self) -> dict:  # what evaluation samples go through (in result.json's protocol)
        return {"truncation_psi": self.truncation_psi, "truncation_cutoff": self.truncation_cutoff,
                "noise_mode": self.noise_mode}

    def label_code(self, y: Tensor | None) -> Tensor | None:
        if (y is None) != (self.num_classes == 0):
            raise ValueError(f"this StyleGAN2 generator has num_classes={self.num_classes}: call G(z) when 0, "
                             f"G(z, y) otherwise")
        return None if y is None else F.one_hot(y, self.num_classes).float()

    def mix_styles(self, ws: Tensor, z: Tensor, c: Tensor | None) -> Tensor:
        """With probability ``style_mixing``: ws[:, cutoff:] from a second latent, cutoff ~ U{1, ..., num_ws - 1}."""
        if self.style_mixing == 0 or float(torch.rand(())) >= self.style_mixing:
            return ws
        cutoff = int(torch.randint(1, self.num_ws, ()))
        other = self.mapping(torch.randn_like(z), c, update_w_avg=False)
        return torch.cat([ws[:, :cutoff], other[:, cutoff:]], dim=1)

    def styles(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """ws (N, num_ws, w_dim): style mixing in training, truncation toward w_avg in evaluation."""
        c = self.label_code(y)
        ws = self.mapping(z, c)
        if self.training:
            return self.mix_styles(ws, z, c)
        return self.mapping.truncate(ws, self.truncation_psi, self.truncation_cutoff)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return self.synthesis(self.styles(z, y), self.noise_mode)


def check_widths(net: str, base, maximum, side: int) -> None:
    for key, value in (("channel_base", base), ("channel_max", maximum)):
        _check(_is_int(value), f"{net}.{key}", value, "an integer >= 1 (SG2A fmaps=1: 32768 and 512)")
    _check(base // side >= 1, f"{net}.channel_base", base, f"at least the data's side {side} (channels at r px: "
           f"min(channel_base // r, channel_max))")


# -- discriminator ------------------------------------------------------------------------------------------------
class DiscriminatorBlock(nn.Module):
    """[fromRGB 1x1], conv 3x3, conv 3x3 down 2; residual: + a 1x1 down-2 skip, both times sqrt(0.5)."""

    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, img_channels: int, residual: bool,
                 norm: NormFactory, conv_clamp: float | None = None):
        super().__init__()
        self.fromrgb = Conv2dLayer(img_channels, tmp_channels, 1, "lrelu", conv_clamp=conv_clamp) if not in_channels \
            else None
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, "lrelu", conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, 3, "lrelu", down=2, conv_clamp=conv_clamp)
        self.norm0, self.norm1 = norm(tmp_channels), norm(out_channels)
        self.skip = Conv2dLayer(tmp_channels, out_channels, 1, down=2, bias=False) if residual else None

    def forward(self, x: Tensor) -> Tensor:
        if self.fromrgb is not None:
            x = self.fromrgb(x)
        gain = 1.0 if self.skip is None else SQRT_HALF
        y = self.norm1(self.conv1(self.norm0(self.conv0(x)), gain=gain))
        return y if self.skip is None else self.skip(x, gain=SQRT_HALF) + y


class Discriminator(nn.Module):
    """D(x) -> (N,) logits, or with ``num_classes`` K > 0 D(x, y) with SG2A's cmap projection; ganbench's contract:
    ``features(x)`` (N, feature_dim) is the epilogue's FC, ``head`` the output FC on it."""

    def __init__(self, data_shape: tuple, norm: NormFactory = identity_norm, num_classes: int = 0,
                 architecture: str = "orig", channel_base: int = 32768, channel_max: int = 512,
                 mbstd_group_size: int | None = 32, mbstd_num_channels: int = 1, cmap_dim: int | None = None,
                 mapping_layers: int = 8, conv_clamp: float | None = None):
        super().__init__()
        img_channels, side = check_image_shape("stylegan2", data_shape, min_side=8, power_of_two=True)
        check_widths("discriminator", channel_base, channel_max, side)
        _check(architecture in ARCHITECTURES, "discriminator.architecture", architecture,
               f"one of {', '.join(ARCHITECTURES)} (SG2A: resnet; orig for cifar)")
        ch = {r: channels(r, channel_base, channel_max) for r in [2 ** i for i in range(2, int(math.log2(side)) + 1)]}
        _check(mbstd_group_size is None or _is_int(mbstd_group_size), "discriminator.mbstd_group_size",
               mbstd_group_size, "null (the whole batch) or an integer >= 1")
        _check(_is_int(mbstd_num_channels, 0) and (mbstd_num_channels == 0 or ch[4] % mbstd_num_channels == 0),
               "discriminator.mbstd_num_channels", mbstd_num_channels,
               f"an integer >= 0 (0: no minibatch std) dividing the 4x4 channels ({ch[4]})")
        _check(_is_int(mapping_layers), "discriminator.mapping_layers", mapping_layers, "an integer >= 1")
        _check(cmap_dim is None or _is_int(cmap_dim), "discriminator.cmap_dim", cmap_dim, "null or an integer >= 1")
        res = [r for r in sorted(ch, reverse=True) if r > 4]
        self.blocks = nn.Sequential(*[DiscriminatorBlock(0 if r == side else ch[r], ch[r], ch[r // 2], img_channels,
                                                         ARCHITECTURES[architecture], norm, conv_clamp) for r in res])
        self.mbstd_group_size, self.mbstd_num_channels = mbstd_group_size, mbstd_num_channels
        self.conv = Conv2dLayer(ch[4] + mbstd_num_channels, ch[4], 3, "lrelu", conv_clamp=conv_clamp)
        self.fc = FullyConnected(ch[4] * 16, ch[4], "lrelu")
        self.feature_dim, self.num_classes = ch[4], int(num_classes)
        self.cmap_dim = (ch[4] if cmap_dim is None else int(cmap_dim)) if self.num_classes else 0
        self.head = FullyConnected(ch[4], self.cmap_dim or 1)
        self.mapping = MappingNetwork(0, self.num_classes, self.cmap_dim, None, mapping_layers, w_avg_beta=None) \
            if self.num_classes else None

    def features(self, x: Tensor) -> Tensor:
        x = self.blocks(x)
        if self.mbstd_num_channels:
            x = minibatch_std(x, self.mbstd_group_size, self.mbstd_num_channels)
        return self.fc(self.conv(x).flatten(1))

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        if (y is None) != (self.mapping is None):
            raise ValueError(f"this StyleGAN2 discriminator has num_classes={self.num_classes}: call D(x) when 0, "
                             f"D(x, y) otherwise")
        out = self.head(self.features(x))
        if self.mapping is None:
            return out.flatten()
        cmap = self.mapping(None, F.one_hot(y, self.num_classes).float())
        return (out * cmap).sum(1) / math.sqrt(self.cmap_dim)
