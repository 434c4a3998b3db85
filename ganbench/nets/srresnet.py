"""SRGAN's nets (Ledig et al. 2017, "Photo-Realistic Single Image Super-Resolution Using a Generative Adversarial
Network"): ``model=srgan``, trained by ``family=srgan`` only (G takes a low-resolution image, no z).

Reference: open-mmlab/mmagic@0a560bba9b79ebe78574e1d4cbbdd0e798e63568 ``mmagic/models/editors/srgan/sr_resnet.py``
(``MSRResNet``), ``mmagic/models/archs/sr_backbone.py`` (``ResidualBlockNoBN``), ``archs/upsample.py``
(``PixelShufflePack``), ``editors/srgan/modified_vgg.py`` (``ModifiedVGG``), ``models/utils/model_utils.py``
(``default_init_weights``); config ``configs/srgan_resnet/srgan_x4c64b16_1xb16-1000k_div2k.py`` (64 channels,
16 blocks, x4).

Generator (mmagic's MSRResNet, "residual blocks without BN, similar to EDSR"), LR (C, h, w) -> SR (C, s h, s w):

    feat = LReLU_0.1(conv3x3(x))                        conv_first
    out  = blocks(feat)                                 num_blocks residual blocks, no long skip around them
    out  = log2(s) x [conv3x3 to 4 ch, PixelShuffle(2)] PixelShufflePack(ch, ch, 2), no activation after it
    out  = conv3x3(LReLU_0.1(conv3x3(out))) + bilinear_s(x)   conv_hr, conv_last, the global residual

- ``block: msrresnet`` (the reference): x + conv(ReLU(conv(x))), no batch norm; ``block: srresnet`` (the paper's
  SRResNet block, as leftthomas/SRGAN's ``ResidualBlock``): x + BN(conv(PReLU(BN(conv(x))))).
- Scales 2, 4, 8 as one pixel-shuffle x2 stage per factor of 2 (mmagic has x2, x3, x4; x8 extends the x4 pattern;
  x3 is not offered, ganbench's data scales are 2, 4, 8).
- Init as ``default_init_weights``: Kaiming-normal (fan_in, gain for ReLU), biases 0, scaled by 0.1 for conv_first,
  conv_hr, conv_last and the residual convs, 1 for the pixel-shuffle convs (``model.generator.init: pytorch`` keeps
  it; another scheme replaces it).
- Output range: unbounded in training, as the reference (its pixel loss sees the raw output); in eval mode (the
  evaluation generator for samples and metrics) clamped to [-1, 1], as the reference's ``tensor2img`` clamps.

Discriminator (mmagic's ModifiedVGG, generalised from its fixed 128 px), on HR images (C, S, S):

    stage 0:  conv3x3(C -> ch) (bias, no norm), LReLU 0.2, conv4x4/2 (no bias), norm, LReLU 0.2
    stage i:  conv3x3(-> ch_i), norm, LReLU 0.2, conv4x4/2, norm, LReLU 0.2       ch_i = ch * min(2^i, 8)
    features: flatten, Linear(ch_last * f * f, hidden), LReLU 0.2;  head: Linear(hidden, 1)

with as many stages as keep the last map at least 4x4 (128 px: 5 stages to 4x4, the reference; 32 px: 3). ``norm``
(a factory from the regularizers, ``reg=bn``/``reg=ln``) replaces ``normalization`` (batch, the reference; none).
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from ganbench.errors import ConfigError
from ganbench.nets.layers import NormFactory, check_image_shape

NAME = "srgan"
SCALES = (2, 4, 8)


def default_init(module: nn.Module, scale: float = 1.0) -> nn.Module:
    """mmagic's ``default_init_weights``: Kaiming-normal (a=0, fan_in) weights times ``scale``, zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in", nonlinearity="relu")
            m.weight.data.mul_(scale)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


class PlainBlock(nn.Module):
    """mmagic's ``ResidualBlockNoBN``: x + conv(ReLU(conv(x))), convs initialised at 0.1 scale."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, 1, 1), nn.ReLU(),
                                  nn.Conv2d(channels, channels, 3, 1, 1))
        default_init(self.body, 0.1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class BatchNormBlock(nn.Module):
    """The SRGAN paper's SRResNet block: x + BN(conv(PReLU(BN(conv(x)))))."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, 1, 1), nn.BatchNorm2d(channels),
                                  nn.PReLU(channels), nn.Conv2d(channels, channels, 3, 1, 1),
                                  nn.BatchNorm2d(channels))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


#: ``block`` -> the residual block class
BLOCKS = {"msrresnet": PlainBlock, "srresnet": BatchNormBlock}


def check_scale(scale, key: str = "data.scale") -> int:
    if isinstance(scale, bool) or not isinstance(scale, int) or scale not in SCALES:
        raise ConfigError(f"{key} must be one of {', '.join(map(str, SCALES))} (the upscaling factor); got {scale!r}")
    return scale


def pixel_shuffle_stage(channels: int) -> nn.Sequential:
    """mmagic's ``PixelShufflePack(ch, ch, 2, upsample_kernel=3)``: conv3x3 to 4 ch, PixelShuffle(2)."""
    return nn.Sequential(default_init(nn.Conv2d(channels, channels * 4, 3, 1, 1)), nn.PixelShuffle(2))


class Generator(nn.Module):
    """SRResNet (mmagic's MSRResNet): ``forward(lr: (N, C_in, h, w)) -> (N, C, scale h, scale w)``."""

    def __init__(self, data_shape: tuple, scale: int, input_channels: int | None = None, channels: int = 64,
                 num_blocks: int = 16, block: str = "msrresnet", z_dim: int | None = None):
        super().__init__()
        if z_dim is not None:
            raise ConfigError("model=srgan's G upscales an image and takes no latent z: train it with family=srgan")
        c, side = check_image_shape(NAME, data_shape, min_side=4)
        self.scale = check_scale(scale, "the generator's scale (data.scale)")
        if side % self.scale:
            raise ConfigError(f"data.resolution={side} is not divisible by data.scale={self.scale}")
        if block not in BLOCKS:
            raise ConfigError(f"model.generator.block must be one of {', '.join(BLOCKS)}; got {block!r}")
        for key, value in (("channels", channels), ("num_blocks", num_blocks)):
            if isinstance(value, bool) or not isinstance(value, int) or value < (1 if key == "channels" else 0):
                raise ConfigError(f"model.generator.{key} must be an integer >= {1 if key == 'channels' else 0}; "
                                  f"got {value!r}")
        c_in = c if input_channels is None else int(input_channels)
        self.conv_first = default_init(nn.Conv2d(c_in, channels, 3, 1, 1), 0.1)
        self.trunk = nn.Sequential(*[BLOCKS[block](channels) for _ in range(num_blocks)])
        self.upsample = nn.Sequential(*[pixel_shuffle_stage(channels) for _ in range(int(math.log2(self.scale)))])
        self.conv_hr = default_init(nn.Conv2d(channels, channels, 3, 1, 1), 0.1)
        self.conv_last = default_init(nn.Conv2d(channels, c, 3, 1, 1), 0.1)
        self.skip_channels = (c_in, c)

    def skip(self, x: Tensor) -> Tensor:
        """The global residual: x upsampled bilinearly (align_corners False), grey repeated to the output's channels."""
        up = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        c_in, c = self.skip_channels
        return up if c_in == c else up.mean(1, keepdim=True).expand(-1, c, -1, -1)

    def forward(self, x: Tensor) -> Tensor:
        feat = F.leaky_relu(self.conv_first(x), 0.1)
        out = self.upsample(self.trunk(feat))
        out = self.conv_last(F.leaky_relu(self.conv_hr(out), 0.1)) + self.skip(x)
        return out if self.training else out.clamp(-1, 1)


def _batch(channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels)


#: ``normalization`` -> factory (the convolutions before a norm have no bias, as the reference)
NORMS = {"batch": _batch, "none": lambda c: nn.Identity()}


def num_stages(side: int) -> int:
    """Stride-2 stages that keep the last map at least 4x4 (4x4 convolutions, padding 1: side // 2 each)."""
    n = 0
    while side // 2 >= 4:
        side, n = side // 2, n + 1
    return n


class Discriminator(nn.Module):
    """mmagic's ModifiedVGG for any side >= 8: ``forward(x) -> (N,)`` logits = ``head(features(x))``."""

    def __init__(self, data_shape: tuple, norm: NormFactory | None = None, channels: int = 64, hidden: int = 100,
                 normalization: str = "batch"):
        super().__init__()
        c, side = check_image_shape(NAME, data_shape, min_side=8)
        if norm is None:
            if normalization not in NORMS:
                raise ConfigError(f"model.discriminator.normalization must be one of {', '.join(NORMS)}; "
                                  f"got {normalization!r}")
            norm, bias = NORMS[normalization], normalization == "none"
        else:
            bias = True
        stages = num_stages(side)
        widths = [channels * min(2 ** i, 8) for i in range(stages)]
        layers: list[nn.Module] = [nn.Conv2d(c, widths[0], 3, 1, 1), nn.LeakyReLU(0.2)]
        for i, width in enumerate(widths):
            if i > 0:
                layers += [nn.Conv2d(widths[i - 1], width, 3, 1, 1, bias=bias), norm(width), nn.LeakyReLU(0.2)]
            layers += [nn.Conv2d(width, width, 4, 2, 1, bias=bias), norm(width), nn.LeakyReLU(0.2)]
        self.body = nn.Sequential(*layers)
        final = side >> stages
        self.fc = nn.Linear(widths[-1] * final * final, hidden)
        self.feature_dim = int(hidden)
        self.head = nn.Linear(hidden, 1)

    def features(self, x: Tensor) -> Tensor:
        return F.leaky_relu(self.fc(self.body(x).flatten(1)), 0.2)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x)).flatten()


SRResNet, ModifiedVGG = Generator, Discriminator
