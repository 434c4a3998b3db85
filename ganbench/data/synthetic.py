"""Synthetic images: random filled convex polygons on a plain background, any resolution and channel count.

Offline, deterministic (seeded per split) and cheap to make: for tests, benchmarks and smoke runs of image
architectures where no real dataset is on disk. Each image is labelled by its shape, the vertex count: class =
vertices - 3 (triangles 0 ... octagons 5), so ``family=conditional`` can train on it (the vertices are random points
on a circle, so neighbouring classes overlap where two vertices nearly coincide).
"""

from __future__ import annotations

import numpy as np
import torch

from ganbench.data.base import GANDataModule, tensor_dataset
from ganbench.errors import ConfigError


MIN_VERTICES, MAX_VERTICES = 3, 8


def convex_polygon(rng: np.random.Generator, side: int) -> list[tuple[float, float]]:
    """3-8 vertices on a circle of random centre and radius, in angular order: always convex."""
    n = int(rng.integers(MIN_VERTICES, MAX_VERTICES + 1))
    cx, cy = rng.uniform(0.3, 0.7, size=2) * side
    r = rng.uniform(0.15, 0.4) * side
    angles = np.sort(rng.uniform(0, 2 * np.pi, size=n))
    return [(cx + r * np.cos(a), cy + r * np.sin(a)) for a in angles]


def polygon_images(n: int, side: int, channels: int, seed: int) -> torch.Tensor:
    """n images in [-1, 1]; ``labelled_polygon_images`` also gives their classes."""
    return labelled_polygon_images(n, side, channels, seed)[0]


def labelled_polygon_images(n: int, side: int, channels: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(n images in [-1, 1], their classes = vertex count - 3)."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    mode = "RGB" if channels == 3 else "L"
    out = np.empty((n, side, side, channels), dtype=np.uint8)
    labels = np.empty(n, dtype=np.int64)
    for i in range(n):
        background = tuple(int(v) for v in rng.integers(0, 96, size=channels))
        fill = tuple(int(v) for v in rng.integers(128, 256, size=channels))
        img = Image.new(mode, (side, side), background if channels == 3 else background[0])
        vertices = convex_polygon(rng, side)
        labels[i] = len(vertices) - MIN_VERTICES
        ImageDraw.Draw(img).polygon(vertices, fill=fill if channels == 3 else fill[0])
        out[i] = np.asarray(img).reshape(side, side, channels)
    return torch.from_numpy(out).permute(0, 3, 1, 2).float() / 127.5 - 1, torch.from_numpy(labels)


class Polygons(GANDataModule):
    """Random convex polygons, ``resolution`` x ``resolution``, 1 or 3 channels, ``n_train``/``n_test`` images,
    labelled by vertex count (6 classes)."""

    name = "polygons"
    num_classes = MAX_VERTICES - MIN_VERTICES + 1

    def __init__(self, resolution: int = 32, channels: int = 3, n_train: int = 2048, n_test: int = 512, **kw):
        super().__init__(**kw)
        if int(channels) not in (1, 3):
            raise ConfigError(f"data.channels must be 1 or 3 for data=polygons; got {channels}")
        if int(resolution) < 4:
            raise ConfigError(f"data.resolution must be an integer >= 4 for data=polygons; got {resolution}")
        self.resolution, self.channels = int(resolution), int(channels)
        self.shape = (self.channels, self.resolution, self.resolution)
        self.n = {"train": int(n_train), "test": int(n_test)}

    def make_split(self, split: str):
        return tensor_dataset(*labelled_polygon_images(self.n[split], self.resolution, self.channels,
                                                       seed=7919 + self.splits.index(split)))
