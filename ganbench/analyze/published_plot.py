"""Published numbers beside ours, as a figure: one panel per metric and data set of a study's comparison table
(``ganbench.analyze.published.compare_study``), one x position per setting (the paper's row) with runs.

At each setting: ours (a filled circle: the study's aggregate, mean with +- standard error bars for ``mean_se``,
the best run for ``min``, the median for ``median``; the individual runs as small grey dots when ``runs`` is given)
and the paper's value (a hollow square, +- its published spread where it has one). Rows whose runs' protocol differs
from the paper's are marked with a dagger and numbered; the caption under the panels lists the differences, so a
shortened run never reads as a reproduction. Built on matplotlib.figure.Figure (Agg canvas, no pyplot state).
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ganbench.analyze import published

OURS_COLOR, PAPER_COLOR, RUN_COLOR = "#1f77b4", "#d62728", "#9e9e9e"
#: the aggregate's name on the plot
AGGREGATE_LABEL = {"mean_se": "ours: mean ± s.e. over seeds", "min": "ours: best run", "median": "ours: median"}


def rows_with_runs(table: pd.DataFrame) -> pd.DataFrame:
    """The comparison rows of data sets that have runs (as ``published.markdown`` shows them), in table order."""
    with_runs = set(table.loc[table["runs"] > 0, "data"])
    return table[table["data"].isin(with_runs)].reset_index(drop=True)


def footnotes(rows: pd.DataFrame) -> dict[int, int]:
    """Row index -> footnote number, for every row whose runs differ from the paper's protocol (1, 2, ...)."""
    marked = [i for i, text in enumerate(rows["protocol_differences"].fillna("")) if text]
    return {i: n for n, i in enumerate(marked, start=1)}


def caption(rows: pd.DataFrame, notes: dict[int, int], pub: published.Published, width: int = 110) -> str:
    """The figure's caption: what is shown, then one line per footnoted row with its protocol differences."""
    head = (f"{AGGREGATE_LABEL[pub.aggregate]} (n = completed runs); paper: {pub.statistic}. "
            f"Source: {pub.source}")
    lines = textwrap.wrap(head, width)
    if not notes:
        lines += ["Protocol: the runs match the paper's on every checked key."]
    for i, n in notes.items():
        row = rows.iloc[i]
        text = f"†{n} {row['data']} / {row['label']}: protocol differs: {row['protocol_differences']}"
        lines += textwrap.wrap(text, width, subsequent_indent="    ")
    return "\n".join(lines)


def run_values(runs: pd.DataFrame | None, pub: published.Published, row: pd.Series,
               metric: published.Metric) -> np.ndarray:
    """The finite values (in the paper's unit) of the completed runs of one comparison row; empty without runs."""
    if runs is None or row["where"] is None or (isinstance(row["where"], float) and math.isnan(row["where"])):
        return np.array([])
    mine = runs[published.matching(runs, pub.select) & published.matching(runs, row["where"])]
    if "status" in mine:
        mine = mine[mine["status"] == "completed"]
    if metric.column not in mine:
        return np.array([])
    values = mine[metric.column].to_numpy(float) * metric.scale
    return values[np.isfinite(values)]


def _errorbar(ax, x: float, y: float, err: float, color: str, marker: str, filled: bool, label: str) -> None:
    if not math.isfinite(y):
        return
    yerr = err if math.isfinite(err) else None
    ax.errorbar([x], [y], yerr=yerr, fmt=marker, color=color, markersize=7, capsize=4, label=label,
                markerfacecolor=color if filled else "white", markeredgewidth=1.5)


def draw_panel(ax, rows: pd.DataFrame, metric: published.Metric, notes: dict[int, int],
               runs: pd.DataFrame | None, pub: published.Published) -> None:
    """One metric of one data set: ours beside the paper's, per row."""
    offset = 0.15
    for x, (i, row) in enumerate(rows.iterrows()):
        values = run_values(runs, pub, row, metric)
        if values.size:
            jitter = np.linspace(-0.06, 0.06, values.size) if values.size > 1 else np.zeros(1)
            ax.scatter(x - offset + jitter, values, s=9, color=RUN_COLOR, zorder=1,
                       label="our runs" if x == 0 else None)
        _errorbar(ax, x - offset, row[f"{metric.name}_mean"], row[f"{metric.name}_se"], OURS_COLOR, "o", True,
                  AGGREGATE_LABEL[pub.aggregate])
        _errorbar(ax, x + offset, row[f"{metric.name}_paper"], row[f"{metric.name}_paper_se"], PAPER_COLOR, "s",
                  False, "paper")
    labels = [f"{row['label']}{' †' + str(notes[i]) if i in notes else ''}\n(n={row[f'{metric.name}_n']})"
              for i, row in rows.iterrows()]
    ax.set_xticks(range(len(rows)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.set_ylabel(metric.header or metric.name)
    ax.grid(axis="y", alpha=0.3)
    handles, names = ax.get_legend_handles_labels()
    unique = dict(zip(names, handles))
    if unique:
        ax.legend(unique.values(), unique.keys(), fontsize=7, loc="best")


def figure(table: pd.DataFrame, runs: pd.DataFrame | None = None,
           pub: published.Published | None = None) -> Figure | None:
    """The comparison figure of one study's ``table`` (``published.compare(runs)[study]``): a panel per data set
    (rows) and metric (columns); None when no data set of the table has runs. ``runs`` (the run table) adds each
    setting's runs as dots; ``pub`` defaults to the study's data file (``ganbench/published/<study>.yaml``)."""
    rows_all = rows_with_runs(table)
    if rows_all.empty:
        return None
    pub = pub or published.load(str(table["study"].iloc[0]))
    datasets = list(dict.fromkeys(rows_all["data"]))
    notes_all = footnotes(rows_all)
    n_rows, n_cols = len(datasets), len(pub.metrics)
    widest = max(int((rows_all["data"] == d).sum()) for d in datasets)
    fig = Figure(figsize=(max(4.0, 0.9 * widest + 1.5) * n_cols, 3.4 * n_rows + 1.0), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for r, data in enumerate(datasets):
        index = rows_all.index[rows_all["data"] == data]
        rows = rows_all.loc[index].reset_index(drop=True)
        notes = {j: notes_all[i] for j, i in enumerate(index) if i in notes_all}
        for c, metric in enumerate(pub.metrics):
            draw_panel(axes[r][c], rows, metric, notes, runs, pub)
            axes[r][c].set_title(f"{data}: {metric.header or metric.name}", fontsize=9)
    fig.suptitle(textwrap.fill(f"Published beside ours: {pub.title}", 100), fontsize=10)
    fig.text(0.01, 0.0, caption(rows_all, notes_all, pub), ha="left", va="top", fontsize=7, family="monospace")
    return fig


def comparison_figure(table: pd.DataFrame, path: str | Path, runs: pd.DataFrame | None = None,
                      pub: published.Published | None = None) -> Path | None:
    """Write ``figure(table, runs, pub)`` to the PNG ``path`` (caption included); return the path, or None when
    no data set of the table has runs."""
    fig = figure(table, runs, pub)
    if fig is None:
        return None
    path = Path(path).with_suffix(".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def comparison_figures(tables: dict[str, pd.DataFrame], directory: str | Path,
                       runs: pd.DataFrame | None = None) -> list[Path]:
    """``published_<study>.png`` in ``directory`` for every study of ``published.compare(runs)`` with runs."""
    out = [comparison_figure(table, Path(directory) / f"published_{study}.png", runs)
           for study, table in tables.items()]
    return [p for p in out if p is not None]
