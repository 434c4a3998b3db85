"""pix2pix's PatchGAN discriminator (Isola et al. 2017): ``model=pix2pix``'s D, one logit per overlapping patch.

Reference: junyanz/pytorch-CycleGAN-and-pix2pix@032e88438b1b2690e538c2cf399ebceb76adbea9 ``models/networks.py``
(``NLayerDiscriminator``; ``netD=basic`` is ``n_layers=3``, the 70x70 PatchGAN):

    Conv(ndf, 4, stride 2, pad 1), LReLU 0.2                          (no norm, with bias)
    n = 1 .. n_layers - 1:  Conv(ndf * min(2^n, 8), 4, 2, 1), norm, LReLU 0.2
    Conv(ndf * min(2^n_layers, 8), 4, stride 1, pad 1), norm, LReLU 0.2
    Conv(1, 4, stride 1, pad 1)                                       (the patch logits, with bias)

An S x S input gives (N, 1, S / 2^n_layers - 2, ...) logits; each sees a ``receptive_field(n_layers)`` square of
the input (16, 34, 70 px for 1, 2, 3 layers). For pix2pix the input is cat(A, B) along channels, so
``data_shape`` is (C_A + C_B, S, S). ``norm``: a factory from the regularizers (``reg=bn``, ``reg=ln``) replaces
``normalization`` (batch, as the reference; instance; none); convolutions before batch norm have no bias. This D
returns the map of patch logits: it has no ``features``/``head`` (family=pix2pix only).
"""

from __future__ import annotations

from torch import Tensor, nn

from ganbench.errors import ConfigError
from ganbench.nets.layers import NormFactory, check_image_shape
from ganbench.nets.unet import init_norm_gains, norm_layer

NAME = "pix2pix"


def layer_specs(n_layers: int) -> list[tuple[int, int]]:
    """(kernel, stride) of every convolution, input first."""
    return [(4, 2)] * n_layers + [(4, 1), (4, 1)]


def receptive_field(n_layers: int) -> int:
    """Side of the input square one output logit sees: r <- r * stride + (kernel - stride), from the output back."""
    r = 1
    for k, s in reversed(layer_specs(n_layers)):
        r = r * s + (k - s)
    return r


def patch_side(side: int, n_layers: int) -> int:
    """Side of the logit map for an input side (4x4 convolutions with padding 1)."""
    for k, s in layer_specs(n_layers):
        side = (side + 2 - k) // s + 1
    return side


class PatchDiscriminator(nn.Module):
    def __init__(self, data_shape: tuple, norm: NormFactory | None = None, ndf: int = 64, n_layers: int = 3,
                 normalization: str = "batch"):
        super().__init__()
        channels, side = check_image_shape(NAME, data_shape, min_side=4)
        if isinstance(n_layers, bool) or not isinstance(n_layers, int) or n_layers < 1:
            raise ConfigError(f"model.discriminator.n_layers must be an integer >= 1; got {n_layers!r}")
        if patch_side(side, n_layers) < 1:
            fits = [n for n in range(1, 9) if patch_side(side, n) >= 1]
            raise ConfigError(f"model.discriminator.n_layers={n_layers} leaves no patch of a {side}x{side} image; "
                              f"use n_layers <= {max(fits) if fits else 0} or larger images")
        if norm is None:
            norm, bias = norm_layer(normalization, "discriminator")
        else:
            bias = True
        self.n_layers, self.receptive_field = n_layers, receptive_field(n_layers)
        widths = [ndf * min(2 ** n, 8) for n in range(n_layers + 1)]
        layers: list[nn.Module] = [nn.Conv2d(channels, widths[0], 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        for n in range(1, n_layers + 1):
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(widths[n - 1], widths[n], 4, stride=stride, padding=1, bias=bias), norm(widths[n]),
                       nn.LeakyReLU(0.2)]
        layers.append(nn.Conv2d(widths[-1], 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)
        init_norm_gains(self)

    def forward(self, x: Tensor) -> Tensor:
        """(N, 1, h, w) patch logits."""
        return self.model(x)
