"""CycleGAN's ResNet generator (Zhu et al. 2017, after Johnson et al. 2016): ``model=cyclegan``'s G, image -> image.

Reference: junyanz/pytorch-CycleGAN-and-pix2pix@032e88438b1b2690e538c2cf399ebceb76adbea9 ``models/networks.py``
(``ResnetGenerator``, ``ResnetBlock``, ``get_norm_layer``; ``resnet_9blocks`` / ``resnet_6blocks``):

    ReflectionPad(3), Conv(ngf, 7), norm, ReLU
    i = 0 .. n_downsampling - 1:  Conv(ngf * 2^(i+1), 3, stride 2, pad 1), norm, ReLU
    n_blocks x ResnetBlock(ngf * 2^n_downsampling):
        x + [pad(1), Conv(3), norm, ReLU, (Dropout 0.5), pad(1), Conv(3), norm](x)
    i = 0 .. n_downsampling - 1:  ConvTranspose(channels / 2, 3, stride 2, pad 1, output_padding 1), norm, ReLU
    ReflectionPad(3), Conv(C_out, 7) (with bias), tanh

The reference's n_downsampling is 2 (fixed); here it is an option, 2 by default at every side: a 32 px image has an
8x8 bottleneck, 16 px 4x4, 8 px 2x2 (the blocks' reflection padding of 1 needs a side of at least 2, so
side / 2^n_downsampling >= 2). Convolutions have a bias unless batch norm follows them (the reference's
``use_bias = norm is instance``; instance norm has no affine parameters). ``padding`` is the blocks' padding
(``padding_type``: reflect, replicate or zero); the outer 7x7 convolutions always use reflection, as the reference.
Batch-norm gains start at N(1, 0.02) as ``init_weights`` does (``model.generator.init: normal_0.02`` sets the
convolutions).
"""

from __future__ import annotations

from torch import Tensor, nn

from ganbench.errors import ConfigError
from ganbench.nets.layers import check_image_shape
from ganbench.nets.unet import init_norm_gains, norm_layer

NAME = "cyclegan"

#: ``padding`` -> (the padding layer of a block's 3x3 convolution or None, the convolution's own zero padding)
PADDINGS = {"reflect": (nn.ReflectionPad2d, 0), "replicate": (nn.ReplicationPad2d, 0), "zero": (None, 1)}


def _padded_conv(channels: int, padding: str, bias: bool) -> list[nn.Module]:
    pad, conv_pad = PADDINGS[padding]
    return ([pad(1)] if pad is not None else []) + [nn.Conv2d(channels, channels, 3, padding=conv_pad, bias=bias)]


class ResnetBlock(nn.Module):
    """x + conv_block(x): two padded 3x3 convolutions with norm, ReLU between them (dropout after it if > 0)."""

    def __init__(self, channels: int, padding: str, norm, bias: bool, dropout: float = 0.0):
        super().__init__()
        layers = [*_padded_conv(channels, padding, bias), norm(channels), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers += [*_padded_conv(channels, padding, bias), norm(channels)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv_block(x)


class ResnetTranslator(nn.Module):
    """G(A) -> B: ``data_shape`` is B's (C_out, S, S), ``input_channels`` A's channel count (default C_out)."""

    def __init__(self, data_shape: tuple, input_channels: int | None = None, ngf: int = 64, n_blocks: int = 9,
                 n_downsampling: int = 2, normalization: str = "instance", dropout: float = 0.0,
                 padding: str = "reflect", z_dim: int | None = None):
        super().__init__()
        if z_dim is not None:
            raise ConfigError("model=cyclegan's ResNet G translates an image and takes no latent z: train it with "
                              "family=cyclegan (unpaired data, e.g. data=digits2tinted) or family=pix2pix")
        out_channels, side = check_image_shape(NAME, data_shape, min_side=8)
        for key, value, least in (("n_blocks", n_blocks, 0), ("n_downsampling", n_downsampling, 0),
                                  ("ngf", ngf, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ConfigError(f"model.generator.{key} must be an integer >= {least}; got {value!r}")
        if side % 2 ** n_downsampling or side // 2 ** n_downsampling < 2:
            fits = max(k for k in range(side.bit_length()) if side % 2 ** k == 0 and side // 2 ** k >= 2)
            raise ConfigError(f"model.generator.n_downsampling={n_downsampling} leaves a {side}x{side} image no "
                              f"bottleneck of side >= 2 (the blocks' padding); use n_downsampling <= {fits}")
        if padding not in PADDINGS:
            raise ConfigError(f"model.generator.padding must be one of {', '.join(PADDINGS)}; got {padding!r}")
        if not 0 <= float(dropout) < 1:
            raise ConfigError(f"model.generator.dropout must be a probability in [0, 1); got {dropout}")
        norm, bias = norm_layer(normalization, "generator")
        self.input_channels = int(input_channels or out_channels)
        self.n_blocks, self.n_downsampling = n_blocks, n_downsampling
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(self.input_channels, ngf, 7, bias=bias),
                                   norm(ngf), nn.ReLU()]
        for i in range(n_downsampling):
            c = ngf * 2 ** i
            layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1, bias=bias), norm(2 * c), nn.ReLU()]
        width = ngf * 2 ** n_downsampling
        layers += [ResnetBlock(width, padding, norm, bias, float(dropout)) for _ in range(n_blocks)]
        for i in range(n_downsampling):
            c = ngf * 2 ** (n_downsampling - i)
            layers += [nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1, bias=bias),
                       norm(c // 2), nn.ReLU()]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        init_norm_gains(self)

    def forward(self, a: Tensor) -> Tensor:
        return self.model(a)
