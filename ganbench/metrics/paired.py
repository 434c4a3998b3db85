"""Metrics of an image-to-image generator against its ground truth (``family=pix2pix``): PSNR, SSIM, L1 and, for
labelled targets, the digit classifier's agreement.

On the evaluator's reference split (``metrics.split``, the test split by default) every pair (A, B), or the first
``num_pairs``, is translated by the evaluation generator (G's EMA, eval mode) and compared with B:

- ``psnr/<split><n>``: per image 10 log10(1 / MSE) on images mapped from [-1, 1] to [0, 1] by (x + 1) / 2 (data
  range 1), every channel (grey or RGB; no Y conversion, no border crop), then the mean over images. An exact
  translation (MSE 0, where torchmetrics gives inf) counts as ``PSNR_CAP_DB`` = 100 dB, so the mean stays finite.
- ``ssim/<split><n>``: torchmetrics' SSIM on the same [0, 1] images, data range 1 (Gaussian window 11, sigma 1.5,
  k1 0.01, k2 0.03: torchmetrics' defaults, Wang et al. 2004), the mean over images. SSIM is not invariant to the
  shift of [-1, 1] to [0, 1], hence the mapping, as image codecs' [0, 255] data.
- ``l1/<split><n>``: mean |G(A) - B| in [-1, 1] (pix2pix's L1 term, ``torch.nn.L1Loss``).
- ``class_agree/domain_<split><n>``: the fraction of pairs on which the data's domain classifier (the one that
  ``metrics.extractor=domain`` and family=conditional's class accuracy use, ``extractors.build_domain``) gives
  G(A) the class it gives B; ``class_acc/domain_<split><n>``: the fraction it assigns to B's label. Only for data
  with labels and a domain classifier (edges2digits); skipped otherwise.

torchmetrics 1.9 ``functional.image.peak_signal_noise_ratio`` / ``structural_similarity_index_measure`` compute
the per-image values (``reduction="none"``).
"""

from __future__ import annotations

import math
from typing import Callable, Iterator

import torch
from torch import Tensor
from torch.utils.data import Dataset, TensorDataset

from ganbench.errors import ConfigError
from ganbench.metrics.evaluator import count_label

PSNR_CAP_DB = 100.0


def to_unit(x: Tensor) -> Tensor:
    """[-1, 1] -> [0, 1]."""
    return ((x.float() + 1) / 2).clamp(0, 1)


def psnr(fake: Tensor, real: Tensor) -> Tensor:
    """Per-image PSNR (N,) in dB of images in [-1, 1], on [0, 1] with data range 1, capped at PSNR_CAP_DB."""
    from torchmetrics.functional.image import peak_signal_noise_ratio

    values = peak_signal_noise_ratio(to_unit(fake), to_unit(real), data_range=1.0, dim=(1, 2, 3), reduction="none")
    return values.clamp(max=PSNR_CAP_DB)


def ssim(fake: Tensor, real: Tensor) -> Tensor:
    """Per-image SSIM (N,) of images in [-1, 1], on [0, 1] with data range 1 (torchmetrics' window defaults)."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    return structural_similarity_index_measure(to_unit(fake), to_unit(real), data_range=1.0, reduction="none")


def l1(fake: Tensor, real: Tensor) -> Tensor:
    """Per-image mean absolute difference (N,) in [-1, 1]."""
    return (fake.float() - real.float()).abs().flatten(1).mean(1)


def pair_batches(pairs: Dataset, n: int, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
    """The first ``n`` (A, B) of ``pairs`` in order, stacked ``batch_size`` at a time."""
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        if isinstance(pairs, TensorDataset):
            a, b = pairs.tensors[0][start:stop], pairs.tensors[1][start:stop]
        else:
            items = [pairs[i] for i in range(start, stop)]
            a, b = torch.stack([it[0] for it in items]), torch.stack([it[1] for it in items])
        yield a, b


def domain_classifier(ev):
    """The data's domain classifier (the evaluator's extractor when it is one), or None without labels or one."""
    from ganbench.metrics.extractors import build_domain

    dm = ev.datamodule
    if not getattr(dm, "num_classes", None):
        return None
    if ev.kind == "domain":
        return ev.suite.extractor
    if dm.default_extractor == "domain":
        return build_domain(datamodule=dm, cache_dir=ev.cache_dir).to(ev.device)
    return None


class PairedMetrics:
    """``__call__(evaluator, translate)`` with ``translate(a) -> G(a)`` returns the values (module docstring);
    ``protocol()`` how the last ones were computed."""

    def __init__(self, num_pairs: int | None = None):
        if num_pairs is not None and (isinstance(num_pairs, bool) or not isinstance(num_pairs, int) or num_pairs < 1):
            raise ConfigError(f"family.metric_pairs must be an integer >= 1 or null (every pair of the split); "
                              f"got {num_pairs!r}")
        self.num_pairs = num_pairs
        self._protocol: dict = {}

    @torch.no_grad()
    def __call__(self, ev, translate: Callable[[Tensor], Tensor]) -> dict[str, float]:
        from ganbench.metrics.conditional import split_labels

        ev.setup()
        dm = ev.datamodule
        pairs = dm.pairs(ev.split)
        n = min(self.num_pairs or len(pairs), len(pairs))
        classifier = domain_classifier(ev)
        labels = split_labels(dm, ev.split)[:n].to(ev.device) if classifier is not None else None
        sums = {"psnr": 0.0, "ssim": 0.0, "l1": 0.0, "agree": 0, "acc": 0}
        seen = 0
        for a, b in pair_batches(pairs, n, ev.batch_size):
            fake = translate(a).detach().to(ev.device)
            b = b.to(ev.device)
            if not torch.isfinite(fake).all():
                sums = dict.fromkeys(sums, math.nan)
                break
            for key, fn in (("psnr", psnr), ("ssim", ssim), ("l1", l1)):
                sums[key] += float(fn(fake, b).double().sum())
            if classifier is not None:
                predicted = classifier(fake)["logits"].argmax(1)
                sums["agree"] += int((predicted == classifier(b)["logits"].argmax(1)).sum())
                sums["acc"] += int((predicted == labels[seen:seen + len(b)]).sum())
            seen += len(b)
        suffix = f"{ev.split}{count_label(n)}"
        values = {f"{k}/{suffix}": sums[k] / n for k in ("psnr", "ssim", "l1")}
        if classifier is not None:
            values[f"class_agree/domain_{suffix}"] = sums["agree"] / n
            values[f"class_acc/domain_{suffix}"] = sums["acc"] / n
        self._protocol = {
            "split": ev.split, "num_pairs": n, "generator": "evaluation generator (EMA if any), eval mode",
            "images": "mapped from [-1, 1] to [0, 1] by (x + 1) / 2 for PSNR and SSIM; data_range 1",
            "channels": f"all {dm.shape[0]} channel(s) (no Y conversion), no border crop",
            "psnr": f"per image, mean over images; MSE 0 counted as {PSNR_CAP_DB:g} dB",
            "ssim": "torchmetrics structural_similarity_index_measure defaults (gaussian 11, sigma 1.5, k1 0.01, "
                    "k2 0.03), per image, mean over images",
            "l1": "mean |G(A) - B| on [-1, 1]",
            "classifier": None if classifier is None else
            {"name": "domain", "weights_sha256": classifier.weights_sha256, **classifier.info},
            "torchmetrics": _version()}
        return values

    def protocol(self) -> dict:
        return dict(self._protocol)


def _version() -> str:
    import torchmetrics

    return torchmetrics.__version__
