"""The evaluation protocol: sample, embed once, score every metric, name each score after its protocol."""

from __future__ import annotations

import math
from functools import cached_property
from pathlib import Path
from typing import Callable

import torch

from ganbench.errors import ConfigError
from ganbench.metrics.cache import digest, load_or_compute
from ganbench.metrics.extractors import EXTRACTORS, PR_EXTRACTORS
from ganbench.metrics.fid import frechet_distance
from ganbench.metrics.inception_score import inception_score
from ganbench.metrics.kid import kernel_inception_distance
from ganbench.metrics.precision_recall import knn_radii, precision_recall
from ganbench.metrics.stats import moments
from ganbench.metrics.toy import energy_distance, mode_metrics

#: bump when the content of cached reference statistics changes
REFERENCE_VERSION = 1


def count_label(n: int) -> str:
    """10000 -> '10k', 1000 -> '1k', 360 -> '360': the sample count as written in metric names."""
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def chunk_sizes(total: int, size: int) -> list[int]:
    """``total`` split into chunks of ``size`` (the last one shorter)."""
    return [min(size, total - start) for start in range(0, total, size)]


class RowBuffer:
    """Named float32 (capacity, ...) tensors preallocated on first use and filled chunk by chunk, so at most
    ``capacity`` rows are held, once (no list of chunks concatenated at the end)."""

    def __init__(self, capacity: int):
        self.capacity = int(capacity)
        self.filled = 0
        self.columns: dict[str, torch.Tensor] = {}

    def add(self, **rows: torch.Tensor) -> None:
        count = min(len(next(iter(rows.values()))), self.capacity - self.filled)
        for name, value in rows.items():
            if name not in self.columns:
                self.columns[name] = value.new_empty((self.capacity, *value.shape[1:]), dtype=torch.float32)
            self.columns[name][self.filled:self.filled + count] = value[:count]
        self.filled += count

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.columns[name][:self.filled]

    @classmethod
    def gathered(cls, local: "RowBuffer", gather: Callable[[torch.Tensor], torch.Tensor], total: int) -> "RowBuffer":
        """Every rank's rows, rank after rank, cut to ``total``: ``gather`` stacks a tensor over ranks."""
        out = cls(total)
        out.add(**{name: gather(local[name]).flatten(0, 1)[:total] for name in local.columns})
        return out

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.columns.values())


class Suite:
    """The metrics of one feature space. Subclasses define ``metrics`` (short names), ``primary_metric``,
    ``name`` (short name -> logged name), ``embed`` (a batch of samples -> named rows), ``score`` (a filled buffer
    -> values) and optionally ``prepare`` (load or compute the reference) and ``protocol`` (extra entries)."""

    metrics: tuple[str, ...] = ()
    primary_metric: str = ""
    max_batch: int = 1 << 16

    def __init__(self, ev: "Evaluator"):
        self.ev = ev

    def name(self, metric: str) -> str:
        return metric

    @property
    def names(self) -> list[str]:
        return [self.name(m) for m in self.metrics]

    @property
    def primary(self) -> str:
        return self.name(self.primary_metric)

    def prepare(self) -> None:
        pass

    def embed(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def embed_into(self, buffer: RowBuffer, x: torch.Tensor) -> None:
        for part in x.to(self.ev.device).split(self.max_batch):
            buffer.add(**self.embed(part))

    def embed_all(self, x: torch.Tensor) -> RowBuffer:
        buffer = RowBuffer(len(x))
        for chunk in x.split(self.ev.batch_size):
            self.embed_into(buffer, chunk)
        return buffer

    def score(self, fake: RowBuffer) -> dict[str, float]:
        raise NotImplementedError

    def protocol(self) -> dict:
        return {}


class FeatureSuite(Suite):
    """FID, KID, IS and precision/recall from one pass of an extractor over the fake samples. The reference
    statistics (mean, covariance, features, k-NN radii) are cached on disk under a hash of everything that
    changes them. With ``metrics.pr_extractor`` naming another network (vgg16: Kynkaanniemi et al. 2019's and
    torch-fidelity's space), precision and recall are scored in its features instead, named after it
    (``precision/vgg16_test10k``); its features and radii are cached with the reference."""

    pr_metrics = ("precision", "recall")

    metrics = ("fid", "kid_mean", "kid_std", "is_mean", "is_std", "precision", "recall")
    primary_metric = "fid"

    def __init__(self, ev: "Evaluator"):
        super().__init__(ev)
        self.extractor = None
        self.pr_net = None  # the precision/recall extractor when it is not ``extractor``
        self.reference: dict[str, torch.Tensor] = {}
        self.reference_path: Path | None = None
        self.reference_computed = False

    def name(self, metric: str) -> str:
        ev = self.ev
        kind = ev.pr_kind if metric in self.pr_metrics else ev.kind
        return f"{metric}/{kind}_{ev.split}{count_label(ev.num_real)}"

    @property
    def max_batch(self) -> int:
        return min(self.extractor.max_batch, self.pr_net.max_batch if self.pr_net else 1 << 16)

    @property
    def kid_subset_size(self) -> int:
        return min(self.ev.kid_subset_size, self.ev.num_real, self.ev.num_fake)

    def prepare(self) -> None:
        ev = self.ev
        weights = {"inception_weights": ev.inception_weights, "vgg16_weights": ev.vgg16_weights}
        self.extractor = EXTRACTORS[ev.kind](datamodule=ev.datamodule, cache_dir=ev.cache_dir, **weights).to(ev.device)
        if ev.pr_kind != ev.kind:
            self.pr_net = PR_EXTRACTORS[ev.pr_kind](datamodule=ev.datamodule, cache_dir=ev.cache_dir,
                                                    **weights).to(ev.device)
        key = self.reference_key()
        self.reference_path = self.cache_path(key)
        reference, self.reference_computed = load_or_compute(self.reference_path, key, self.compute_reference)
        self.reference = {k: v.to(ev.device) for k, v in reference.items()}

    def reference_key(self) -> dict:
        """Everything the reference statistics depend on: the data (content hash), split, size, the extractor
        (name, weights hash, resize), k of precision/recall, and the cache format version."""
        ev, ex = self.ev, self.extractor
        return {"version": REFERENCE_VERSION, "data": ev.datamodule.name, "split": ev.split, "num_real": ev.num_real,
                "fingerprint": ev.datamodule.fingerprint(ev.split, ev.num_real), "extractor": ex.name,
                "weights_sha256": ex.weights_sha256, "resize": ex.resize, "pr_k": ev.pr_k,
                **self.pr_protocol()}  # empty when P/R share the extractor: older caches stay valid

    def pr_protocol(self) -> dict:
        """The precision/recall extractor's identity, when it is not the FID extractor."""
        net = self.pr_net
        return {} if net is None else {"pr_extractor": net.name, "pr_weights_sha256": net.weights_sha256,
                                       "pr_resize": net.resize}

    def cache_path(self, key: dict) -> Path:
        """The reference file: readable names, then the hash of the whole key."""
        return self.ev.cache_dir / (f"ref-{key['data']}-{key['split']}{count_label(key['num_real'])}-"
                                    f"{key['extractor']}-{digest(key)}.pt")

    def compute_reference(self) -> dict[str, torch.Tensor]:
        ev = self.ev
        rows = self.embed_all(ev.datamodule.real_samples(ev.num_real, ev.split))
        features = rows["features"]
        mu, sigma = moments(features)
        pr = {"pr_features": rows["pr_features"].cpu()} if self.pr_net else {}
        return {"features": features.cpu(), "mu": mu.cpu(), "sigma": sigma.cpu(),
                "radii": knn_radii(rows[self.pr_column], ev.pr_k).cpu(), **pr}

    @property
    def pr_column(self) -> str:
        """The rows precision and recall are scored on."""
        return "pr_features" if self.pr_net else "features"

    def embed(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        rows = self.extractor(x)
        return {**rows, "pr_features": self.pr_net(x)["features"]} if self.pr_net else rows

    def score(self, fake: RowBuffer) -> dict[str, float]:
        ev, ref = self.ev, self.reference
        features, logits = fake["features"], fake["logits"]
        if not (torch.isfinite(features).all() and torch.isfinite(logits).all()):
            return dict.fromkeys(self.metrics, math.nan)
        mu, sigma = moments(features)
        kid = kernel_inception_distance(features, ref["features"], ev.kid_subsets, ev.kid_subset_size, ev.seed)
        is_ = inception_score(logits, ev.is_splits, ev.seed)
        pr = precision_recall(ref[self.pr_column], fake[self.pr_column], ev.pr_k, real_radii=ref["radii"])
        return dict(zip(self.metrics, (frechet_distance(mu, sigma, ref["mu"], ref["sigma"]), *kid, *is_, *pr)))

    def protocol(self) -> dict:
        ev = self.ev
        return {"weights_sha256": self.extractor.weights_sha256, "resize": self.extractor.resize,
                "kid_subsets": ev.kid_subsets, "kid_subset_size": self.kid_subset_size, "is_splits": ev.is_splits,
                "pr_k": ev.pr_k, "pr_extractor": ev.pr_kind, **self.pr_protocol(), **self.extractor.info}


class ToySuite(Suite):
    """2-D samples scored directly, no extractor; names are ``toy/<metric>``."""

    def name(self, metric: str) -> str:
        return f"toy/{metric}"

    def embed(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"samples": x.reshape(len(x), -1)}


class ModeSuite(ToySuite):
    """Mode coverage of a 2-D Gaussian mixture (the datamodule's ``modes`` and ``std``): ``toy/modes``,
    ``toy/hq_frac`` and ``toy/reverse_kl`` (the primary, lower is better)."""

    metrics = ("modes", "hq_frac", "reverse_kl")
    primary_metric = "reverse_kl"
    threshold = 3.0

    def score(self, fake: RowBuffer) -> dict[str, float]:
        dm = self.ev.datamodule
        return mode_metrics(fake["samples"], dm.modes, dm.std, self.threshold)

    def protocol(self) -> dict:
        dm = self.ev.datamodule
        return {"num_modes": len(dm.modes), "mixture_std": dm.std, "hq_threshold_std": self.threshold}


class EnergySuite(ToySuite):
    """2-D data without discrete modes (swiss roll): ``toy/energy_distance`` to the reference split."""

    metrics = ("energy_distance",)
    primary_metric = "energy_distance"

    def prepare(self) -> None:
        self.real = self.ev.datamodule.real_samples(self.ev.num_real, self.ev.split).to(self.ev.device)

    def score(self, fake: RowBuffer) -> dict[str, float]:
        return {"energy_distance": energy_distance(fake["samples"], self.real)}


def toy_suite(ev: "Evaluator") -> Suite:
    return ModeSuite(ev) if hasattr(ev.datamodule, "modes") else EnergySuite(ev)


#: extractor name -> the suite of metrics scored in its feature space
SUITES: dict[str, Callable[["Evaluator"], Suite]] = {**dict.fromkeys(EXTRACTORS, FeatureSuite), "toy": toy_suite}


class Evaluator:
    """Scores a generator against a datamodule's reference split under a fixed, named protocol.

    Built by Hydra from ``conf/metrics/<preset>.yaml`` with ``datamodule=``; see the presets for every option.
    ``evaluate(sample_fn)`` draws ``num_fake`` samples in chunks of ``batch_size``, embeds them once and returns
    every metric as a float under a name that carries the protocol (``fid/inception_test10k``); non-finite samples
    give NaN for every metric.
    """

    def __init__(self, datamodule, extractor: str = "auto", split: str = "test", num_real: int = 1000,
                 num_fake: int = 1000, every: int = 500, batch_size: int = 250, kid_subsets: int = 100,
                 kid_subset_size: int = 1000, is_splits: int = 10, pr_k: int = 3, seed: int = 2020,
                 inception_weights: str | None = None, cache_dir: str = "~/.cache/ganbench/metrics",
                 device: str = "auto", pr_extractor: str | None = None, vgg16_weights: str | None = None):
        self.datamodule = datamodule
        self.kind = datamodule.default_extractor if extractor == "auto" else extractor
        if self.kind not in SUITES:
            raise ConfigError(f"metrics.extractor must be one of auto, {', '.join(SUITES)}; got {self.kind!r}")
        self.pr_kind = self.kind if pr_extractor is None else str(pr_extractor)
        if SUITES[self.kind] is not FeatureSuite and pr_extractor is not None:
            raise ConfigError(f"metrics.pr_extractor={pr_extractor}: metrics.extractor={self.kind} scores no "
                              f"precision/recall; leave metrics.pr_extractor null")
        if pr_extractor is not None and self.pr_kind not in PR_EXTRACTORS:
            raise ConfigError(f"metrics.pr_extractor must be null (the FID extractor's features) or one of "
                              f"{', '.join(PR_EXTRACTORS)}; got {pr_extractor!r}")
        if split not in datamodule.splits:
            raise ConfigError(f"metrics.split must be one of {', '.join(datamodule.splits)} for "
                              f"data={datamodule.name}; got {split!r}")
        for option, value, least in (("num_real", num_real, 2), ("num_fake", num_fake, 2),  # a covariance needs 2
                                     ("batch_size", batch_size, 1), ("kid_subsets", kid_subsets, 1),
                                     ("kid_subset_size", kid_subset_size, 2), ("is_splits", is_splits, 1),
                                     ("pr_k", pr_k, 1)):
            if int(value) < least:
                raise ConfigError(f"metrics.{option} must be an integer >= {least}; got {value}")
        self.split = split
        self.requested_num_real = int(num_real)
        self.num_fake = int(num_fake)
        self.every = int(every)
        self.batch_size = int(batch_size)
        self.kid_subsets, self.kid_subset_size = int(kid_subsets), int(kid_subset_size)
        self.is_splits, self.pr_k, self.seed = int(is_splits), int(pr_k), int(seed)
        self.inception_weights, self.vgg16_weights = inception_weights, vgg16_weights
        self.cache_dir = Path(cache_dir).expanduser()
        self.device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
        self.suite = SUITES[self.kind](self)
        self.buffer_bytes = 0  # bytes of the fake feature buffers in the last evaluate() (for benchmarks)
        self._ready = False

    @cached_property
    def num_real(self) -> int:
        """The reference size actually used: ``num_real``, or the whole split if it is smaller."""
        return min(self.requested_num_real, len(self.datamodule.dataset(self.split)))

    @property
    def primary(self) -> str:
        """The metric that picks the best checkpoint (lower is better)."""
        return self.suite.primary

    @property
    def names(self) -> list[str]:
        return self.suite.names

    def setup(self) -> None:
        """Build the extractor and compute or load the reference statistics; idempotent."""
        if not self._ready:
            with torch.no_grad():
                self.suite.prepare()
            self._ready = True

    def evaluate(self, sample_fn: Callable[[int], torch.Tensor], rank: int = 0, world_size: int = 1,
                 gather: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict[str, float]:
        """Score ``num_fake`` samples from ``sample_fn(n)`` (values in [-1, 1]); all NaN if any is not finite.

        Data-parallel: with ``world_size`` > 1 every rank calls this with its own ``sample_fn`` and draws
        ceil(num_fake / world_size) samples; ``gather`` (e.g. Lightning's ``strategy.all_gather``: a tensor -> the
        (world_size, ...) stack of every rank's) collects the embedded rows in rank order, the first ``num_fake``
        are scored, and every rank returns the same values: those of one process scoring the same samples.
        """
        self.setup()
        local = -(-self.num_fake // world_size) if world_size > 1 else self.num_fake
        finite = True
        with torch.no_grad():
            fake = RowBuffer(local)
            for n in chunk_sizes(local, self.batch_size):
                x = sample_fn(n).detach()
                if not torch.isfinite(x).all():  # keep going: every rank must reach the gather
                    finite, x = False, torch.zeros_like(x)
                self.suite.embed_into(fake, x)
            if world_size > 1:
                finite = bool(gather(torch.tensor(finite, device=self.device)).all())
                fake = RowBuffer.gathered(fake, gather, self.num_fake)
            if not finite:
                return dict.fromkeys(self.names, math.nan)
            scores = self.suite.score(fake)
        self.buffer_bytes = fake.nbytes
        return {self.suite.name(k): float(v) for k, v in scores.items()}

    def protocol(self) -> dict:
        """Everything that defines the scores: extractor, weights hash, reference split and sizes, options."""
        self.setup()
        common = {"extractor": self.kind, "dataset": self.datamodule.name, "reference_split": self.split,
                  "num_real": self.num_real, "num_fake": self.num_fake, "seed": self.seed,
                  "weights_sha256": None, "resize": None}
        return {**common, **self.suite.protocol()}
