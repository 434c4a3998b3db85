"""BEGAN's discriminators: autoencoders ``D(v) -> reconstruction of v`` (Berthelot et al. 2017). ``family=began``
scores a sample by its reconstruction error; these nets know nothing of k, gamma or the game.

Every class takes ``data_shape`` and returns a tensor of that shape.

- ``LucicAutoencoder``: compare_gan v1's small conv AE (google/compare_gan@d6c5976ba2b9d19dbff42f439c20b48565d10235,
  branch v1, ``compare_gan/src/gans/BEGAN.py`` ``BEGAN.discriminator``), the D of Lucic et al. 2018's BEGAN:
  conv ``width`` 4x4/2, lReLU; conv ``2 width`` 4x4/2 (no activation, as v1); flatten; fc ``code_dim`` [BN] lReLU
  (the code); fc ``2 width`` x s/4 x s/4 [BN] lReLU; deconv ``width`` 4x4/2 [BN] lReLU; deconv C 4x4/2; an output
  in the range the AE sees (``range``, = ``data.range``): sigmoid for ``unit`` ([0, 1], v1's images and output),
  tanh for ``symmetric`` ([-1, 1]). [BN] is ``batch_norm`` (v1's ``discriminator_batchnorm``), v1's batch norm
  (decay 0.999, eps 1e-3, as ``model=infogan``). lReLU slope 0.2; TF's SAME padding of a 4x4/2 (de)conv on an even
  side is PyTorch's padding 1. Serves square sides that are multiples of 4, >= 8.
- ``PaperAutoencoder``: the paper-style ELU AE of carpedm20/BEGAN-tensorflow@722b3f1a2ff9fd79b8508d3fd29b2a15e4e8ae36
  (``models.py`` ``DiscriminatorCNN``; n = ``width``, its ``conv_hidden_num``; ``code_dim`` its ``z_num``): with
  r = log2(side) - 2 blocks, encoder conv3 n ELU, then per block i conv3 n(i+1) ELU x 2 and, between blocks, a
  stride-2 conv3 ELU; flatten the 8x8 map; linear to the code (no activation); decoder linear to 8x8 x n, per
  block conv3 n ELU x 2 with nearest 2x upsampling between blocks, conv3 to C, no output activation (its images
  are in [-1, 1], as ganbench's). The stride-2 convs pad (0, 1) like TF's SAME. Serves powers of two >= 8 (64:
  the paper's CelebA net, r = 4).
- ``MLPAutoencoder``: for the 2-D toy data (ganbench's own, no reference): linear ``hidden`` lReLU x ``layers``,
  linear to ``code_dim``, the mirror image back, a linear output.

The autoencoder is ``self.D``: ``model.discriminator.init`` initialises it (``compare_gan``: v1's N(0, 0.02) draws).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ganbench.errors import ConfigError
from ganbench.nets.infogan import v1_batch_norm
from ganbench.nets.layers import check_image_shape

SLOPE = 0.2  # compare_gan v1's lrelu leak
OUTPUTS = {"symmetric": nn.Tanh, "unit": nn.Sigmoid}  # the AE's output activation for the range it reconstructs


def _image_shape(name: str, data_shape: tuple, **rule) -> tuple[int, int]:
    """(channels, side) of square images ``name`` serves, or one line naming what it serves."""
    try:
        return check_image_shape(name, data_shape, **rule)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace(f"model={name}", f"family.autoencoder={name}")
                          .replace("pick another model", "pick another family.autoencoder")) from None


def _positive(name: str, **sizes) -> None:
    for key, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"family.autoencoders.{name}.{key} must be an integer >= 1; got {value!r}")


def _norm(on: bool, channels: int) -> nn.Module:
    return v1_batch_norm(channels) if on else nn.Identity()


class LucicAutoencoder(nn.Module):
    def __init__(self, data_shape: tuple, width: int = 64, code_dim: int = 64, batch_norm: bool = False,
                 range: str = "symmetric"):  # noqa: A002 - data.range's name
        super().__init__()
        _positive("lucic", width=width, code_dim=code_dim)
        if range not in OUTPUTS:
            raise ConfigError(f"family.autoencoders.lucic.range must be one of {', '.join(OUTPUTS)} (data.range); "
                              f"got {range!r}")
        channels, side = _image_shape("lucic", data_shape, min_side=8, multiple_of=4)
        m, w = side // 4, int(width)
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, w, 4, stride=2, padding=1), nn.LeakyReLU(SLOPE),
            nn.Conv2d(w, 2 * w, 4, stride=2, padding=1),  # v1: no activation before the code layer
            nn.Flatten(),
            nn.Linear(2 * w * m * m, code_dim), _norm(batch_norm, code_dim), nn.LeakyReLU(SLOPE),
        )
        self.decoder = nn.Sequential(
            nn.Linear(code_dim, 2 * w * m * m), _norm(batch_norm, 2 * w * m * m), nn.LeakyReLU(SLOPE),
            nn.Unflatten(1, (2 * w, m, m)),
            nn.ConvTranspose2d(2 * w, w, 4, stride=2, padding=1), _norm(batch_norm, w), nn.LeakyReLU(SLOPE),
            nn.ConvTranspose2d(w, channels, 4, stride=2, padding=1), OUTPUTS[range](),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def _conv3(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, padding=1)


class _DownConv(nn.Module):
    """A 3x3 stride-2 conv with TF's SAME padding on an even side: one zero row/column after, none before."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class PaperAutoencoder(nn.Module):
    def __init__(self, data_shape: tuple, width: int = 128, code_dim: int = 64):
        super().__init__()
        _positive("paper", width=width, code_dim=code_dim)
        channels, side = _image_shape("paper", data_shape, min_side=8, power_of_two=True)
        blocks, n = int(math.log2(side)) - 2, int(width)
        enc: list[nn.Module] = [_conv3(channels, n), nn.ELU()]
        prev = n
        for i in range(blocks):
            c = n * (i + 1)
            enc += [_conv3(prev, c), nn.ELU(), _conv3(c, c), nn.ELU()]
            if i < blocks - 1:
                enc += [_DownConv(c), nn.ELU()]
            prev = c
        self.encoder = nn.Sequential(*enc, nn.Flatten(), nn.Linear(8 * 8 * prev, code_dim))
        dec: list[nn.Module] = [nn.Linear(code_dim, 8 * 8 * n), nn.Unflatten(1, (n, 8, 8))]
        for i in range(blocks):
            dec += [_conv3(n, n), nn.ELU(), _conv3(n, n), nn.ELU()]
            if i < blocks - 1:
                dec.append(nn.Upsample(scale_factor=2, mode="nearest"))
        self.decoder = nn.Sequential(*dec, _conv3(n, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class MLPAutoencoder(nn.Module):
    def __init__(self, data_shape: tuple, hidden: int = 128, layers: int = 2, code_dim: int = 2):
        super().__init__()
        shape = tuple(int(s) for s in data_shape)
        if len(shape) != 1:
            raise ConfigError(f"family.autoencoder=mlp serves flat vectors (D,) such as the 2-D toy data; the data "
                              f"has shape {shape} (use family.autoencoder=lucic or paper for images)")
        _positive("mlp", hidden=hidden, layers=layers, code_dim=code_dim)

        def stack(d_in: int, d_out: int) -> list[nn.Module]:
            mods: list[nn.Module] = []
            for i in range(layers):
                mods += [nn.Linear(d_in if i == 0 else hidden, hidden), nn.LeakyReLU(SLOPE)]
            return mods + [nn.Linear(hidden, d_out)]

        self.encoder = nn.Sequential(*stack(shape[0], code_dim))
        self.decoder = nn.Sequential(*stack(code_dim, shape[0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))
