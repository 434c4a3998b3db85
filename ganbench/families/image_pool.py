"""CycleGAN's image pool (junyanz/pytorch-CycleGAN-and-pix2pix ``util/image_pool.py``): D learns from a history of
fakes, not only the latest ones. Its contents and random state are part of ``family=cyclegan``'s checkpoint."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
from torch import Tensor

from ganbench.errors import ConfigError


class ImagePool:
    """CycleGAN's history of fakes (util/image_pool.py::ImagePool.query), image by image: while fewer than ``size``
    are stored, store the new image and return it; once full, with probability 1/2 return a stored image chosen
    uniformly and store the new one in its place, else return the new one. ``size`` 0 returns the batch as is.
    The draws come from the pool's own torch.Generator (the reference: Python's ``random``), saved with its images
    by ``state()``."""

    def __init__(self, size: int, seed: int):
        self.size = int(size)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.images: Tensor | None = None
        self.count = 0

    def query(self, images: Tensor) -> Tensor:
        if self.size == 0:
            return images
        images = images.detach()
        if self.images is None:
            self.images = images.new_empty((self.size, *images.shape[1:]))
        self.images = self.images.to(images.device, images.dtype)
        out = []
        for image in images:
            if self.count < self.size:
                self.images[self.count] = image
                self.count += 1
                out.append(image)
            elif float(torch.rand((), generator=self.generator)) > 0.5:
                k = int(torch.randint(self.size, (), generator=self.generator))
                out.append(self.images[k].clone())
                self.images[k] = image
            else:
                out.append(image)
        return torch.stack(out)

    def state(self) -> dict:
        stored = None if self.images is None else self.images[:self.count].detach().cpu().clone()
        return {"size": self.size, "count": self.count, "images": stored, "rng": self.generator.get_state()}

    def load_state(self, state: Mapping) -> None:
        if int(state["size"]) != self.size:
            raise ConfigError(f"family.pool_size={self.size}, but the checkpoint's image pool holds "
                              f"{state['size']}: resume with the pool size it was trained with")
        self.count = int(state["count"])
        stored = state["images"]
        self.images = None
        if stored is not None:
            self.images = stored.new_empty((self.size, *stored.shape[1:]))
            self.images[:self.count] = stored
        self.generator.set_state(state["rng"])


def pool_seed(seed: int, domain: str) -> int:
    """The seed of a domain's pool: numpy's SeedSequence([seed, 0 for a / 1 for b])."""
    return int(np.random.SeedSequence([int(seed), "ab".index(domain)]).generate_state(1)[0])
