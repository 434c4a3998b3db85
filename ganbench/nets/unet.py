"""pix2pix's U-Net generator (Isola et al. 2017), sized from the image side: ``model=pix2pix``'s G.

Reference: junyanz/pytorch-CycleGAN-and-pix2pix@032e88438b1b2690e538c2cf399ebceb76adbea9 ``models/networks.py``
(``UnetGenerator``, ``UnetSkipConnectionBlock``, ``get_norm_layer``, ``init_weights``).

The net is a nest of skip blocks, block 0 outermost. Block i halves the side with Conv2d(4, stride 2, pad 1) to
c_i = ngf * min(2^i, 8) channels, runs block i + 1, doubles the side back with ConvTranspose2d(4, 2, 1) and
returns cat([x, up(x)]) (the skip connection), except the outermost block, which returns its decoder output:

- outermost (i = 0):   down = [conv]                      up = [ReLU, convT (bias), tanh]
- middle:              down = [LReLU 0.2, conv, norm]     up = [ReLU, convT, norm] (+ Dropout(p))
- innermost (i = n-1): down = [LReLU 0.2, conv]           up = [ReLU, convT, norm]

With n = ``num_downs`` = log2(side) blocks the innermost map is 1x1, as the reference's ``unet_256`` (8 downs for
256 px) and ``unet_128`` (7). The channels are the reference's: ngf, 2 ngf, 4 ngf, then 8 ngf. Convolutions have no
bias when batch norm follows them (the reference's ``use_bias = norm is instance``). The reference puts Dropout(0.5)
in its ``num_downs - 5`` middle blocks at 8 ngf next to the innermost one (3 for 256 px, none below 64 px);
``dropout_blocks`` (null: max(num_downs - 5, 1), so that a 16 or 32 px G keeps the dropout noise that is pix2pix's
only source of randomness; 0: none, the reference's ``--no_dropout``) counts them from the innermost outwards.
Batch-norm gains start at N(1, 0.02) as the reference's ``init_weights`` (``model.generator.init: normal_0.02`` sets
the convolutions).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ganbench.errors import ConfigError
from ganbench.nets.layers import check_image_shape

NAME = "pix2pix"


def _batch(channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels, affine=True)


def _instance(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


#: ``normalization`` -> (layer factory, whether the convolution before it has a bias) (``get_norm_layer``)
NORMS = {"batch": (_batch, False), "instance": (_instance, True), "none": (lambda c: nn.Identity(), True)}


def norm_layer(name: str, which: str) -> tuple:
    if name not in NORMS:
        raise ConfigError(f"model.{which}.normalization must be one of {', '.join(NORMS)}; got {name!r}")
    return NORMS[name]


def init_norm_gains(net: nn.Module) -> nn.Module:
    """Batch-norm gains ~ N(1, 0.02), biases 0 (the reference's ``init_weights``)."""
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return net


def unet_channels(num_downs: int, ngf: int) -> list[int]:
    """Inner channels of the blocks, outermost first: ngf * min(2^i, 8)."""
    return [ngf * min(2 ** i, 8) for i in range(num_downs)]


def default_dropout_blocks(num_downs: int) -> int:
    return max(num_downs - 5, 1)


class SkipBlock(nn.Module):
    """One U-Net level: down, the inner block, up; cat([x, up]) unless outermost."""

    def __init__(self, outer: int, inner: int, input_channels: int, submodule: nn.Module | None, norm, bias: bool,
                 outermost: bool = False, dropout: float = 0.0):
        super().__init__()
        self.outermost = outermost
        down_conv = nn.Conv2d(input_channels, inner, 4, stride=2, padding=1, bias=bias)
        up_in = inner if submodule is None else inner * 2
        if outermost:
            down = [down_conv]
            up = [nn.ReLU(), nn.ConvTranspose2d(up_in, outer, 4, stride=2, padding=1), nn.Tanh()]
        elif submodule is None:  # innermost
            down = [nn.LeakyReLU(0.2), down_conv]
            up = [nn.ReLU(), nn.ConvTranspose2d(up_in, outer, 4, stride=2, padding=1, bias=bias), norm(outer)]
        else:
            down = [nn.LeakyReLU(0.2), down_conv, norm(inner)]
            up = [nn.ReLU(), nn.ConvTranspose2d(up_in, outer, 4, stride=2, padding=1, bias=bias), norm(outer)]
            if dropout > 0:
                up.append(nn.Dropout(dropout))
        self.model = nn.Sequential(*down, *([submodule] if submodule is not None else []), *up)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class UNetGenerator(nn.Module):
    """G(A) -> B: ``data_shape`` is B's (C_out, S, S), ``input_channels`` A's channel count (default C_out).

    ``num_downs`` (null: log2(S)) levels, S divisible by 2^num_downs; ``ngf`` the outermost width.
    """

    def __init__(self, data_shape: tuple, input_channels: int | None = None, ngf: int = 64,
                 normalization: str = "batch", num_downs: int | None = None, dropout: float = 0.5,
                 dropout_blocks: int | None = None, z_dim: int | None = None):
        super().__init__()
        if z_dim is not None:
            raise ConfigError("model=pix2pix's U-Net translates an image A into B and takes no latent z: train it "
                              "with family=pix2pix (and paired data, e.g. data=edges2digits)")
        out_channels, side = check_image_shape(NAME, data_shape, min_side=2, power_of_two=True)
        depth = side.bit_length() - 1 if num_downs is None else int(num_downs)
        if not 1 <= depth or side % (2 ** depth):
            raise ConfigError(f"model.generator.num_downs must be in [1, log2(side) = {side.bit_length() - 1}] for "
                              f"{side}x{side} images; got {num_downs}")
        if not 0 <= float(dropout) < 1:
            raise ConfigError(f"model.generator.dropout must be a probability in [0, 1); got {dropout}")
        middle = max(depth - 2, 0)  # blocks that are neither outermost nor innermost
        if dropout_blocks is not None and not (isinstance(dropout_blocks, int) and 0 <= dropout_blocks <= middle):
            raise ConfigError(f"model.generator.dropout_blocks must be an integer in [0, {middle}] (the middle "
                              f"blocks of {depth} levels) or null; got {dropout_blocks!r}")
        norm, bias = norm_layer(normalization, "generator")
        self.input_channels = int(input_channels or out_channels)
        self.num_downs = depth
        self.dropout_blocks = min(default_dropout_blocks(depth), middle) if dropout_blocks is None else dropout_blocks
        channels = unet_channels(depth, int(ngf))
        block: nn.Module | None = None
        for i in range(depth - 1, -1, -1):  # innermost first
            middle_rank = depth - 2 - i  # 0 for the middle block next to the innermost
            outermost = i == 0
            p = float(dropout) if 0 <= middle_rank < self.dropout_blocks and not outermost else 0.0
            outer = out_channels if outermost else channels[i - 1]
            block = SkipBlock(outer, channels[i], self.input_channels if outermost else outer, block, norm, bias,
                              outermost=outermost, dropout=p)
        self.model = block
        init_norm_gains(self)

    def forward(self, a: Tensor) -> Tensor:
        return self.model(a)
