"""Self-attention (Zhang et al. 2019, SAGAN) as BigGAN and StudioGAN implement it, and its placement in a net.

Sources (git snapshots): BG = ajbrock/BigGAN-PyTorch@98459431a5d618d644d54cd1e9fceb1e5045648d ``layers.py``
``Attention`` L144-169; SG = POSTECH-CVLab/PyTorch-StudioGAN@947b35e9835b67860fdce44d337f6d7fee7c8db3
``src/utils/ops.py::SelfAttention``. Both agree (BG's comment: the paper's description "is largely incorrect;
refer to the released code"):

- theta, phi: 1x1 convs C -> C/8, g: 1x1 conv C -> C/2, o: 1x1 conv C/2 -> C, all without bias (C/8 and C/2 by
  floor division, as both);
- phi(x) and g(x) are 2x2 max-pooled, so the keys and values live on HW/4 positions;
- with positions flattened row-major (``view(N, C', H*W)``), beta = softmax_k(theta^T phi) is (N, HW, HW/4): row p
  is query position p's distribution over the pooled key positions k;
- v = g beta^T, i.e. v[:, c, p] = sum_k beta[p, k] g[:, c, k], reshaped back to (N, C/2, H, W);
- out = x + gamma * o(v), gamma a learnable scalar initialised to 0 (the block starts as the identity).

Spectral norm is not applied here: the model config's ``spectral_norm`` list makes build() normalise every Conv.

Placement (``insert_attention``): after every block whose output has a listed resolution (BG's rule: BG attaches
its attention to each block whose *label* in ``G_arch``/``D_arch`` matches; ganbench uses the resolution the block
really outputs; BG's 32 px D labels all four blocks 16 although they output 16, 8, 8, 8).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganbench.errors import ConfigError


def attend(theta: Tensor, phi: Tensor, g: Tensor) -> tuple[Tensor, Tensor]:
    """SAGAN's attention on projected maps: theta (N, Ck, H, W) at every position, phi (N, Ck, h, w) and g
    (N, Cv, h, w) at the pooled positions. Returns (v (N, Cv, H, W), beta (N, HW, hw)) with
    beta = softmax over keys of theta^T phi and v = g beta^T (BG ``layers.py`` L157-168)."""
    n, ck, height, width = theta.shape
    queries = theta.reshape(n, ck, height * width)
    keys = phi.reshape(n, ck, -1)
    values = g.reshape(n, g.shape[1], -1)
    beta = F.softmax(torch.bmm(queries.transpose(1, 2), keys), dim=-1)
    v = torch.bmm(values, beta.transpose(1, 2)).reshape(n, g.shape[1], height, width)
    return v, beta


class SelfAttention(nn.Module):
    """out = x + gamma * o(g beta^T) (see the module docstring); needs even H and W (2x2 pooling of keys)."""

    def __init__(self, channels: int):
        super().__init__()
        if channels < 8:
            raise ConfigError(f"self-attention needs >= 8 channels (theta and phi have C/8); got {channels} "
                              f"(raise the model's width)")
        self.channels = int(channels)
        self.theta = nn.Conv2d(channels, channels // 8, 1, bias=False)
        self.phi = nn.Conv2d(channels, channels // 8, 1, bias=False)
        self.g = nn.Conv2d(channels, channels // 2, 1, bias=False)
        self.o = nn.Conv2d(channels // 2, channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(()))

    def attention_map(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(v, beta) of ``attend`` for input x."""
        if x.shape[2] % 2 or x.shape[3] % 2:
            raise ValueError(f"self-attention max-pools keys and values 2x2: it needs even H and W; got "
                             f"{tuple(x.shape[2:])}")
        return attend(self.theta(x), F.max_pool2d(self.phi(x), 2), F.max_pool2d(self.g(x), 2))

    def forward(self, x: Tensor) -> Tensor:
        v, _ = self.attention_map(x)
        return x + self.gamma * self.o(v)


def check_attention(requested, available: Sequence[int], key: str) -> list[int]:
    """The requested attention resolutions as ints, or a ConfigError naming ``key``, the bad value and the net's
    resolutions."""
    values = [requested] if isinstance(requested, (int, str)) else list(requested or [])
    out = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or value not in available:
            raise ConfigError(f"{key}: this net has no block at resolution {value!r}; its blocks output "
                              f"{', '.join(str(r) for r in sorted(set(available)))} (or [] for no attention)")
        out.append(value)
    return out


def _attention_at(channels: int, resolution: int, key: str) -> SelfAttention:
    if channels < 8:
        raise ConfigError(f"{key}: self-attention at {resolution}x{resolution} needs >= 8 channels (theta and phi "
                          f"have C/8); the block there has {channels} (raise the width)")
    return SelfAttention(channels)


def insert_attention(blocks: Iterable[nn.Module], channels: Sequence[int], resolutions: Sequence[int],
                     requested, key: str) -> list[nn.Module]:
    """``blocks`` with a ``SelfAttention(channels[i])`` after every block i whose output resolution is requested."""
    wanted = set(check_attention(requested, resolutions, key))
    out: list[nn.Module] = []
    for block, c, r in zip(blocks, channels, resolutions, strict=True):
        out.append(block)
        if r in wanted:
            out.append(_attention_at(c, r, key))
    return out


def attention_slots(channels: Sequence[int], resolutions: Sequence[int], requested, key: str) -> nn.ModuleList:
    """One module per block: ``SelfAttention`` after the blocks at a requested resolution, ``nn.Identity`` elsewhere
    (for nets that call their blocks one by one)."""
    wanted = set(check_attention(requested, resolutions, key))
    return nn.ModuleList(_attention_at(c, r, key) if r in wanted else nn.Identity()
                         for c, r in zip(channels, resolutions, strict=True))
