"""Metric formulas against closed forms and hand-made cases, the caches, the domain classifier, the Evaluator."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ganbench.data.digits import Digits
from ganbench.data.toy import Ring8, SwissRoll, ring_modes
from ganbench.errors import ConfigError
from ganbench.metrics import Evaluator
from ganbench.metrics.cache import atomic_save, load_or_compute
from ganbench.metrics.evaluator import count_label
from ganbench.metrics.extractors import DomainExtractor
from ganbench.metrics.fid import frechet_distance
from ganbench.metrics.inception_score import inception_score
from ganbench.metrics.kid import kernel_inception_distance, mmd2_unbiased, polynomial_kernel
from ganbench.metrics.precision_recall import knn_radii, precision_recall
from ganbench.metrics.stats import StreamingMoments, moments
from ganbench.metrics.toy import energy_distance, mode_metrics

CONF = Path(__file__).resolve().parents[1] / "conf" / "metrics"


# the test machines are small and shared: one torch thread avoids oversubscription (many times faster)
pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def gaussian(n: int, d: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    """n draws (seeded by ``seed``) of one correlated d-dimensional Gaussian (the same for every seed) + shift."""
    mix = torch.randn(d, d, generator=torch.Generator().manual_seed(12345), dtype=torch.float64) / d**0.5
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64) @ mix + shift


def random_spd(d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    return a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64)


# -- streaming moments -------------------------------------------------------------------------------------------

def test_streaming_moments_equal_numpy_cov_for_any_chunking():
    x = gaussian(1000, 16, seed=0, shift=1e3)  # a large mean: the naive sum-of-squares formula would cancel
    expected_cov = np.cov(x.numpy(), rowvar=False)  # ddof=1
    for chunk in (1000, 64, 7):
        mu, cov = moments(x, chunk=chunk)
        np.testing.assert_allclose(mu.numpy(), x.numpy().mean(0), rtol=1e-12)
        np.testing.assert_allclose(cov.numpy(), expected_cov, rtol=1e-9, atol=1e-12)


def test_streaming_state_does_not_grow_with_n():
    acc = StreamingMoments()
    for seed in range(5):
        acc.update(gaussian(200, 8, seed).float())
    assert acc.n == 1000 and acc.outer.shape == (8, 8) and acc.sum.shape == (8,)
    assert acc.outer.dtype == torch.float64


# -- FID ---------------------------------------------------------------------------------------------------------

def test_fid_matches_the_closed_form_with_scipy_sqrtm():
    from scipy.linalg import sqrtm

    d = 12
    s1, s2 = random_spd(d, 1), random_spd(d, 2)
    mu1 = torch.linspace(-1, 1, d, dtype=torch.float64)
    mu2 = torch.zeros(d, dtype=torch.float64)
    covmean = sqrtm(s1.numpy() @ s2.numpy()).real
    expected = float(((mu1 - mu2) ** 2).sum() + np.trace(s1.numpy() + s2.numpy() - 2 * covmean))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)


def test_fid_of_diagonal_gaussians_is_the_sum_of_squared_std_differences():
    a, b = torch.tensor([1.0, 4.0, 9.0], dtype=torch.float64), torch.tensor([4.0, 1.0, 9.0], dtype=torch.float64)
    mu1, mu2 = torch.tensor([0.0, 0.0, 3.0]), torch.tensor([1.0, 0.0, 0.0])
    # ||mu1 - mu2||^2 + sum (sqrt(a) - sqrt(b))^2 = 10 + (1 + 1 + 0)
    assert frechet_distance(mu1, torch.diag(a), mu2, torch.diag(b)) == pytest.approx(12.0, rel=1e-12)


def test_fid_of_a_set_with_itself_is_zero():
    mu, cov = moments(gaussian(500, 32, seed=3))
    assert abs(frechet_distance(mu, cov, mu, cov)) < 1e-9 * float(cov.trace())


def test_fid_is_invariant_to_sample_order_and_chunking():
    x, y = gaussian(400, 16, seed=4), gaussian(300, 16, seed=5, shift=0.5)
    reference = frechet_distance(*moments(x), *moments(y))
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    assert frechet_distance(*moments(x[perm], chunk=9), *moments(y, chunk=1)) == pytest.approx(reference, rel=1e-9)


def test_fid_with_fewer_samples_than_dimensions_matches_the_exact_low_rank_form():
    """N < d (a few dozen 2048-d features): the null eigenvalues must not add rounding noise to tr sqrt."""
    x, y = gaussian(20, 256, seed=6), gaussian(20, 256, seed=7, shift=0.1)
    a, b = x - x.mean(0), y - y.mean(0)
    _, sa, va = torch.linalg.svd(a, full_matrices=False)
    _, sb, vb = torch.linalg.svd(b, full_matrices=False)
    # tr (Sa^1/2 Sb Sa^1/2)^1/2 = nuclear norm of Sa^1/2 Sb^1/2, written in the n-dimensional bases of the two sets
    trace_sqrt = torch.linalg.svdvals(sa[:, None] * (va @ vb.T) * sb[None, :]).sum() / (len(x) - 1)
    exact = float(((x.mean(0) - y.mean(0)) ** 2).sum() + (a**2).sum() / 19 + (b**2).sum() / 19 - 2 * trace_sqrt)
    assert frechet_distance(*moments(x), *moments(y)) == pytest.approx(exact, rel=1e-9)


# -- KID ---------------------------------------------------------------------------------------------------------

def test_mmd2_unbiased_matches_the_definition_term_by_term():
    x, y = gaussian(5, 3, seed=8), gaussian(5, 3, seed=9, shift=1.0)

    def k(u, v):
        return (float(u @ v) / 3 + 1) ** 3

    m = 5
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / m**2
    assert mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)
    assert polynomial_kernel(x, y).dtype == torch.float64


def test_kid_is_unbiased_for_one_distribution_and_positive_for_two():
    # many independent sample pairs of one distribution: the estimates average to 0 within their standard error
    estimates = np.array([mmd2_unbiased(gaussian(40, 8, seed=2 * s), gaussian(40, 8, seed=2 * s + 1))
                          for s in range(100)])
    assert abs(estimates.mean()) < 3 * estimates.std() / np.sqrt(len(estimates))
    same_mean, same_std = kernel_inception_distance(gaussian(600, 8, 10), gaussian(600, 8, 11), 50, 200, seed=0)
    assert abs(same_mean) < same_std
    diff_mean, diff_std = kernel_inception_distance(gaussian(600, 8, 10), gaussian(600, 8, 11, shift=1.0), 50, 200)
    assert diff_mean > 10 * diff_std > 0


def test_kid_is_seeded_and_caps_the_subset_size():
    x, y = gaussian(30, 4, seed=12), gaussian(50, 4, seed=13, shift=0.3)
    assert kernel_inception_distance(x, y, 5, 1000, seed=1) == kernel_inception_distance(x, y, 5, 1000, seed=1)
    mean, std = kernel_inception_distance(x, y, 5, 1000, seed=1)  # subsets of min(1000, 30, 50) = 30 rows
    assert math.isfinite(mean) and std > 0


# -- IS ----------------------------------------------------------------------------------------------------------

def test_inception_score_of_uniform_predictions_is_one():
    mean, std = inception_score(torch.zeros(100, 10), splits=10)
    assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)


def test_inception_score_of_confident_balanced_classes_is_the_class_count():
    k = 7
    logits = 100.0 * torch.eye(k).repeat(20, 1)  # 140 samples, 20 per class, each one certain
    assert inception_score(logits, splits=1)[0] == pytest.approx(k, rel=1e-9)
    # in order, every split of 14 consecutive rows holds each class twice
    mean, std = inception_score(logits, splits=10, shuffle_seed=None)
    assert mean == pytest.approx(k, rel=1e-9) and std == pytest.approx(0.0, abs=1e-9)


# -- precision / recall ------------------------------------------------------------------------------------------

def mixture(n_per_mode: int, centers: torch.Tensor, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.cat([c + 0.05 * torch.randn(n_per_mode, centers.shape[1], generator=g) for c in centers])


def test_knn_radii_are_the_kth_nearest_other_point():
    x = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    assert torch.allclose(knn_radii(x, k=1), torch.tensor([1.0, 1.0, 2.0, 4.0]))
    assert torch.allclose(knn_radii(x, k=3, chunk=1), torch.tensor([7.0, 6.0, 4.0, 7.0]))


def test_precision_recall_of_identical_sets_is_one():
    x = mixture(50, 3 * torch.eye(4), seed=0)
    assert precision_recall(x, x.clone(), k=3) == (1.0, 1.0)


def test_recall_drops_when_generated_samples_drop_modes():
    centers = 3 * torch.eye(4)
    real = mixture(100, centers, seed=1)
    dropped = mixture(200, centers[:2], seed=2)  # two of four modes
    precision, recall = precision_recall(real, dropped, k=3, chunk=17)
    assert precision > 0.9 and recall == pytest.approx(0.5, abs=0.05)
    assert (precision, recall) == precision_recall(real, dropped, k=3, chunk=4096)


# -- toy metrics -------------------------------------------------------------------------------------------------

RING = ring_modes(8, 2.0)
STD = 0.02


def test_toy_metrics_with_all_modes():
    samples = RING.repeat(10, 1) + STD  # 10 per mode, each 1.4 std off centre
    assert mode_metrics(samples, RING, STD) == {"modes": 8.0, "hq_frac": 1.0, "reverse_kl": 0.0}


def test_toy_metrics_with_half_the_modes():
    out = mode_metrics(RING[:4].repeat(5, 1), RING, STD)
    assert out["modes"] == 4 and out["hq_frac"] == 1.0
    assert out["reverse_kl"] == pytest.approx(math.log(2), rel=1e-12)  # uniform on 4 of 8 modes: log(8/4)


def test_toy_metrics_with_off_mode_points():
    near = RING[:1] + torch.tensor([[2.9 * STD, 0.0]])  # inside the 3-std ball
    far = RING[:1] + torch.tensor([[3.1 * STD, 0.0]])  # just outside
    samples = torch.cat([RING, near, far, torch.zeros(6, 2)])  # 8 on-mode, 1 near, 1 far, 6 at the centre
    out = mode_metrics(samples, RING, STD)
    assert out["modes"] == 8 and out["hq_frac"] == pytest.approx(9 / 16)
    p = [2 / 9] + [1 / 9] * 7  # mode 0 has two HQ samples
    assert out["reverse_kl"] == pytest.approx(sum(q * math.log(8 * q) for q in p), rel=1e-12)


def test_toy_metrics_without_any_hq_sample_score_the_worst_reverse_kl():
    out = mode_metrics(torch.zeros(5, 2), RING, STD)
    assert out == {"modes": 0.0, "hq_frac": 0.0, "reverse_kl": pytest.approx(math.log(8))}


def test_energy_distance():
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    assert energy_distance(x, x.flip(0)) == 0.0
    # 2 * mean|x - y| - mean|x - x'| - mean|y - y'| = 2 * 3 - 0.5 - 0.5
    assert energy_distance(x, x + torch.tensor([3.0, 0.0])) == pytest.approx(5.0)


# -- caches ------------------------------------------------------------------------------------------------------

def test_load_or_compute_recomputes_a_truncated_or_foreign_file(tmp_path):
    path = tmp_path / "item.pt"
    calls = []

    def compute():
        calls.append(1)
        return {"x": torch.arange(3.0)}

    payload, computed = load_or_compute(path, {"k": 1}, compute)
    assert computed and torch.equal(payload["x"], torch.arange(3.0))
    assert load_or_compute(path, {"k": 1}, compute)[1] is False
    path.write_bytes(path.read_bytes()[:40])  # truncated
    assert load_or_compute(path, {"k": 1}, compute)[1] is True
    assert load_or_compute(path, {"k": 2}, compute)[1] is True  # another key
    assert len(calls) == 3 and [p.name for p in tmp_path.iterdir()] == ["item.pt"]  # no temp files left


def test_atomic_save_leaves_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "item.pt"
    atomic_save({"v": 1}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        atomic_save({"v": Unpicklable()}, path)
    assert torch.load(path) == {"v": 1} and [p.name for p in tmp_path.iterdir()] == ["item.pt"]


def _write_concurrently(path: str, value: float) -> None:
    def compute():
        return {"x": torch.full((256, 256), value)}  # 256 KiB: a write takes long enough to overlap

    for _ in range(20):
        Path(path).unlink(missing_ok=True)
        load_or_compute(path, {"k": 1}, compute)


def test_jobs_writing_the_same_cache_key_at_once_never_leave_a_corrupt_file(tmp_path):
    """Two jobs of a sweep computing the same reference statistics at the same time: every read of the file, at any
    moment, is a whole payload of one writer or no file at all."""
    import multiprocessing as mp

    path = tmp_path / "ref.pt"
    ctx = mp.get_context("fork")
    writers = [ctx.Process(target=_write_concurrently, args=(str(path), float(v))) for v in (1, 2, 3)]
    for w in writers:
        w.start()
    reads = 0
    while any(w.is_alive() for w in writers):
        try:
            stored = torch.load(path, weights_only=True)
        except FileNotFoundError:
            continue
        x = stored["payload"]["x"]
        assert x.shape == (256, 256) and x.min() == x.max() and float(x[0, 0]) in (1.0, 2.0, 3.0)
        reads += 1
    assert all(w.exitcode == 0 for w in writers) and reads > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ref.pt"]  # no temporary file left behind


# -- domain classifier and the Evaluator on digits ---------------------------------------------------------------

@pytest.fixture(scope="module")
def digits():
    return Digits()


@pytest.fixture(scope="module")
def domain(digits, tmp_path_factory):
    """One trained domain classifier for the module (trained on first construction)."""
    cache = tmp_path_factory.mktemp("metrics-cache")
    return cache, DomainExtractor(digits, cache)


def test_domain_classifier_is_accurate_and_cached(digits, domain):
    cache, first = domain
    assert first.trained_now and first.info["domain_accuracy"] >= 0.97
    again = DomainExtractor(digits, cache)
    assert not again.trained_now  # loaded, not retrained
    assert again.weights_sha256 == first.weights_sha256
    assert again.info == first.info


def test_evaluator_scores_real_digits_better_than_noise(digits, domain):
    cache, _ = domain
    ev = Evaluator(digits, num_fake=300, batch_size=128, kid_subsets=20, cache_dir=str(cache), device="cpu")
    assert ev.primary == "fid/domain_test360"  # auto -> domain; 1000 capped at the 360 test images
    real = digits.real_samples(300, "train")
    chunks = iter(real.split(128))
    good = ev.evaluate(lambda n: next(chunks)[:n])
    noise = ev.evaluate(lambda n: torch.rand(n, 1, 16, 16) * 2 - 1)
    assert set(good) == set(noise) == {f"{m}/domain_test360" for m in
                                        ("fid", "kid_mean", "kid_std", "is_mean", "is_std", "precision", "recall")}
    assert good["fid/domain_test360"] < noise["fid/domain_test360"] / 10
    assert good["recall/domain_test360"] > noise["recall/domain_test360"]
    assert good["is_mean/domain_test360"] > 5  # confident and balanced over 10 classes
    assert all(isinstance(v, float) and math.isfinite(v) for v in good.values())
    protocol = ev.protocol()
    assert protocol | {"weights_sha256": None, "domain_accuracy": None} == {
        "extractor": "domain", "dataset": "digits", "reference_split": "test", "num_real": 360, "num_fake": 300,
        "seed": 2020, "weights_sha256": None, "resize": None, "kid_subsets": 20, "kid_subset_size": 300,
        "is_splits": 10, "pr_k": 3, "pr_extractor": "domain", "domain_accuracy": None}


def test_non_finite_samples_give_nan_scores(digits, domain):
    cache, _ = domain
    ev = Evaluator(digits, num_fake=64, kid_subsets=2, cache_dir=str(cache), device="cpu")
    for bad in (float("nan"), float("inf")):
        scores = ev.evaluate(lambda n: torch.full((n, 1, 16, 16), bad))
        assert set(scores) == set(ev.names) and all(math.isnan(v) for v in scores.values())


def test_reference_cache_is_reused_and_a_truncated_file_recomputed(digits, domain):
    cache, _ = domain
    options = dict(num_real=100, num_fake=50, kid_subsets=2, cache_dir=str(cache), device="cpu")
    first = Evaluator(digits, **options)
    first.setup()
    path = first.suite.reference_path
    again = Evaluator(digits, **options)
    again.setup()
    assert not again.suite.reference_computed and again.suite.reference_path == path
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    third = Evaluator(digits, **options)
    third.setup()
    assert third.suite.reference_computed
    assert torch.equal(third.suite.reference["sigma"], first.suite.reference["sigma"])


def test_reference_key_changes_with_split_size_and_extractor(digits, domain):
    cache, extractor = domain

    def key(extractor_identity=extractor, **options):
        ev = Evaluator(digits, cache_dir=str(cache), **options)
        ev.suite.extractor = extractor_identity
        return ev.suite.cache_path(ev.suite.reference_key())

    base = key(split="test", num_real=200)
    inception = SimpleNamespace(name="inception", weights_sha256="0" * 16, resize="tf1-bilinear-299")
    variants = [key(split="train", num_real=200), key(split="test", num_real=100),
                key(inception, split="test", num_real=200), key(split="test", num_real=200, pr_k=5)]
    assert base == key(split="test", num_real=200)
    assert len({base, *variants}) == 5
    assert base.name.startswith("ref-digits-test200-domain-")


def test_count_labels():
    assert [count_label(n) for n in (360, 1000, 10_000, 50_000, 1500)] == ["360", "1k", "10k", "50k", "1500"]


# -- toy Evaluator -----------------------------------------------------------------------------------------------

def test_evaluator_on_ring8(tmp_path):
    ring = Ring8()
    ev = Evaluator(ring, num_fake=400, batch_size=150, cache_dir=str(tmp_path))
    assert ev.primary == "toy/reverse_kl"
    real = ev.evaluate(lambda n: ring.real_samples(n, "train"))
    assert real["toy/modes"] == 8 and real["toy/hq_frac"] > 0.98 and real["toy/reverse_kl"] < 0.05
    collapsed = ev.evaluate(lambda n: ring.modes[:1].expand(n, 2))
    assert collapsed == {"toy/modes": 1.0, "toy/hq_frac": 1.0, "toy/reverse_kl": pytest.approx(math.log(8))}
    assert ev.protocol()["extractor"] == "toy" and ev.protocol()["num_modes"] == 8


def test_evaluator_on_swissroll_uses_the_energy_distance(tmp_path):
    roll = SwissRoll(n_train=2000, n_test=500)
    ev = Evaluator(roll, num_fake=500, cache_dir=str(tmp_path))
    assert ev.primary == "toy/energy_distance" and ev.num_real == 500
    close = ev.evaluate(lambda n: roll.real_samples(n, "train"))["toy/energy_distance"]
    far = ev.evaluate(lambda n: torch.randn(n, 2) + 3)["toy/energy_distance"]
    assert 0 <= close < far / 10


# -- configuration -----------------------------------------------------------------------------------------------

def test_bad_options_are_config_errors(digits):
    with pytest.raises(ConfigError, match="metrics.extractor"):
        Evaluator(digits, extractor="vgg")
    with pytest.raises(ConfigError, match="metrics.num_fake must be an integer >= 2"):
        Evaluator(digits, num_fake=1)
    with pytest.raises(ConfigError, match="metrics.split"):
        Evaluator(digits, split="validation")
    with pytest.raises(ConfigError, match="needs labels"):
        DomainExtractor(SwissRoll(n_train=10, n_test=10), "unused")


@pytest.mark.parametrize("preset", ["quick", "kurach", "lucic", "full"])
def test_presets_instantiate(preset, digits, tmp_path, monkeypatch):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(CONF / f"{preset}.yaml")
    monkeypatch.delenv("GANBENCH_CACHE", raising=False)
    assert cfg.cache_dir == str(Path("~/.cache/ganbench/metrics"))
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path))
    ev = instantiate(cfg, datamodule=digits)
    assert isinstance(ev, Evaluator) and ev.cache_dir == tmp_path / "metrics" and ev.kind == "domain"
    assert cfg.extractor == "auto" and cfg.inception_weights is None
    expected = {"quick": ("test", 360, 1000, 500), "kurach": ("test", 360, 10_000, 10_000),
                "lucic": ("test", 360, 10_000, 0), "full": ("train", 1437, 50_000, 0)}[preset]
    assert (ev.split, ev.num_real, ev.num_fake, ev.every) == expected
