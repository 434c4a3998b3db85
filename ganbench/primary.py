"""Which metric picks a run's best evaluation (its best checkpoint, its score in ganbench.analyze), and which way.

A family may name its own primary metric (``primary_metric`` on its module: pix2pix's and SRGAN's PSNR against the
ground truth, families.md 10.3); every other run is scored by the evaluator's (FID, or the toy metrics on 2-D data).
"""

from __future__ import annotations

import math
from typing import Iterable

#: metrics (the short name before '/') whose larger values are better; every other metric: lower is better
HIGHER_IS_BETTER = frozenset({"psnr", "psnr_y", "psnr_rgb", "ssim", "ssim_y", "ssim_rgb", "is_mean", "precision",
                              "recall", "class_agree", "class_acc", "hq_frac", "modes"})


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` (``psnr/test360``, ``class_acc/domain_ab_test40``) is better."""
    return isinstance(metric, str) and metric.split("/", 1)[0] in HIGHER_IS_BETTER


def primary_key(short: str | None, keys: Iterable[str], default: str) -> str:
    """The key among ``keys`` whose short name is ``short`` (a family's own primary), else ``default``."""
    if short is not None:
        found = next((k for k in keys if str(k).split("/", 1)[0] == short), None)
        if found is not None:
            return found
    return default


def improves(key: str, value: float, best: float | None) -> bool:
    """Whether ``value`` of ``key`` is finite and better than ``best`` (None: nothing yet)."""
    if not math.isfinite(value):
        return False
    return best is None or (value > best if higher_is_better(key) else value < best)
