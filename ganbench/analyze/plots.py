"""The study's figures, each written as PNG and PDF. Built on matplotlib.figure.Figure, never pyplot: savefig
renders with the Agg canvas (PDF with its own), whatever backend a session has chosen; no display, no global
figure state, nothing to close. One panel per (data, model) pair; lower scores are better.

  top_fraction   Kurach et al. (2019): box plots of the top 5% of the trained models per loss x reg cell
  budget         Lucic et al. (2018): minimum score against the number of settings tried, mean and 95% band,
                 log-log axes
  best_seeds     Lucic et al.: the spread over seeds of each cell's best setting (box + points)
  pairwise       E[min of k settings] of the row cell minus the column cell; dots mark differences whose
                 bootstrap 95% CI excludes 0
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from ganbench.analyze.stats import top_fraction
from ganbench.analyze.table import PANEL, cell_sort_key

FORMATS = ("png", "pdf")
DIVERGED_COLOR = "#c0392b"


def cell_label(loss: str, reg: str) -> str:
    return f"{loss}/{reg}"


def panel_label(data: str, model: str) -> str:
    return f"{model} on {data}"


def cells_of(df: pd.DataFrame) -> list[tuple[str, str]]:
    """The (loss, reg) cells of a panel, sorted by loss then reg with ``none`` (the baseline) first."""
    pairs = df[["loss", "reg"]].drop_duplicates().itertuples(index=False, name=None)
    return sorted(pairs, key=lambda lr: cell_sort_key(*lr))


def panels_of(df: pd.DataFrame) -> list[tuple[tuple[str, str], pd.DataFrame]]:
    return [(tuple(key), part) for key, part in df.groupby(PANEL, sort=True)]


def save(fig: Figure, stem: Path) -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf``; return their paths."""
    paths = [stem.with_suffix(f".{fmt}") for fmt in FORMATS]
    for path in paths:
        fig.savefig(path, dpi=110)
    return paths


def _loss_colors(losses) -> dict[str, tuple]:
    cmap = matplotlib.colormaps["tab10"]
    return {loss: cmap(i % 10) for i, loss in enumerate(sorted(set(losses)))}


def _panel_figure(n_panels: int, width: float, height: float = 3.6) -> tuple[Figure, list]:
    fig = Figure(figsize=(width, height * n_panels), layout="constrained")
    axes = fig.subplots(n_panels, 1, squeeze=False)[:, 0]
    return fig, list(axes)


def _label_cells(ax, cells, metric: str, title: str) -> None:
    """x ticks named by loss x reg cell, the metric on y, a title, horizontal grid lines."""
    ax.set_xticks(range(len(cells)), [cell_label(*c) for c in cells], rotation=60, ha="right", fontsize=8)
    ax.set_ylabel(metric)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)


def _mark_diverged(ax, x: float, count: int) -> None:
    """'<count> div.' at the top of the axes: runs that diverged (+inf) have no place on the y-axis."""
    ax.annotate(f"{count} div.", (x, 0.98), xycoords=("data", "axes fraction"), color=DIVERGED_COLOR,
                ha="center", va="top", fontsize=7)


def top_fraction_boxes(runs: pd.DataFrame, metric: str, frac: float, stem: Path) -> list[Path]:
    """Box plots of the top ``frac`` of the trained models (runs, each seed a model) per loss x reg cell
    (Kurach et al. 2019). ``runs`` needs data, model, loss, reg and ``value`` (+inf for a diverged run).
    Diverged runs in the top fraction are counted above the box; the box holds the finite ones."""
    panels = panels_of(runs)
    width = max(6.0, 0.42 * max(len(cells_of(p)) for _, p in panels) + 2)
    fig, axes = _panel_figure(len(panels), width)
    for ax, ((data, model), part) in zip(axes, panels):
        cells = cells_of(part)
        colors = _loss_colors(part["loss"])
        groups = dict(iter(part.groupby(["loss", "reg"])["value"]))
        tops = [top_fraction(groups[c].to_numpy(), frac) for c in cells]
        finite = [t[np.isfinite(t)] for t in tops]
        boxes = ax.boxplot([f if f.size else [np.nan] for f in finite], positions=range(len(cells)),
                           widths=0.6, patch_artist=True, showfliers=True)
        for patch, (loss, _reg) in zip(boxes["boxes"], cells):
            patch.set_facecolor(colors[loss])
            patch.set_alpha(0.6)
        for x, (t, f) in enumerate(zip(tops, finite)):
            if t.size > f.size:
                _mark_diverged(ax, x, t.size - f.size)
        _label_cells(ax, cells, metric, f"{panel_label(data, model)}: top {frac:.0%} of the trained models per cell")
    return save(fig, stem)


def _finite_or_nan(x) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return np.where(np.isfinite(x), x, np.nan)


def _plain_ticks(ax) -> None:
    """Tick labels as plain numbers (30, 40, 100) instead of mathtext powers on log axes."""
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        axis.set_minor_formatter(FuncFormatter(lambda v, _pos: f"{v:g}" if f"{v:g}"[0] in "2345" else ""))


def budget_curves(budget: pd.DataFrame, metric: str, stem: Path) -> list[Path]:
    """The minimum score against the number of settings tried (Lucic et al. 2018), log-log axes: one row of
    axes per (data, model), one column per loss, a line per regularizer. Solid: the bootstrap mean; dotted:
    the median where the mean is +inf (some draws of k settings all diverged); band: the 2.5-97.5 percentiles
    (reaching the top of the axes where the upper end is +inf). ``budget`` is long: data, model, loss, reg,
    budget, mean, median, lo, hi."""
    panels = panels_of(budget)
    losses = sorted(budget["loss"].unique())
    regs = sorted(budget["reg"].unique(), key=lambda r: (r != "none", r))
    cmap = matplotlib.colormaps["tab10" if len(regs) <= 10 else "tab20"]
    color = {r: cmap(i % cmap.N) for i, r in enumerate(regs)}
    fig = Figure(figsize=(1.2 + 3.8 * len(losses), 3.4 * len(panels)), layout="constrained")
    grid = fig.subplots(len(panels), len(losses), squeeze=False, sharex=True)
    for row, ((data, model), part) in zip(grid, panels):
        finite = np.concatenate([_finite_or_nan(part[c]) for c in ("lo", "mean", "median", "hi")])
        finite = finite[np.isfinite(finite)]
        log_y = finite.size > 0 and finite.min() > 0
        top = (finite.max() * 1.3 if log_y else finite.max() + 0.1 * np.ptp(finite) + 1e-9) if finite.size else 1.0
        groups = dict(iter(part.groupby(["loss", "reg"])))
        for ax, loss in zip(row, losses):
            for reg in regs:
                if (loss, reg) not in groups:
                    continue
                c = groups[(loss, reg)].sort_values("budget")
                x = c["budget"].to_numpy(float)
                mean = _finite_or_nan(c["mean"])
                ax.plot(x, mean, "-", color=color[reg], lw=1.5)
                ax.plot(x, np.where(np.isnan(mean), _finite_or_nan(c["median"]), np.nan), ":", color=color[reg],
                        lw=1.5)
                hi = np.where(np.isposinf(c["hi"].to_numpy(float)), top, c["hi"].to_numpy(float))
                ax.fill_between(x, _finite_or_nan(c["lo"]), hi, color=color[reg], alpha=0.1, lw=0)
            ax.set_xscale("log")
            if log_y:
                ax.set_yscale("log")
            _plain_ticks(ax)
            if finite.size:
                ax.set_ylim(top=top)
            ax.set_title(f"{panel_label(data, model)}, loss={loss}", fontsize=9)
            ax.set_xlabel("budget: settings tried")
            ax.grid(alpha=0.3)
        row[0].set_ylabel(f"min {metric}", fontsize=8)
    handles = [Line2D([], [], color=color[r], lw=2, label=f"reg={r}") for r in regs]
    handles += [Line2D([], [], color="black", ls="-", label="mean"),
                Line2D([], [], color="black", ls=":", label="median (mean is +inf)")]
    fig.legend(handles=handles, fontsize=7, loc="outside right center")
    return save(fig, stem)


def best_setting_seeds(runs: pd.DataFrame, settings: pd.DataFrame, metric: str, stem: Path) -> list[Path]:
    """Per cell, the spread over seeds of its best setting (lowest seed median): a box and the seeds as points
    (Lucic et al. 2018); diverged seeds are counted at the top."""
    ranked = settings[np.isfinite(settings["score"].to_numpy(float))].sort_values("score", kind="stable")
    best = ranked.drop_duplicates(["data", "model", "loss", "reg"], keep="first")
    chosen = runs[runs["setting"].isin(best["setting"]) & runs["value"].notna()]
    panels = panels_of(runs)
    width = max(6.0, 0.42 * max(len(cells_of(p)) for _, p in panels) + 2)
    fig, axes = _panel_figure(len(panels), width)
    rng = np.random.default_rng(0)
    by_cell = dict(iter(chosen.groupby(["data", "model", "loss", "reg"])["value"]))
    for ax, ((data, model), part) in zip(axes, panels):
        cells = cells_of(part)
        colors = _loss_colors(part["loss"])
        values = [by_cell.get((data, model, *c), pd.Series(dtype=float)).to_numpy(float) for c in cells]
        finite = [v[np.isfinite(v)] for v in values]
        ax.boxplot([f if f.size else [np.nan] for f in finite], positions=range(len(cells)), widths=0.55,
                   showfliers=False)
        for x, ((loss, _reg), v, f) in enumerate(zip(cells, values, finite)):
            ax.scatter(x + rng.uniform(-0.15, 0.15, f.size), f, s=10, color=colors[loss], zorder=3)
            if v.size > f.size:
                _mark_diverged(ax, x, v.size - f.size)
        _label_cells(ax, cells, metric, f"{panel_label(data, model)}: seeds of the best setting per cell")
    return save(fig, stem)


def difference_matrix(pairs: pd.DataFrame, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(diff, significant) matrices, row minus column, from the unordered pairs table (a, b, diff,
    significant): diff[b, a] = -diff[a, b]."""
    index = {n: i for i, n in enumerate(names)}
    diff = np.full((len(names), len(names)), np.nan)
    sig = np.zeros_like(diff, dtype=bool)
    np.fill_diagonal(diff, 0.0)
    a = pairs["a"].map(index).to_numpy(int)
    b = pairs["b"].map(index).to_numpy(int)
    d = pairs["diff"].to_numpy(float)
    s = pairs["significant"].to_numpy(bool)
    diff[a, b], diff[b, a] = d, -d
    sig[a, b] = sig[b, a] = s
    return diff, sig


def pairwise_heatmap(pairs: pd.DataFrame, metric: str, stem: Path) -> list[Path]:
    """Heatmap of E[min of k] (row) - E[min of k] (column) per panel; blue: the row cell is better; a dot: the
    bootstrap 95% CI excludes 0; the darkest red/blue (the colour bar's ends): +-inf, where one cell's expectation
    is +inf (k of its settings can all be diverged). ``pairs`` has data, model, a, b, k, diff, significant."""
    panels = panels_of(pairs) if len(pairs) else []
    if not panels:
        fig = Figure(figsize=(4, 1.5))
        fig.text(0.5, 0.5, "fewer than two cells: no pairwise comparison", ha="center", va="center")
        return save(fig, stem)
    size = max(len(set(p["a"]) | set(p["b"])) for _, p in panels)
    side = max(4.5, 0.3 * size + 2.5)
    fig = Figure(figsize=(side + 1.2, side * len(panels)), layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, ((data, model), part) in zip(axes, panels):
        names = list(dict.fromkeys([*part["a"], *part["b"]]))
        diff, sig = difference_matrix(part, names)
        finite = np.abs(diff[np.isfinite(diff)])
        vmax = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
        cmap = matplotlib.colormaps["coolwarm"].with_extremes(over="#5c0011", under="#0b1f5c", bad="white")
        # only +-inf lies beyond vmax: clipped to 2 vmax it takes the 'over'/'under' colour (imshow masks inf)
        im = ax.imshow(np.clip(diff, -2 * vmax, 2 * vmax), cmap=cmap, vmin=-vmax, vmax=vmax)
        rows, cols = np.nonzero(sig)
        ax.scatter(cols, rows, s=9, color="black", edgecolors="white", linewidths=0.4, marker="o")
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        k = int(part["k"].iloc[0])
        ax.set_title(f"{panel_label(data, model)}: E[min of k={k}] row - column (dot: 95% CI excludes 0)",
                     fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8, extend="both", label=f"difference in {metric} (ends: +-inf)")
    return save(fig, stem)

