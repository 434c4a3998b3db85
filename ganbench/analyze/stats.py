"""Statistics of a study, as pure functions of arrays (numpy) or of the run table.

Conventions (lower scores are better, as for FID and KID; a higher-is-better primary metric such as PSNR is
negated first, see :func:`oriented`):
  * A run is scored by its best checkpoint (Kurach et al. 2019, "A Large-Scale Study on Regularization and
    Normalization in GANs"). A diverged run counts as tried with score +inf: it never wins. Failed,
    interrupted and running runs are not results and are left out (NaN).
  * A setting (hyperparameters without the seed) is scored by the median over its seeds (Kurach et al.:
    5 seeds per setting).
  * Box plots show the top 5% of the trained models of each loss x regularizer cell (Kurach et al.).
  * "A practitioner tries k settings" (Lucic et al. 2018, "Are GANs Created Equal?"; Kurach et al.): the
    minimum score over k settings drawn at random from a cell, as a function of the budget k, with a bootstrap
    95% interval; cells are compared by the expected minimum at one budget, with a bootstrap 95% CI of the
    difference (settings resampled with replacement).
"""

from __future__ import annotations

import math
import zlib
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ganbench.analyze.table import CELL
from ganbench.primary import higher_is_better

CI = (2.5, 97.5)


# ---------------------------------------------------------------------------------------- runs and settings


def oriented(metric: str) -> str:
    """How the statistics name ``metric``'s scores: itself, or ``-metric`` when it is higher-is-better (negated so
    that every statistic and figure keeps lower = better)."""
    return f"-{metric}" if higher_is_better(metric) else metric


def run_values(df: pd.DataFrame) -> pd.Series:
    """Each run's value for the statistics: its score, negated when its primary metric is higher-is-better
    (``psnr``: lower stays better); +inf when diverged; NaN when it is not a result."""
    values = df["score"].astype(float)
    if "primary" in df:
        values = values.where(~df["primary"].map(higher_is_better).astype(bool), -values)
    return values.mask(df["status"] == "diverged", math.inf)


SEARCH_SPACE = "cfg.search.space."


def hyperparameter_columns(df: pd.DataFrame) -> list[str]:
    """The config columns the report shows for a setting: Adam's lr, beta1, beta2, n_disc (and lr_g/lr_d when
    set), every numeric regularizer parameter (cfg.reg.<name>.weight, .gamma, .clip, ...), and every other key a
    random search drew (search.space, e.g. model.discriminator.batch_norm) with the search's sample number."""
    optim = [f"cfg.optim.{k}" for k in ("lr", "lr_g", "lr_d", "beta1", "beta2", "n_disc")]
    keep = [c for c in optim if c in df.columns and df[c].notna().any()]
    reg = [c for c in df.columns if c.startswith("cfg.reg.") and not c.endswith("._target_")
           and pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])]
    searched = [f"cfg.{c[len(SEARCH_SPACE):]}" for c in df.columns if c.startswith(SEARCH_SPACE)]
    other = [c for c in dict.fromkeys(searched + ["cfg.search.sample"])
             if c in df.columns and c not in keep and c not in reg and df[c].notna().any()]
    return keep + sorted(reg) + other


def setting_scores(df: pd.DataFrame) -> pd.DataFrame:
    """One row per setting: its cell (data, model, loss, reg), ``score`` = the median over its seeds of the run
    values (Kurach et al.; a diverged seed counts as +inf, so a setting with most seeds diverged scores +inf),
    ``best_run`` = the best seed's value, ``n_runs`` (runs with a value), ``n_diverged``, ``seeds``, and the
    hyperparameter columns (constant within a setting). Settings with no value at all get a NaN score."""
    values = run_values(df)
    work = df.assign(_value=values, _diverged=(df["status"] == "diverged").astype(int))
    hyper = hyperparameter_columns(df)
    grouped = work.groupby("setting", sort=True)
    out = grouped.agg(score=("_value", "median"), best_run=("_value", "min"), n_runs=("_value", "count"),
                      n_diverged=("_diverged", "sum"))
    firsts = grouped[CELL + hyper].first()
    seeds = grouped["seed"].agg(lambda s: " ".join(str(int(v)) for v in sorted(s.dropna()))) \
        if "seed" in df.columns else None
    out = firsts.join(out)
    if seeds is not None:
        out["seeds"] = seeds
    return out.reset_index()[["setting", *CELL, "score", "best_run", "n_runs", "n_diverged",
                              *(["seeds"] if seeds is not None else []), *hyper]]


# -------------------------------------------------------------------------------------------------- top k%


def top_fraction(values: Iterable[float], frac: float = 0.05) -> np.ndarray:
    """The best (lowest) ceil(frac * n) of the values, at least one, sorted ascending (Kurach et al.'s
    "top 5% of the trained models"). NaN values are not counted; +inf (diverged) ones are."""
    x = np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=float)
    x = np.sort(x[~np.isnan(x)])
    if x.size == 0:
        return x
    k = max(1, math.ceil(frac * x.size - 1e-9))
    return x[:k]


# --------------------------------------------------------------------------------- minimum over k settings


def _clean(scores: Iterable[float]) -> np.ndarray:
    x = np.asarray(scores, dtype=float).ravel()
    return x[~np.isnan(x)]


def _quantiles(samples: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The 2.5/97.5 percentiles without interpolation (lower/higher order statistic, so +inf never meets
    inf - inf): a slightly conservative 95% interval."""
    lo = np.percentile(samples, CI[0], axis=axis, method="lower")
    hi = np.percentile(samples, CI[1], axis=axis, method="higher")
    return lo, hi


def min_score_vs_budget(scores: Iterable[float], budgets: Sequence[int], n_boot: int = 1000,
                        seed: int = 0) -> dict[str, np.ndarray]:
    """The minimum score found by a practitioner who tries k settings at random (Lucic et al. 2018), for each
    budget k: over ``n_boot`` resamples, the mean, the median, the 2.5/97.5 percentiles and ``p_inf`` (the share
    of resamples whose k settings all diverged: min = +inf; the mean is then +inf too).

    k <= n settings are drawn without replacement (the first k of a random permutation, made by arg-sorting a
    uniform matrix; a cumulative minimum gives every budget at once); k > n with replacement.
    NaN scores are dropped; +inf scores (diverged) are drawn but never win. Empty input gives NaN.
    """
    x = _clean(scores)
    budgets = np.asarray(budgets, dtype=int)
    if budgets.size and budgets.min() < 1:
        raise ValueError(f"budgets must be >= 1; got {budgets.min()}")
    n = x.size
    nan = np.full(budgets.shape, np.nan)
    if n == 0 or budgets.size == 0:
        return {"budget": budgets, "mean": nan, "median": nan, "lo": nan, "hi": nan, "p_inf": nan.copy()}
    rng = np.random.default_rng(seed)
    mins = np.empty((n_boot, budgets.size))
    small = budgets <= n
    if small.any():
        kmax = int(budgets[small].max())
        order = np.argsort(rng.random((n_boot, n)), axis=1)[:, :kmax]
        running = np.minimum.accumulate(x[order], axis=1)
        mins[:, small] = running[:, budgets[small] - 1]
    if (~small).any():
        kmax = int(budgets[~small].max())
        running = np.minimum.accumulate(x[rng.integers(0, n, (n_boot, kmax))], axis=1)
        mins[:, ~small] = running[:, budgets[~small] - 1]
    lo, hi = _quantiles(mins)
    with np.errstate(invalid="ignore"):
        mean = mins.mean(axis=0)
    median = np.percentile(mins, 50, axis=0, method="lower")
    return {"budget": budgets, "mean": mean, "median": median, "lo": lo, "hi": hi,
            "p_inf": np.isinf(mins).mean(axis=0)}


def min_weights(n: int, k: int, replace: bool = False) -> np.ndarray:
    """P(the minimum of k draws from n sorted values is the i-th smallest), i = 1..n (ties broken by position).

    Without replacement (k <= n): C(n-i, k-1) / C(n, k), computed by the recurrence
    w_1 = k/n, w_{i+1} = w_i (n-i-k+1)/(n-i). With replacement: ((n-i+1)/n)^k - ((n-i)/n)^k.
    """
    if n < 1 or k < 1:
        raise ValueError(f"need n >= 1 and k >= 1; got n={n}, k={k}")
    i = np.arange(1, n + 1, dtype=float)
    if replace:
        return ((n - i + 1) / n) ** k - ((n - i) / n) ** k
    if k > n:
        raise ValueError(f"cannot draw k={k} of n={n} without replacement")
    ratios = np.maximum(n - i[:-1] - k + 1, 0.0) / (n - i[:-1])
    return (k / n) * np.concatenate([[1.0], np.cumprod(ratios)])


def _weighted_min(sorted_x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """sum_i w_i x_(i) along the last axis, skipping zero weights (so an unreachable +inf adds nothing)."""
    return np.where(w > 0, sorted_x, 0.0) @ w if sorted_x.ndim == 1 else \
        (np.where(w > 0, sorted_x, 0.0) * w).sum(axis=-1)


def expected_min(scores: Iterable[float], k: int, replace: bool | None = None) -> float:
    """E[min of k draws] from the scores, exactly, by order statistics: sum_i P(min = x_(i)) x_(i)
    (see min_weights). Without replacement unless k > n (or ``replace`` says so). NaN dropped; NaN if empty;
    +inf when all k draws can be diverged (+inf) settings."""
    x = np.sort(_clean(scores))
    if x.size == 0:
        return math.nan
    replace = k > x.size if replace is None else replace
    return float(_weighted_min(x, min_weights(x.size, k, replace)))


def bootstrap_expected_min(scores: Iterable[float], k: int, n_boot: int = 1000,
                           rng: np.random.Generator | None = None) -> np.ndarray:
    """``n_boot`` bootstrap replicates of expected_min: the settings resampled with replacement (same size),
    each replicate's expected minimum computed exactly from its sorted values."""
    x = _clean(scores)
    rng = rng or np.random.default_rng(0)
    if x.size == 0:
        return np.full(n_boot, np.nan)
    resampled = np.sort(x[rng.integers(0, x.size, (n_boot, x.size))], axis=1)
    return _weighted_min(resampled, min_weights(x.size, k, replace=k > x.size))


def _cell_rng(seed: int, name: str) -> np.random.Generator:
    """A generator per cell, so adding a cell leaves the others' resamples as they were."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _difference(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """a - b where both infinite (every resampled setting of both cells diverged) counts as no difference."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    with np.errstate(invalid="ignore"):
        d = a - b
    return np.where(np.isinf(a) & np.isinf(b) & (a == b), 0.0, d)


def pairwise_budget_differences(cell_scores: Mapping[str, Iterable[float]], k: int, n_boot: int = 1000,
                                seed: int = 0) -> pd.DataFrame:
    """For every pair of cells (a, b), in the mapping's order: diff = E[min of k draws from a] - E[min of k
    draws from b] (exact, expected_min), and a bootstrap 95% CI (each cell's settings resampled with
    replacement, the expected minimum recomputed, the difference's 2.5/97.5 percentiles). ``significant``
    when the CI excludes 0 and both cells have at least 2 settings (one setting has no spread to resample).
    Negative diff: a is better. Cells without any setting are left out."""
    cells = {name: _clean(s) for name, s in cell_scores.items()}
    cells = {name: x for name, x in cells.items() if x.size}
    exact = {name: expected_min(x, k) for name, x in cells.items()}
    boots = {name: bootstrap_expected_min(x, k, n_boot, _cell_rng(seed, name)) for name, x in cells.items()}
    names = list(cells)
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            lo, hi = _quantiles(_difference(boots[a], boots[b]))
            n_a, n_b = cells[a].size, cells[b].size
            rows.append({"a": a, "b": b, "k": k, "n_a": n_a, "n_b": n_b, "em_a": exact[a], "em_b": exact[b],
                         "diff": float(_difference(exact[a], exact[b])), "lo": float(lo), "hi": float(hi),
                         "significant": bool((lo > 0 or hi < 0) and min(n_a, n_b) >= 2)})
    columns = ["a", "b", "k", "n_a", "n_b", "em_a", "em_b", "diff", "lo", "hi", "significant"]
    return pd.DataFrame(rows, columns=columns)


def p_all_diverged(scores: Iterable[float], k: int) -> float:
    """P(all k settings drawn without replacement diverged) = C(d, k) / C(n, k), d = settings scored +inf."""
    x = _clean(scores)
    if x.size == 0:
        return math.nan
    if k > x.size:
        return float((np.isinf(x).sum() / x.size) ** k)
    return math.comb(int(np.isinf(x).sum()), k) / math.comb(x.size, k)


def budget_grid(n: int, points: int = 20) -> np.ndarray:
    """Budgets 1..n, log-spaced (for the log-log plot of the minimum score against the budget)."""
    if n < 1:
        return np.zeros(0, dtype=int)
    return np.unique(np.geomspace(1, n, num=min(points, n)).round().astype(int))
