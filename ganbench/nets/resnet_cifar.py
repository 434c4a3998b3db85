"""The CIFAR ResNet of Gulrajani et al. 2017 as specified by Miyato et al. 2018 ("Spectral Normalization for GANs",
Table 4), the "ResNet CIFAR" of Kurach et al. 2019 (compare_gan's ``resnet_cifar``).

- G: linear z -> (256, 4, 4); up-ResBlocks of 256 channels (3 for 32x32); BN-ReLU-conv3x3 -> C; tanh.
- D: ResBlock down 128 (the input block), ResBlock down 128, ResBlock 128, ResBlock 128; ReLU; global sum pooling;
  linear -> 1.

Generalised to square power-of-two sides >= 8: G uses log2(side / 4) up-blocks, D is unchanged. ``width`` is the
channel count of every block (256 in G, 128 in D in the paper).
"""

from __future__ import annotations

from ganbench.nets.layers import NormFactory, check_image_shape, identity_norm
from ganbench.nets.resblocks import ResNetDiscriminator, ResNetGenerator

NAME = "resnet_cifar"


def _check(data_shape: tuple) -> tuple[int, int]:
    return check_image_shape(NAME, data_shape, min_side=8, power_of_two=True)


class Generator(ResNetGenerator):
    def __init__(self, z_dim: int, data_shape: tuple, width: int = 256, block: str = "chainer"):
        channels, side = _check(data_shape)
        n_up = side.bit_length() - 3  # log2(side / 4)
        super().__init__(z_dim, channels, [width] * (n_up + 1), n_up=n_up, block=block, name=NAME)


class Discriminator(ResNetDiscriminator):
    def __init__(self, data_shape: tuple, norm: NormFactory = identity_norm, width: int = 128, pool: str = "sum",
                 block: str = "chainer"):
        channels, _ = _check(data_shape)
        super().__init__(NAME, channels, [width] * 4, downsample=[True, False, False], norm=norm, pool=pool,
                         block=block)
