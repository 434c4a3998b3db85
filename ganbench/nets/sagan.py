"""SAGAN (Zhang et al. 2019): a ResNet G and D with self-attention at chosen resolutions, as StudioGAN's ``resnet``
backbone builds it (POSTECH-CVLab/PyTorch-StudioGAN@947b35e9835b67860fdce44d337f6d7fee7c8db3
``src/models/resnet.py``; CIFAR-10 preset ``src/configs/CIFAR10/SAGAN.yaml``).

Channels are multiples of ``width`` (SG's ``g_conv_dim`` / ``d_conv_dim``, default 64), per resolution:

| side | G: seed, then each block's output (all upsample x2) | D: each block's output | D downsamples |
|---|---|---|---|
| 32  | 4, 4, 4, 4                | 2, 2, 2, 2                | T, T, F, F |
| 64  | 16, 8, 4, 2, 1            | 1, 2, 4, 8, 16            | T, T, T, T, F |
| 128 | 16, 16, 8, 4, 2, 1        | 1, 2, 4, 8, 16, 16        | T x5, F |
| 256 | 16, 16, 8, 8, 4, 2, 1     | 1, 2, 4, 8, 8, 16, 16     | T x6, F |

At 32 px with width 64 this is the CIFAR ResNet of ``resnet_cifar`` (G 256, D 128). The blocks are ganbench's
``block=chainer`` ones (``ganbench/nets/resblocks.py``), which are SG's ``GenBlock`` / ``DiscOptBlock`` /
``DiscBlock`` without normalisation in D: G BN-ReLU-up-conv3x3-BN-ReLU-conv3x3 with an up-conv1x1 shortcut; D's
first block conv-ReLU-conv-avgpool with an avgpool-conv1x1 shortcut, the others ReLU-conv-ReLU-conv-[avgpool]
with a conv1x1-[avgpool] shortcut where the shape changes. G ends BN-ReLU-conv3x3-tanh; D ReLU, spatial sum,
linear -> 1.

``attention`` lists output resolutions: a ``SelfAttention`` goes after every block that outputs one
(``ganbench/nets/attention.py``). SG's locations count blocks from 1: ``attn_g_loc: [2]`` is after G's second
block, at 16x16 for 32 px; ``attn_d_loc: [1]`` after D's first, also 16x16 at 32 px.

The generator's ``blocks`` hold its residual blocks (and their BatchNorms) and the attention layers, so
``family=conditional family.g_cond=cbn`` makes those BNs class-conditional (SG's SAGAN is cBN + projection D) and
leaves the output BN unconditional. Spectral norm (SG: ``apply_g_sn``, ``apply_d_sn``) is applied by build()
from the model config's ``spectral_norm`` list, not here.
"""

from __future__ import annotations

from torch import nn

from ganbench.nets.attention import insert_attention
from ganbench.nets.layers import NormFactory, check_image_shape, identity_norm
from ganbench.nets.resblocks import ResNetDiscriminator, ResNetGenerator

NAME = "sagan"
#: side -> G channel multipliers: the seed's, then each block's output (SG ``g_in_dims/g_out_dims_collection``)
G_MULTIPLIERS = {32: (4, 4, 4, 4), 64: (16, 8, 4, 2, 1), 128: (16, 16, 8, 4, 2, 1), 256: (16, 16, 8, 8, 4, 2, 1)}
#: side -> (each D block's output multiplier, whether it halves the side) (SG ``d_out_dims_collection``, ``d_down``)
D_ARCH = {
    32: ((2, 2, 2, 2), (True, True, False, False)),
    64: ((1, 2, 4, 8, 16), (True,) * 4 + (False,)),
    128: ((1, 2, 4, 8, 16, 16), (True,) * 5 + (False,)),
    256: ((1, 2, 4, 8, 8, 16, 16), (True,) * 6 + (False,)),
}


def check_side(name: str, data_shape: tuple, sides) -> tuple[int, int]:
    """(image channels, side) for a net serving the square sides ``sides``."""
    channels, side = check_image_shape(name, data_shape, min_side=min(sides), max_side=max(sides), power_of_two=True)
    return channels, side


def g_resolutions(n_blocks: int) -> list[int]:
    """Output sides of G's blocks: each doubles the 4x4 seed."""
    return [4 * 2 ** (i + 1) for i in range(n_blocks)]


def d_resolutions(side: int, downsample) -> list[int]:
    """Output sides of D's blocks on a side x side input."""
    out = []
    for down in downsample:
        side = side // 2 if down else side
        out.append(side)
    return out


def set_bn_eps(net: nn.Module, eps: float) -> None:
    """eps of every BatchNorm in ``net`` (SG's batch norms use 1e-4; torch's default is 1e-5)."""
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eps = float(eps)


class AttentionResNetDiscriminator(ResNetDiscriminator):
    """ganbench's chainer-style ResNet D (input block, DBlocks, ReLU, sum pooling, linear) with self-attention after
    the blocks whose output side is in ``attention``."""

    def __init__(self, name: str, data_shape: tuple, channels, downsample, attention, norm: NormFactory,
                 key: str = "model.discriminator.attention"):
        image_channels, side = int(data_shape[0]), int(data_shape[1])
        super().__init__(name, image_channels, channels, downsample=downsample[1:], norm=norm, pool="sum")
        assert downsample[0], "the input block always halves the side"
        *blocks, relu = list(self.blocks)
        self.blocks = nn.Sequential(*insert_attention(blocks, channels, d_resolutions(side, downsample), attention,
                                                      key), relu)


class Generator(ResNetGenerator):
    """SAGAN's G (see the module docstring): ``width`` is SG's ``g_conv_dim``; ``attention`` output sides."""

    def __init__(self, z_dim: int, data_shape: tuple, width: int = 64, attention=(16,), bn_eps: float = 1e-5):
        image_channels, side = check_side(NAME, data_shape, G_MULTIPLIERS)
        channels = [m * width for m in G_MULTIPLIERS[side]]
        super().__init__(z_dim, image_channels, channels, n_up=len(channels) - 1, block="chainer", name=NAME)
        self.blocks = nn.Sequential(*insert_attention(self.blocks, channels[1:], g_resolutions(len(channels) - 1),
                                                      attention, "model.generator.attention"))
        set_bn_eps(self, bn_eps)


class Discriminator(AttentionResNetDiscriminator):
    """SAGAN's D (see the module docstring): ``width`` is SG's ``d_conv_dim``; ``attention`` output sides."""

    def __init__(self, data_shape: tuple, norm: NormFactory = identity_norm, width: int = 64, attention=(16,)):
        _, side = check_side(NAME, data_shape, D_ARCH)
        multipliers, downsample = D_ARCH[side]
        super().__init__(NAME, data_shape, [m * width for m in multipliers], downsample, attention, norm)
