"""scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes): ganbench's offline default dataset."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ganbench.data.base import GANDataModule, tensor_dataset
from ganbench.errors import ConfigError


class Digits(GANDataModule):
    """The UCI digits, scaled from [0, 16] to [-1, 1] and resized (bilinear) to ``resolution`` (a power of two).

    Split: a fixed stratified 80/20 train/test split (seed 0), so the test split never changes between runs.
    ``n_train``: keep only the first n training images (small-data runs, e.g. ADA's); the test split is unchanged.
    """

    name = "digits"
    num_classes = 10
    default_extractor = "domain"

    def __init__(self, resolution: int = 16, n_train: int | None = None, **kw):
        super().__init__(**kw)
        resolution = int(resolution)
        if resolution < 8 or resolution & (resolution - 1):
            raise ConfigError(f"data.resolution must be a power of two >= 8 for data=digits; got {resolution}")
        if n_train is not None and (not isinstance(n_train, int) or isinstance(n_train, bool) or
                                    not 1 <= n_train <= 1437):
            raise ConfigError(f"data.n_train must be null (all 1437) or an integer in [1, 1437]; got {n_train!r}")
        self.resolution, self.n_train = resolution, n_train
        self.shape = (1, resolution, resolution)

    def make_split(self, split: str):
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        d = load_digits()
        idx_train, idx_test = train_test_split(range(len(d.target)), test_size=0.2, random_state=0,
                                               stratify=d.target)
        idx = idx_train[:self.n_train] if split == "train" else idx_test
        x = torch.from_numpy(d.images[idx]).float().unsqueeze(1) / 16.0  # [0, 1]
        if self.resolution != 8:
            x = F.interpolate(x, size=(self.resolution,) * 2, mode="bilinear", align_corners=False)
        x = (x.clamp(0, 1) * 2 - 1).contiguous()
        return tensor_dataset(x, torch.from_numpy(d.target[idx]))
