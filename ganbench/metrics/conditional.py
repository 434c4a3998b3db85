"""Class-conditional metrics (``family=conditional``): per-class FID and KID in the evaluator's feature space, and
the accuracy of a classifier on samples generated for a requested class.

- Intra-FID (SNP: pfnet-research/sngan_projection@e84b1a5 ``evaluations/calc_intra_FID.py``; StudioGAN:
  POSTECH-CVLab/PyTorch-StudioGAN@947b35e ``src/worker.py::calculate_intra_class_fid``): for each class c, the FID
  between the class-c subset of the evaluator's reference (the first ``metrics.num_real`` samples of
  ``metrics.split``, embedded once by the evaluator) and samples of G(., c), embedded by the same extractor. By
  default class c gets as many fakes as the reference has images of c (StudioGAN's rule); ``num_fake`` fixes the
  count per class. ``intra_fid`` is the mean over the classes that have >= 2 reference images (SNP and StudioGAN
  report that mean); ``fid_class<c>`` each class's value. KID likewise (``intra_kid``, ``kid_class<c>``; the mean of
  ``kid_subsets`` subsets of min(metrics.kid_subset_size, reals of c, fakes of c) rows). Names follow the
  evaluator's (``intra_fid/domain_test360``, ``toy/intra_fid`` for 2-D data, where the samples are the features).
- ``class_acc`` (pooled over all per-class samples) and ``class_acc_min`` (the worst class): the fraction of samples
  asked for class c that a classifier assigns to c. The classifier: ``family.classifier=PATH`` if given (a
  TorchScript file or a torch.save'd nn.Module mapping G's images, in [-1, 1], to (N, K) logits, or to a tuple
  ending with them); else for 2-D mixtures the nearest mode within 3 std (the toy metrics' HQ rule); else the
  data's domain classifier (digits, MNIST, Fashion-MNIST: ``ganbench.metrics.extractors``, trained once and
  cached; its logits come from the evaluator's pass when it is the evaluator's extractor); otherwise skipped with a
  log line. Names: ``toy/class_acc``, ``class_acc/domain``, ``class_acc/classifier``.
"""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from ganbench.errors import ConfigError
from ganbench.metrics.cache import file_sha256
from ganbench.metrics.evaluator import RowBuffer, chunk_sizes
from ganbench.metrics.fid import frechet_distance
from ganbench.metrics.kid import kernel_inception_distance
from ganbench.metrics.stats import moments

log = logging.getLogger("ganbench")
TOY_THRESHOLD_STD = 3.0  # the toy metrics' HQ radius (ModeSuite.threshold)


def split_labels(datamodule, split: str) -> Tensor:
    """Every label of a split in dataset order (int64): a TensorDataset's second tensor, a dataset's ``targets``,
    or (slow, any other dataset) one item at a time."""
    ds = datamodule.dataset(split)
    if isinstance(ds, TensorDataset):
        return ds.tensors[1].long()
    targets = getattr(ds, "targets", None)
    if targets is not None:
        return torch.as_tensor(targets).long()
    return torch.tensor([int(ds[i][1]) for i in range(len(ds))], dtype=torch.long)


def class_frequencies(labels: Tensor, num_classes: int) -> Tensor:
    """The empirical class distribution of ``labels`` (float64, sums to 1)."""
    counts = torch.bincount(labels.long(), minlength=num_classes).double()
    return counts / counts.sum()


def nearest_mode(samples: Tensor, modes: Tensor, std: float, threshold: float = TOY_THRESHOLD_STD) -> Tensor:
    """The index of each 2-D sample's nearest mode, or -1 when it lies farther than ``threshold`` std from it."""
    dist, nearest = torch.cdist(samples.double(), modes.to(samples.device, torch.float64)).min(dim=1)
    return torch.where(dist <= threshold * std, nearest, torch.full_like(nearest, -1))


def class_scores(fake: Tensor, real: Tensor, kid_subsets: int, kid_subset_size: int, seed: int) -> tuple[float, float]:
    """(FID, KID mean) of one class's fake rows against its reference rows; NaN with fewer than 2 of either."""
    if len(fake) < 2 or len(real) < 2:
        return math.nan, math.nan
    fid = frechet_distance(*moments(fake), *moments(real))
    kid = kernel_inception_distance(fake, real, kid_subsets, min(kid_subset_size, len(fake), len(real)), seed)[0]
    return fid, kid


def finite_mean(values: list[float]) -> float:
    kept = [v for v in values if math.isfinite(v)]
    return sum(kept) / len(kept) if kept else math.nan


# -- classifiers: (images, the evaluator's rows for them) -> predicted class per image (-1: none) -----------------
class Predictor:
    metric = "class_acc/classifier"

    def __call__(self, x: Tensor, rows: dict[str, Tensor]) -> Tensor:
        raise NotImplementedError

    def protocol(self) -> dict:
        return {}


class NearestMode(Predictor):
    metric = "toy/class_acc"

    def __init__(self, modes: Tensor, std: float):
        self.modes, self.std = modes, float(std)

    def __call__(self, x, rows):
        return nearest_mode(x.reshape(len(x), -1), self.modes, self.std)

    def protocol(self):
        return {"classifier": f"nearest mode within {TOY_THRESHOLD_STD:g} std", "mixture_std": self.std}


class DomainClassifier(Predictor):
    """The domain CNN's argmax: from the evaluator's rows when it is the evaluator's extractor, else its own pass."""

    metric = "class_acc/domain"

    def __init__(self, extractor, from_rows: bool):
        self.extractor, self.from_rows = extractor, from_rows

    def __call__(self, x, rows):
        return (rows if self.from_rows else self.extractor(x))["logits"].argmax(1)

    def protocol(self):
        return {"classifier": "domain", "weights_sha256": self.extractor.weights_sha256, **self.extractor.info}


class ModuleClassifier(Predictor):
    """A user's nn.Module (TorchScript or torch.save'd) from images in [-1, 1] to logits."""

    metric = "class_acc/classifier"

    def __init__(self, path: str | Path, num_classes: int):
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise ConfigError(f"family.classifier={path}: no such file (a TorchScript or torch.save'd nn.Module "
                              f"mapping images to logits; null to skip the class accuracy)")
        try:
            with warnings.catch_warnings():  # torch 2.10+ marks TorchScript deprecated; it still loads
                warnings.simplefilter("ignore", FutureWarning)
                net = torch.jit.load(str(self.path), map_location="cpu")
        except Exception:  # not TorchScript: a pickled module
            try:
                net = torch.load(self.path, map_location="cpu", weights_only=False)
            except Exception as err:
                raise ConfigError(f"family.classifier={path}: unreadable ({type(err).__name__}); it must be a "
                                  f"TorchScript file or a torch.save'd nn.Module") from None
        if not isinstance(net, nn.Module):
            raise ConfigError(f"family.classifier={path} holds a {type(net).__name__}, not an nn.Module")
        self.net = net.eval()  # called under no_grad
        self.num_classes = int(num_classes)
        self.sha256 = file_sha256(self.path)

    @torch.no_grad()
    def __call__(self, x, rows):
        out = self.net.to(x.device)(x)
        logits = out[-1] if isinstance(out, (tuple, list)) else out
        if logits.dim() != 2 or logits.shape[1] != self.num_classes:
            raise ConfigError(f"family.classifier={self.path} returns outputs of shape {tuple(logits.shape)}; "
                              f"expected (N, {self.num_classes}) logits")
        return logits.argmax(1)

    def protocol(self):
        return {"classifier": str(self.path), "sha256": self.sha256}


def default_predictor(ev) -> Predictor | None:
    """Nearest mode for 2-D mixtures, the domain classifier for data scored by one; None otherwise."""
    from ganbench.metrics.extractors import build_domain

    dm = ev.datamodule
    if hasattr(dm, "modes") and len(dm.shape) == 1:
        return NearestMode(dm.modes, dm.std)
    if ev.kind == "domain":
        return DomainClassifier(ev.suite.extractor, from_rows=True)
    if dm.default_extractor == "domain":
        return DomainClassifier(build_domain(datamodule=dm, cache_dir=ev.cache_dir).to(ev.device), from_rows=False)
    return None


class ClassMetrics:
    """Per-class FID/KID and class accuracy of a class-conditional generator (see the module docstring).

    ``__call__(evaluator, sample_class)`` with ``sample_class(c, n)`` -> n samples of class c returns the values;
    ``protocol()`` how the last ones were computed.
    """

    def __init__(self, num_classes: int, num_fake: int | None = None, kid_subsets: int = 10,
                 classifier: str | None = None):
        self.num_classes = int(num_classes)
        if num_fake is not None and int(num_fake) < 2:
            raise ConfigError(f"family.class_num_fake must be an integer >= 2 (fakes per class) or null (as many as "
                              f"the reference has of that class); got {num_fake}")
        if int(kid_subsets) < 1:
            raise ConfigError(f"family.class_kid_subsets must be an integer >= 1; got {kid_subsets}")
        self.num_fake = None if num_fake is None else int(num_fake)
        self.kid_subsets = int(kid_subsets)
        self.user = ModuleClassifier(classifier, num_classes) if classifier else None
        self._predictor: tuple[int, Predictor | None] | None = None
        self._reference: tuple[int, Tensor, Tensor] | None = None
        self._protocol: dict = {}

    def predictor(self, ev) -> Predictor | None:
        if self._predictor is None or self._predictor[0] != id(ev):
            predictor = self.user or default_predictor(ev)
            if predictor is None:
                log.info("class accuracy skipped: data=%s has no built-in classifier in metrics.extractor=%s; pass "
                         "family.classifier=PATH (an nn.Module from images to logits)", ev.datamodule.name, ev.kind)
            self._predictor = (id(ev), predictor)
        return self._predictor[1]

    def reference(self, ev) -> tuple[Tensor, Tensor]:
        """(rows, labels) of the evaluator's reference split: its cached features, or for 2-D data the samples."""
        if self._reference is None or self._reference[0] != id(ev):
            ref = getattr(ev.suite, "reference", {}).get("features")
            if ref is None:
                real = ev.datamodule.real_samples(ev.num_real, ev.split)
                ref = ev.suite.embed_all(real)["samples"]
            labels = split_labels(ev.datamodule, ev.split)[:ev.num_real].to(ref.device)
            self._reference = (id(ev), ref, labels)
        return self._reference[1], self._reference[2]

    def class_rows(self, ev, sample_class: Callable[[int, int], Tensor], c: int, n: int,
                   predictor: Predictor | None) -> tuple[Tensor | None, int]:
        """(embedded rows of n samples of class c, how many the predictor assigns to c); rows None if any sample is
        not finite."""
        suite, buffer, correct = ev.suite, RowBuffer(n), 0
        for size in chunk_sizes(n, ev.batch_size):
            x = sample_class(c, size).detach().to(ev.device)
            if not torch.isfinite(x).all():
                return None, 0
            for part in x.split(suite.max_batch):
                rows = suite.embed(part)
                buffer.add(**rows)
                if predictor is not None:
                    correct += int((predictor(part, rows) == c).sum())
        return buffer["features" if "features" in buffer.columns else "samples"], correct

    @torch.no_grad()
    def __call__(self, ev, sample_class: Callable[[int, int], Tensor]) -> dict[str, float]:
        ev.setup()
        ref, labels = self.reference(ev)
        predictor = self.predictor(ev)
        fids, kids, accs, n_real, n_fake, finite = [], [], [], [], [], True
        for c in range(self.num_classes):
            real = ref[labels == c]
            n = self.num_fake or len(real)
            n_real.append(len(real))
            n_fake.append(n)
            fake, correct = self.class_rows(ev, sample_class, c, n, predictor) if n else (ref[:0], 0)
            finite = finite and fake is not None
            fid, kid = class_scores(fake, real, self.kid_subsets, ev.kid_subset_size, ev.seed) if finite \
                else (math.nan, math.nan)
            fids.append(fid)
            kids.append(kid)
            accs.append(correct / n if n else math.nan)
        name = ev.suite.name
        values = {name("intra_fid"): finite_mean(fids), name("intra_kid"): finite_mean(kids)}
        for c, (fid, kid) in enumerate(zip(fids, kids)):
            values[name(f"fid_class{c}")] = fid
            values[name(f"kid_class{c}")] = kid
        if predictor is not None:
            counted = [(a, m) for a, m in zip(accs, n_fake) if m]
            pooled = sum(a * m for a, m in counted) / sum(m for _, m in counted) if counted else math.nan
            values[predictor.metric] = pooled
            values[predictor.metric.replace("class_acc", "class_acc_min")] = min((a for a, _ in counted),
                                                                                 default=math.nan)
        if not finite:  # a non-finite sample: every value NaN, as the evaluator does
            values = dict.fromkeys(values, math.nan)
        self._protocol = {
            "num_classes": self.num_classes, "reference_split": ev.split, "num_real": ev.num_real,
            "reference": "class-c subset of the evaluator's reference samples",
            "num_real_per_class": n_real, "num_fake_per_class": n_fake,
            "num_fake_rule": "as many as the reference's class" if self.num_fake is None else "fixed",
            "kid_subsets": self.kid_subsets, "kid_subset_size": f"min({ev.kid_subset_size}, reals, fakes)",
            "intra_mean_over": "classes with >= 2 reference samples",
            "accuracy": predictor.protocol() if predictor is not None else None}
        return values

    def protocol(self) -> dict:
        return dict(self._protocol)
