"""PacGAN packing (Lin et al. 2018, fjxmlzn/PacGAN@190853e ``model.py``): ``family.pack=m``.

D scores packs of m samples concatenated along channels (images) or features (vectors); packs are formed within the
real half and within the fake half, never across; each image is augmented before packing; penalties see packs (one
interpolation per pack, one gradient norm per pack, as CTGAN's packed WGAN-GP).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ganbench.errors import ConfigError


class Packing:
    """Mixin of the family LightningModules (``GAN``): ``self.pack`` is m; ``supports_pack`` says whether the
    family's D scores single unconditioned samples (only then does packing apply)."""

    supports_pack = True
    pack = 1

    @classmethod
    def check_pack(cls, pack: Any, batch_size: int) -> int:
        try:
            m = int(pack)
            ok = m >= 1 and m == float(pack)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ConfigError(f"family.pack must be an integer >= 1 (1: no packing); got {pack!r}")
        if m > 1 and not cls.supports_pack:
            raise ConfigError(f"family.pack={m}: family={cls.family_name()} does not score single samples, so "
                              f"PacGAN's packing does not apply; packing works with family=gan and family=infogan")
        if batch_size % m:
            raise ConfigError(f"family.pack={m} needs optim.batch_size divisible by {m} (packs never mix real "
                              f"and fake); got optim.batch_size={batch_size}")
        return m

    def packed(self, x: Tensor) -> Tensor:
        """(N, C, ...) -> (N / m, m * C, ...): consecutive samples form a pack, sample j in channels j*C..(j+1)*C."""
        return x if self.pack == 1 else x.reshape(x.shape[0] // self.pack, x.shape[1] * self.pack, *x.shape[2:])

    def unpacked(self, x: Tensor) -> Tensor:
        return x if self.pack == 1 else x.reshape(x.shape[0] * self.pack, x.shape[1] // self.pack, *x.shape[2:])
