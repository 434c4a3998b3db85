"""Kurach et al. 2019's "ResNet19" for 128x128 images ("A Large-Scale Study on Regularization and Normalization in
GANs"). The layout follows compare_gan's ``resnet5`` architecture, the code that study ran:

- G: linear z -> (8w, 4, 4); 5 ResBlocks with channels 8w -> 8w -> 4w -> 4w -> 2w -> w, each upsampling;
  BN-ReLU-conv3x3 -> C; tanh.
- D: input ResBlock down -> w; 5 ResBlocks down with channels w -> 2w -> 4w -> 4w -> 8w -> 8w; ReLU; global pooling;
  linear -> 1. At 128x128 the last feature map is 2x2.

``w`` is ``width`` (64 in the study). Sides 32 and 64 are also served: only the first log2(side / 4) G blocks
upsample and only the first log2(side) - 1 D blocks downsample (compare_gan does the same in G), so every
block is kept and D always ends at 2x2.
"""

from __future__ import annotations

from ganbench.nets.layers import NormFactory, check_image_shape, identity_norm
from ganbench.nets.resblocks import ResNetDiscriminator, ResNetGenerator

NAME = "resnet19"
G_MULTIPLIERS = (8, 8, 4, 4, 2, 1)  # seed, then the output of each of the 5 blocks
D_MULTIPLIERS = (1, 2, 4, 4, 8, 8)  # the input block, then the output of each of the 5 blocks


def _check(data_shape: tuple) -> tuple[int, int]:
    return check_image_shape(NAME, data_shape, min_side=32, max_side=128, power_of_two=True)


class Generator(ResNetGenerator):
    def __init__(self, z_dim: int, data_shape: tuple, width: int = 64, block: str = "chainer"):
        channels, side = _check(data_shape)
        n_up = side.bit_length() - 3  # log2(side / 4)
        super().__init__(z_dim, channels, [m * width for m in G_MULTIPLIERS], n_up=n_up, block=block, name=NAME)


class Discriminator(ResNetDiscriminator):
    def __init__(self, data_shape: tuple, norm: NormFactory = identity_norm, width: int = 64, pool: str = "sum",
                 block: str = "chainer"):
        channels, side = _check(data_shape)
        n_down = side.bit_length() - 2  # log2(side) - 1 halvings reach 2x2; the input block does the first
        downsample = [i < n_down - 1 for i in range(len(D_MULTIPLIERS) - 1)]
        super().__init__(NAME, channels, [m * width for m in D_MULTIPLIERS], downsample=downsample, norm=norm,
                         pool=pool, block=block)
