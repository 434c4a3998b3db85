"""Analysis of sweeps: collect every run's result.json into a table and compare loss x regularizer cells the way
Kurach et al. (2019) and Lucic et al. (2018) do.

    python -m ganbench.analyze outputs/train [more dirs or result.json files] \\
        [--out DIR] [--budget K] [--bootstrap 1000] [--top 0.05] [--wandb PROJECT] [--rerun-best N]

writes to DIR (default: <first dir>/analysis)
    runs.csv, runs.parquet  one row per run (table.collect: status, cell, seed, score, best.*, final.*,
                            protocol.*, cfg.*, disk.*)
    settings.csv            one row per setting (hyperparameters without the seed): the median over seeds
    cells.csv, budget.csv, pairwise.csv
                            per cell: runs, diverged, E[min of K settings]; the min-score-vs-budget curves;
                            the pairwise differences of E[min of K] with bootstrap 95% CIs
    figures/*.png|pdf       top-5% box plots, min score vs budget, seeds of the best setting, pairwise heatmap
    report.md               counts by status, best per cell with its hyperparameters, pairwise table, disk
                            usage, evaluation protocol(s), links to the figures; for a study with published
                            numbers (ganbench/published/<study>.yaml), mean +- s.e. over seeds per setting
                            beside the paper's table and the protocol differences
    published_<study>.csv   that comparison as a table (analyze.published)
    rerun_best.sh           with --rerun-best N: one sweep per cell, its best setting x N seeds (Lucic et al.)
and prints one summary line. From Python: ``analyze(["outputs/train"])`` returns the Study (the frames).

Scores: a run is scored by the best value of its primary metric (lower is better; Kurach et al.; pix2pix and srgan
runs by their PSNR, higher-is-better, which the statistics negate: ``-psnr/...``, see table and stats); a diverged
run counts as tried with +inf (it never wins, and is never dropped); a setting's score is its seeds' median.
When no run has a finite score the tables and report are still written (they show why: the status counts),
no figures are drawn, and the command ends with a one-line error (exit code 2).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from ganbench.analyze import plots, published, published_plot, report, rerun, stats
from ganbench.analyze.table import CELL, PANEL, arrow_safe, cell_sort_key, collect
from ganbench.errors import ConfigError

__all__ = ["Study", "analyze", "build_study", "collect"]

DEFAULT_BUDGET = 10


@dataclass
class Study:
    """Everything the report and the figures show. ``runs`` is collect()'s table plus ``value`` (the run's
    score; +inf if diverged); ``cells`` has one row per data x model x loss x reg."""

    runs: pd.DataFrame
    settings: pd.DataFrame
    cells: pd.DataFrame
    budget: pd.DataFrame
    pairwise: pd.DataFrame
    k: int | None
    metric: str
    protocols: pd.DataFrame
    top: float = 0.05
    n_boot: int = 1000
    figures: dict[str, list[Path]] = field(default_factory=dict)
    out: Path | None = None
    reruns: list[str] = field(default_factory=list)  # rerun_best.sh's commands (--rerun-best)
    published: dict[str, pd.DataFrame] = field(default_factory=dict)  # study -> ours beside the paper's table

    @property
    def label(self) -> str:
        """How tables and figures name the scores: the metric, or ``-metric`` for a higher-is-better one."""
        return stats.oriented(self.metric)

    @property
    def n_finite(self) -> int:
        return int(np.isfinite(self.runs["value"].to_numpy(float)).sum())


def cell_scores(settings: pd.DataFrame) -> dict[tuple, np.ndarray]:
    """(data, model, loss, reg) -> the setting scores of that cell (NaN ones dropped; +inf kept)."""
    valid = settings[settings["score"].notna()]
    groups = sorted(valid.groupby(CELL), key=lambda kv: _cell_order(kv[0]))
    return {key: part["score"].to_numpy(float) for key, part in groups}


def _cell_order(key: tuple) -> tuple:
    """(data, model, loss, reg) sorted by data, model, loss, then reg with ``none`` first."""
    return (*key[:2], *cell_sort_key(*key[2:]))


def default_budget(scores: dict[tuple, np.ndarray], cap: int = DEFAULT_BUDGET) -> int | None:
    """min(cap, the fewest settings of any cell): every cell can be drawn from without replacement."""
    sizes = [x.size for x in scores.values() if x.size]
    return min(cap, *sizes) if sizes else None


def budget_table(scores: dict[tuple, np.ndarray], n_boot: int, seed: int) -> pd.DataFrame:
    """The min-score-vs-budget curves of every cell, long format, budgets 1..n settings log-spaced."""
    frames = [pd.DataFrame({**dict(zip(CELL, key)),
                            **stats.min_score_vs_budget(x, stats.budget_grid(x.size), n_boot, seed)})
              for key, x in scores.items()]
    columns = [*CELL, "budget", "mean", "median", "lo", "hi", "p_inf"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def pairwise_table(scores: dict[tuple, np.ndarray], k: int | None, n_boot: int, seed: int) -> pd.DataFrame:
    """Pairwise differences of E[min of k settings] between the cells of each (data, model) panel."""
    frames = []
    for panel in dict.fromkeys(key[:2] for key in scores):
        cells = {plots.cell_label(*key[2:]): x for key, x in scores.items() if key[:2] == panel}
        if len(cells) > 1 and k:
            frames.append(stats.pairwise_budget_differences(cells, k, n_boot, seed)
                          .assign(**dict(zip(PANEL, panel))))
    if not frames:
        return pd.DataFrame(columns=[*PANEL, "a", "b", "k", "n_a", "n_b", "em_a", "em_b", "diff", "lo", "hi",
                                     "significant"])
    out = pd.concat(frames, ignore_index=True)
    return out[[*PANEL, *[c for c in out.columns if c not in PANEL]]]


def cell_table(runs: pd.DataFrame, settings: pd.DataFrame, scores: dict[tuple, np.ndarray],
               k: int | None) -> pd.DataFrame:
    """One row per cell: runs, diverged runs, settings, the best run (value, seed, setting, the setting's seed
    median and hyperparameters), E[min of k settings] and P(all k settings diverged)."""
    hyper = stats.hyperparameter_columns(runs)
    by_setting = settings.set_index("setting")
    rows = []
    for key, part in sorted(runs.groupby(CELL), key=lambda kv: _cell_order(kv[0])):
        finite = part[np.isfinite(part["value"].to_numpy(float))]
        row = {**dict(zip(CELL, key)), "runs": len(part), "diverged": int((part["status"] == "diverged").sum()),
               "settings": int(scores[key].size) if key in scores else 0}
        if len(finite):
            best = finite.loc[finite["value"].idxmin()]
            row.update({"best": best["value"], "best_seed": best.get("seed"), "best_setting": best["setting"],
                        "setting_median": by_setting.loc[best["setting"], "score"],
                        "setting_seeds": by_setting.loc[best["setting"], "n_runs"],
                        **{c: best[c] for c in hyper}})
        if k and key in scores:
            row.update({"k": k, "expected_min": stats.expected_min(scores[key], k),
                        "p_all_diverged": stats.p_all_diverged(scores[key], k)})
        rows.append(row)
    return pd.DataFrame(rows)


def protocol_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The evaluation protocols found: primary metric, protocol id, its keys, and how many runs used it."""
    scored = runs[runs["primary"].notna()] if "primary" in runs else runs.iloc[:0]
    if scored.empty:
        return pd.DataFrame(columns=["primary", "protocol_id", "runs"])
    keys = [c for c in scored.columns if c.startswith("protocol.")]
    groups = scored.groupby(["primary", "protocol_id"], sort=True)
    out = groups[keys].first().join(groups.size().rename("runs")).reset_index()
    return out.sort_values("runs", ascending=False, kind="stable").reset_index(drop=True)


def build_study(runs: pd.DataFrame, budget: int | None = None, n_boot: int = 1000, top: float = 0.05,
                seed: int = 0) -> Study:
    """All statistics of a run table (see stats for the conventions). ``budget`` None: default_budget."""
    runs = runs.assign(value=stats.run_values(runs))
    settings = stats.setting_scores(runs)
    scores = cell_scores(settings)
    k = budget or default_budget(scores)
    primaries = Counter(runs["primary"].dropna()) if "primary" in runs else Counter()
    metric = primaries.most_common(1)[0][0] if primaries else "score"
    return Study(runs=runs, settings=settings, cells=cell_table(runs, settings, scores, k),
                 budget=budget_table(scores, n_boot, seed), pairwise=pairwise_table(scores, k, n_boot, seed),
                 k=k, metric=metric, protocols=protocol_table(runs), top=top, n_boot=n_boot,
                 published=published.compare(runs))


def draw_figures(study: Study, directory: Path) -> dict[str, list[Path]]:
    """Every figure of the study (PNG + PDF) under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    label = f"{study.label} (best checkpoint)"
    counted = study.runs[study.runs["value"].notna()]
    figures = {
        "top_fraction": plots.top_fraction_boxes(counted, label, study.top, directory / "top_fraction"),
        "budget": plots.budget_curves(study.budget, label, directory / "budget"),
        "best_seeds": plots.best_setting_seeds(counted, study.settings, label, directory / "best_seeds"),
        "pairwise": plots.pairwise_heatmap(study.pairwise, study.label, directory / "pairwise"),
    }
    for path in published_plot.comparison_figures(study.published, directory, study.runs):
        figures[path.stem] = [path]  # published_<study>.png: ours beside the paper's, differences in the caption
    return figures


def write_tables(study: Study, out: Path) -> None:
    runs = study.runs.drop(columns="value")
    runs.to_csv(out / "runs.csv", index=False)
    arrow_safe(runs).to_parquet(out / "runs.parquet", index=False)
    study.settings.to_csv(out / "settings.csv", index=False)
    study.cells.to_csv(out / "cells.csv", index=False)
    study.budget.to_csv(out / "budget.csv", index=False)
    study.pairwise.to_csv(out / "pairwise.csv", index=False)
    for name, table in study.published.items():
        table.to_csv(out / f"published_{name}.csv", index=False)


def analyze(paths: Iterable[str | Path], out: str | Path | None = None, budget: int | None = None,
            n_boot: int = 1000, top: float = 0.05, wandb_project: str | None = None, seed: int = 0,
            rerun_seeds: int | None = None) -> Study:
    """Collect, compute, draw, write (see the module docstring). ``rerun_seeds``: also write rerun_best.sh (the
    best setting of every cell with that many seeds, see rerun). Raises ConfigError for bad input; when no run
    has a finite score, after writing the tables and the report."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise ConfigError("give at least one directory of runs (or result.json file)")
    if budget is not None and budget < 1:
        raise ConfigError(f"--budget must be >= 1; got {budget}")
    if n_boot < 1:
        raise ConfigError(f"--bootstrap must be >= 1; got {n_boot}")
    if not 0 < top <= 1:
        raise ConfigError(f"--top must be in (0, 1]; got {top}")
    if rerun_seeds is not None and rerun_seeds < 1:
        raise ConfigError(f"--rerun-best must be >= 1 (seeds per best setting); got {rerun_seeds}")
    runs = collect(paths)
    first = paths[0] if paths[0].is_dir() else paths[0].parent
    out = Path(out) if out is not None else first / "analysis"
    out.mkdir(parents=True, exist_ok=True)
    study = build_study(runs, budget, n_boot, top, seed)
    study.out = out
    if study.n_finite:
        study.figures = draw_figures(study, out / "figures")
        if rerun_seeds:
            study.reruns = rerun.write_script(study.settings, study.runs, rerun_seeds, out / "rerun_best.sh",
                                              study.label)
    write_tables(study, out)
    (out / "report.md").write_text(report.render(study, out, paths))
    if not study.n_finite:
        raise ConfigError(f"no run has a finite score ({report.status_summary(study.runs)}); wrote the tables "
                          f"and {out / 'report.md'}, no figures")
    if wandb_project:
        report.log_to_wandb(study, out, wandb_project)
    return study
