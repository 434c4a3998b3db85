"""BigGAN (Brock et al. 2019) as ajbrock/BigGAN-PyTorch@98459431a5d618d644d54cd1e9fceb1e5045648d codes it (BG):
``BigGAN.py`` (``G_arch``, ``D_arch``, ``Generator``, ``Discriminator``) and ``layers.py`` (``GBlock``, ``DBlock``,
``ccbn``, ``Attention``).

Channels are multiples of ``ch`` (BG's ``--G_ch`` / ``--D_ch``, default 64), per resolution:

| side | G: seed, then each block's output (all upsample x2) | D: each block's output | D downsamples |
|---|---|---|---|
| 32  | 4, 4, 4, 4                | 4, 4, 4, 4                | T, T, F, F |
| 64  | 16, 16, 8, 4, 2           | 1, 2, 4, 8, 16            | T x4, F |
| 128 | 16, 16, 8, 4, 2, 1        | 1, 2, 4, 8, 16, 16        | T x5, F |
| 256 | 16, 16, 8, 8, 4, 2, 1     | 1, 2, 4, 8, 8, 16, 16     | T x6, F |

(StudioGAN's ``big_resnet.py`` has the same G but a 32 px D of 2 x ``d_conv_dim``: its CIFAR BigGAN, conv dims 96,
is ch=96 in G and ch=48 in D here.)

Generator, natively class-conditional, G(z, y) with y (N,) int64 in [0, K):

- shared class embedding e = ``nn.Embedding(K, shared_dim)``(y), ``shared_dim`` 0/None meaning z_dim (BG's
  ``shared_dim``); an ``nn.Embedding``, so spectral norm, which touches Linear and Conv only, never reaches it (BG:
  "applying SN to G's embedding seems to randomly cripple G");
- ``hier``: z is split into (number of blocks + 1) equal chunks z_0, z_1, ...; z_0 feeds the input linear
  (-> 4x4), block i is conditioned on c_i = [e, z_{i+1}] (BG ``Generator.forward``). BG truncates a z_dim that does
  not split to chunk * slots; ganbench refuses it. Without ``hier`` the linear takes all of z and c_i = e;
- every block's two BNs are BG's ``ccbn``: BN without affine (eps ``bn_eps``, momentum 0.1), then
  gain = 1 + W_g c, bias = W_b c with bias-free linears (``ganbench.nets.conditioning.ConditionalBatchNorm``);
  ``shared=false`` (BG without ``--G_shared``, its CIFAR script) uses per-class gain and bias tables instead
  (init 1 and 0; BG's are 1 + E(y) and E(y) with E initialised like the other weights);
- blocks BN-ReLU-up(nearest)-conv3x3-BN-ReLU-conv3x3 with an up-conv1x1 shortcut (ganbench's ``GBlock``);
  optional self-attention after the blocks at the ``attention`` output sides;
- output BN (unconditional, affine, eps 1e-5 as BG's ``output_layer``)-ReLU-conv3x3-tanh.

Discriminator, unconditional: BG's ``DBlock``s (the first without pre-activation, the rest ReLU first; wide: the
hidden width is the output width), attention after the listed sides, ReLU, spatial sum, ``head`` linear -> 1.
``family=conditional`` adds the projection term (BG ``Discriminator.forward``). BG's D labels its 32 px blocks'
resolutions 16, 16, 16, 16 (``D_arch[32]``); ganbench places attention by the side a block really outputs.

BG initialises every Linear, Conv and Embedding orthogonally (``G_init``/``D_init`` ortho): the YAML's
``init: orthogonal`` covers the Linears and Convs (ganbench.nets.init leaves the embedding at N(0, 1)).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ganbench.errors import ConfigError
from ganbench.nets.attention import attention_slots
from ganbench.nets.conditioning import ConditionalBatchNorm, check_labels, replace_batch_norms
from ganbench.nets.layers import NormFactory, identity_norm
from ganbench.nets.resblocks import GBlock
from ganbench.nets.sagan import AttentionResNetDiscriminator, check_side, g_resolutions, set_bn_eps

NAME = "biggan"
#: side -> G channel multipliers: the seed's, then each block's output (BG ``G_arch``)
G_MULTIPLIERS = {32: (4, 4, 4, 4), 64: (16, 16, 8, 4, 2), 128: (16, 16, 8, 4, 2, 1), 256: (16, 16, 8, 8, 4, 2, 1)}
#: side -> (each D block's output multiplier, whether it halves the side) (BG ``D_arch``)
D_ARCH = {
    32: ((4, 4, 4, 4), (True, True, False, False)),
    64: ((1, 2, 4, 8, 16), (True,) * 4 + (False,)),
    128: ((1, 2, 4, 8, 16, 16), (True,) * 5 + (False,)),
    256: ((1, 2, 4, 8, 8, 16, 16), (True,) * 6 + (False,)),
}


def z_chunk_size(z_dim: int, slots: int) -> int:
    """z_dim / slots, or a ConfigError naming optim.z_dim and the nearest sizes that split (BG truncates)."""
    if z_dim % slots == 0 and z_dim > 0:
        return z_dim // slots
    below, above = slots * (z_dim // slots), slots * (z_dim // slots + 1)
    nearest = f"{below} or {above}" if below > 0 else str(above)
    raise ConfigError(f"optim.z_dim={z_dim} does not split into {slots} equal chunks (model.generator.hier=true: "
                      f"one for the input linear and one for each of the {slots - 1} G blocks); use optim.z_dim={nearest} "
                      f"(BigGAN-PyTorch would silently truncate z to {below})")


def block_conditions(z: Tensor, embedding: Tensor, n_blocks: int, hier: bool) -> tuple[Tensor, list[Tensor]]:
    """(input of G's first linear, the condition of each block): hierarchical z gives (z_0, [[e, z_{i+1}]]),
    otherwise (z, [e] * n_blocks) (BG ``Generator.forward``)."""
    if not hier:
        return z, [embedding] * n_blocks
    chunks = z.chunk(n_blocks + 1, dim=1)
    return chunks[0], [torch.cat([embedding, chunk], dim=1) for chunk in chunks[1:]]


class Generator(nn.Module):
    """BigGAN's class-conditional G (see the module docstring); forward(z, y)."""

    native_conditioning = True

    def __init__(self, z_dim: int, data_shape: tuple, num_classes: int, ch: int = 64, shared: bool = True,
                 shared_dim: int | None = None, hier: bool = False, attention=(16,), bn_eps: float = 1e-5):
        super().__init__()
        image_channels, side = check_side(NAME, data_shape, G_MULTIPLIERS)
        if hier and not shared:
            raise ConfigError("model.generator.hier=true appends z chunks to the shared class embedding: it needs "
                              "model.generator.shared=true")
        channels = [m * ch for m in G_MULTIPLIERS[side]]
        self.num_classes, self.z_dim, self.hier = int(num_classes), int(z_dim), bool(hier)
        n_blocks = len(channels) - 1
        chunk = z_chunk_size(self.z_dim, n_blocks + 1) if hier else 0
        self.shared_dim = int(shared_dim) if shared_dim else self.z_dim
        self.shared = nn.Embedding(self.num_classes, self.shared_dim) if shared else None
        self.linear = nn.Linear(chunk if hier else self.z_dim, channels[0] * 4 * 4)
        self.blocks = nn.ModuleList()
        for c_in, c_out in zip(channels[:-1], channels[1:]):
            block = GBlock(c_in, c_out, upsample=True)
            set_bn_eps(block, bn_eps)
            replace_batch_norms(block, self.num_classes, self.shared_dim + chunk if shared else None)
            self.blocks.append(block)
        self.attention = attention_slots(channels[1:], g_resolutions(n_blocks), attention, "model.generator.attention")
        self.to_image = nn.Sequential(nn.BatchNorm2d(channels[-1]), nn.ReLU(),
                                      nn.Conv2d(channels[-1], image_channels, 3, padding=1), nn.Tanh())

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        check_labels(y)
        h, conditions = block_conditions(z, self.shared(y) if self.shared is not None else y, len(self.blocks),
                                         self.hier)
        h = self.linear(h).reshape(z.shape[0], -1, 4, 4)
        for block, attention, condition in zip(self.blocks, self.attention, conditions):
            norms = [m for m in block.modules() if isinstance(m, ConditionalBatchNorm)]
            for norm in norms:
                norm.condition = condition
            try:
                h = attention(block(h))
            finally:
                for norm in norms:
                    norm.condition = None
        return self.to_image(h)


class Discriminator(AttentionResNetDiscriminator):
    """BigGAN's unconditional D trunk (see the module docstring); ``ch`` is BG's ``--D_ch``."""

    def __init__(self, data_shape: tuple, norm: NormFactory = identity_norm, ch: int = 64, attention=(16,)):
        _, side = check_side(NAME, data_shape, D_ARCH)
        multipliers, downsample = D_ARCH[side]
        super().__init__(NAME, data_shape, [m * ch for m in multipliers], downsample, attention, norm)
