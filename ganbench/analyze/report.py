"""The study as a markdown report (report.md) and, on request, as a W&B run.

Sections: runs by status (diverged runs are counted, never dropped), evaluation protocol(s) (with a warning
when runs scored under different protocols are mixed), the best run per cell with its hyperparameters and its
setting's seed median (Kurach et al.), the expected best of k settings per cell, the pairwise differences with
bootstrap CIs (Lucic et al.), disk usage, and links to the figures.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np
import pandas as pd

from ganbench.analyze import published
from ganbench.analyze.stats import higher_is_better, oriented
from ganbench.analyze.table import CELL, arrow_safe
from ganbench.results import STATUSES
from ganbench.wandb_mode import resolve_wandb_mode

if TYPE_CHECKING:
    from ganbench.analyze import Study

MAX_PAIR_ROWS = 200
FIGURE_TITLES = {
    "top_fraction": "Top {top:.0%} of the trained models per loss x regularizer (Kurach et al.)",
    "budget": "Best score against the number of settings tried, mean and 95% band (Lucic et al.)",
    "best_seeds": "Seeds of the best setting per cell (Lucic et al.)",
    "pairwise": "Pairwise differences of the expected best of k settings",
}


# --------------------------------------------------------------------------------------------- formatting


def fmt(value: Any) -> str:
    """A table cell: 4 significant digits, 'inf' for +inf (diverged), '-' for missing, integers as such."""
    if value is None or value is pd.NA:
        return "-"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return "-"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return str(int(value)) if value.is_integer() and abs(value) < 1e6 else f"{value:.4g}"
    return str(value).replace("|", "\\|")


def md_table(df: pd.DataFrame, columns: dict[str, str]) -> str:
    """A markdown table of ``df``'s ``columns`` (column name -> header); absent columns are skipped."""
    columns = {c: h for c, h in columns.items() if c in df.columns}
    lines = ["| " + " | ".join(columns.values()) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |"
              for row in df[list(columns)].itertuples(index=False, name=None)]
    return "\n".join(lines)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def status_counts(runs: pd.DataFrame) -> pd.Series:
    """Runs per status: every known status (zeros included), then any other found (e.g. unreadable)."""
    counts = runs["status"].value_counts()
    order = list(STATUSES) + sorted(set(counts.index) - set(STATUSES))
    return counts.reindex(order, fill_value=0)


def status_summary(runs: pd.DataFrame) -> str:
    counts = status_counts(runs)
    return f"{len(runs)} runs: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n)


def reg_params(row: pd.Series) -> str:
    """The regularizer parameters of a row, e.g. ``gp.weight=10``, from its cfg.reg.<name>.<param> columns."""
    items = [(c[len("cfg.reg."):], v) for c, v in row.items()
             if isinstance(c, str) and c.startswith("cfg.reg.") and pd.notna(v)]
    return ", ".join(f"{k}={fmt(v)}" for k, v in items) or "-"


# ---------------------------------------------------------------------------------------------- sections


def _overview(study: Study, inputs: Iterable[Path]) -> str:
    runs = study.runs
    lines = ["# Study analysis", "",
             f"Inputs: {', '.join(f'`{p}`' for p in inputs)}  ",
             f"{len(runs)} runs, {runs['setting'].nunique()} settings, {len(study.cells)} cells "
             f"(data x model x loss x reg).  ",
             f"Score: {_score_words(study.metric)} at each run's best checkpoint, lower is better (Kurach et al.); "
             "a diverged run counts as tried with score +inf (it never wins); a setting's score is the median "
             "over its seeds.  ",
             f"Bootstrap: {study.n_boot} resamples; pairwise budget k = {fmt(study.k)}."]
    return "\n".join(lines)


def _score_words(metric: str) -> str:
    """`fid/...`; for a higher-is-better metric `-psnr/...` (its negation, so that lower stays better)."""
    if not higher_is_better(metric):
        return f"`{metric}`"
    return f"`{oriented(metric)}` (`{metric}` is higher-is-better: every score, table and figure shows its negation)"


def _statuses(study: Study) -> str:
    counts = status_counts(study.runs).rename_axis("status").reset_index(name="runs")
    no_metric = int(study.runs["primary"].isna().sum()) if "primary" in study.runs else len(study.runs)
    note = (f"\n\n{no_metric} runs have no metrics (metrics=none, or they stopped before an evaluation)."
            if no_metric else "")
    return "## Runs by status\n\n" + md_table(counts, {"status": "status", "runs": "runs"}) + note


def extended_cells(runs) -> list[str]:
    """The cells of ``runs`` that the studies' code could not train: compare_gan's SNDCGAN has no batch/layer norm
    hook in D (google/compare_gan v2@766edb2 ``dcgan_architecture.py::sn_discriminator``), so sndcgan x bn/ln (alone
    or with a penalty) extends Kurach et al.'s grid."""
    if runs.empty or not {"model", "reg"} <= set(runs.columns):
        return []
    normed = runs["reg"].astype(str).str.split("+").map(lambda parts: bool({"bn", "ln"} & set(parts)))
    cells = runs[(runs["model"] == "sndcgan") & normed]
    return sorted({f"sndcgan {loss}/{reg}" for loss, reg in zip(cells["loss"], cells["reg"])})


def _extensions(study: Study) -> list[str]:
    cells = extended_cells(study.runs)
    if not cells:
        return []
    return ["## Cells beyond the study\n\ncompare_gan's SNDCGAN has no batch- or layer-norm hook in D, so Kurach et "
            "al. 2019 trained no " + ", ".join(cells) + " run: these cells extend the study (no published number "
            "exists for them)."]


def _protocols(study: Study) -> str:
    table = study.protocols
    if table.empty:
        return "## Evaluation protocol\n\nNo run holds metrics."
    keys = [c for c in table.columns if c.startswith("protocol.")]
    if len(table) == 1:
        described = ", ".join(f"{k[len('protocol.'):]}={fmt(table[k].iloc[0])}" for k in keys)
        return (f"## Evaluation protocol\n\nAll {int(table['runs'].iloc[0])} runs with metrics use one protocol: "
                f"primary `{table['primary'].iloc[0]}` ({described}).")
    differing = [k for k in keys if table[k].astype(str).nunique() > 1]
    columns = {"primary": "primary", "protocol_id": "protocol", "runs": "runs",
               **{k: k[len("protocol."):] for k in differing}}
    return (f"## Evaluation protocol\n\n**Warning: {len(table)} evaluation protocols are mixed.** Scores are "
            f"comparable only under one protocol; the statistics below use `{study.metric}` where present and "
            "treat every score alike. Re-evaluate the runs under one protocol (ganbench.evaluate) or analyze "
            "them separately.\n\n" + md_table(table, columns))


def _best_per_cell(study: Study) -> str:
    cells = study.cells.copy()
    if "best" not in cells:
        return "## Best per cell\n\nNo cell has a run with a finite score."
    hyper = [c for c in cells.columns if c.startswith("cfg.optim.")]
    other = [c for c in cells.columns if c.startswith("cfg.") and c not in hyper and not c.startswith("cfg.reg.")]
    cells["reg_params"] = cells.apply(reg_params, axis=1)
    columns = {**{c: c for c in CELL}, "runs": "runs", "diverged": "diverged", "settings": "settings",
               "best": f"best {study.label}", "best_seed": "seed", "setting_median": "setting median",
               "setting_seeds": "n seeds", **{c: c[len("cfg.optim."):] for c in hyper},
               "reg_params": "reg params", **{c: c[len("cfg."):] for c in other}, "best_setting": "setting"}
    return ("## Best per cell\n\nThe best run of each cell, its hyperparameters, and the median over the seeds of "
            "its setting (a cell with no finite score shows '-').\n\n" + md_table(cells, columns))


def _budget(study: Study) -> str:
    if not study.k or "expected_min" not in study.cells:
        return "## Expected best of k settings\n\nNo cell has a scored setting."
    columns = {**{c: c for c in CELL}, "settings": "settings", "expected_min": f"E[min of k={study.k}]",
               "p_all_diverged": "P(all k diverged)"}
    return (f"## Expected best of k = {study.k} settings\n\nA practitioner tries k settings of a cell at random "
            "(without replacement; with replacement in a cell with fewer than k settings; Lucic et al.): "
            "the exact expectation of the best setting score "
            "(order statistics) and the chance that all k diverged (then the expectation is +inf). "
            "Curves over k: figure below.\n\n" + md_table(study.cells, columns))


def _pairwise(study: Study) -> str:
    pairs = study.pairwise
    head = f"## Pairwise differences (k = {fmt(study.k)})\n\n"
    if pairs.empty:
        return head + "Fewer than two scored cells per data x model: nothing to compare."
    note = ""
    shown = pairs
    if len(pairs) > MAX_PAIR_ROWS:
        shown = (pairs.assign(_abs=pairs["diff"].abs())
                 .sort_values(["significant", "_abs"], ascending=[False, False], kind="stable")
                 .head(MAX_PAIR_ROWS))
        note = (f"\n\n{len(pairs)} pairs, {int(pairs['significant'].sum())} significant; the {MAX_PAIR_ROWS} shown "
                "are the significant ones first, largest difference first. All pairs: pairwise.csv.")
    shown = shown.assign(ci=[f"[{fmt(lo)}, {fmt(hi)}]" for lo, hi in zip(shown["lo"], shown["hi"])])
    columns = {"data": "data", "model": "model", "a": "a", "b": "b", "n_a": "n a", "n_b": "n b",
               "em_a": "E[min] a", "em_b": "E[min] b", "diff": "a - b", "ci": "95% CI", "significant": "significant"}
    return (head + f"diff = E[min of k settings of a] - E[min of k settings of b], exact; negative: a is better. "
            f"95% CI: {study.n_boot} bootstrap resamples of each cell's settings; significant when it excludes 0 "
            "(and both cells have at least 2 settings).\n\n" + md_table(shown, columns) + note)


def _disk(study: Study) -> str:
    ckpt = int(study.runs["disk.ckpt_bytes"].sum())
    logs = int(study.runs["disk.log_bytes"].sum())
    table = pd.DataFrame({"what": ["checkpoints", "logs, samples, records", "total"],
                          "bytes": [ckpt, logs, ckpt + logs]})
    table["size"] = table["bytes"].map(human_bytes)
    return "## Disk usage\n\n" + md_table(table, {"what": "", "size": "size", "bytes": "bytes"})


def _figures(study: Study, out: Path) -> str:
    if not study.figures:
        return "## Figures\n\nNone: no run has a finite score."
    lines = ["## Figures"]
    for name, paths in study.figures.items():
        rel = [p.relative_to(out).as_posix() if p.is_relative_to(out) else str(p) for p in paths]
        title = (f"Published numbers beside ours: {name.removeprefix('published_')} (protocol differences in the "
                 f"caption)" if name.startswith("published_") else FIGURE_TITLES.get(name, name).format(top=study.top))
        links = " ".join(f"[{Path(r).suffix[1:].upper()}]({r})" for r in rel)
        lines += ["", f"### {title}", "", f"![{name}]({rel[0]})", "", links]
    return "\n".join(lines)


def render(study: Study, out: Path, inputs: Iterable[Path]) -> str:
    """The whole report.md text."""
    beside_paper = [published.markdown(name, table) for name, table in study.published.items()]
    sections = [_overview(study, inputs), _statuses(study), _protocols(study), *beside_paper, *_extensions(study),
                _best_per_cell(study),
                _budget(study), _pairwise(study), _reruns(study), _disk(study), _figures(study, Path(out)),
                "## Files\n\nruns.csv / runs.parquet (one row per run), settings.csv (one row per setting), "
                "cells.csv, budget.csv, pairwise.csv."]
    return "\n\n".join(sections) + "\n"


def _reruns(study: Study) -> str:
    if not study.reruns:
        return ("## Re-running the best settings\n\n`--rerun-best N` writes rerun_best.sh: the best setting of every "
                "cell trained again with N seeds (Lucic et al. 2018 use 50).")
    body = "\n".join(study.reruns)
    return (f"## Re-running the best settings\n\n`bash rerun_best.sh` ({len(study.reruns)} sweeps, one per cell); "
            f"then analyse the search and its `_seeds` directories together:\n\n```bash\n{body}\n```")


def summary_line(study: Study, out: Path) -> str:
    """One line for the terminal: counts, the best cell, where the report is."""
    line = f"analyzed {status_summary(study.runs)}; {study.runs['setting'].nunique()} settings"
    if "best" in study.cells and study.cells["best"].notna().any():
        best = study.cells.loc[study.cells["best"].idxmin()]
        line += (f"; best {study.label} {fmt(best['best'])} ({best['loss']}/{best['reg']}, "
                 f"{best['model']} on {best['data']})")
    if study.published:
        line += f"; beside the published numbers of {', '.join(study.published)}"
    return line + f"; report: {Path(out) / 'report.md'}"


# ---------------------------------------------------------------------------------------------------- W&B


def log_to_wandb(study: Study, out: Path, project: str) -> None:
    """The tables (wandb.Table) and figures (wandb.Image) of the study in one W&B run of ``project``. An online
    run that cannot start falls back to offline (sync it later with ``wandb sync``)."""
    os.environ.setdefault("WANDB_SILENT", "true")
    import wandb

    config = {"budget_k": study.k, "bootstrap": study.n_boot, "top": study.top, "metric": study.metric,
              "runs": len(study.runs), "out": str(out)}
    kwargs = dict(project=project, dir=str(out), job_type="analysis", config=config,
                  settings=wandb.Settings(console="off", init_timeout=60))
    mode = resolve_wandb_mode("auto")
    try:
        run = wandb.init(mode=mode, **kwargs)
    except Exception as exc:  # noqa: BLE001 - an unreachable server must not lose the analysis
        if mode != "online":
            raise
        print(f"ganbench: W&B online run failed ({str(exc).splitlines()[0]}); logging offline", file=sys.stderr)
        run = wandb.init(mode="offline", **kwargs)
    try:
        tables = {"runs": study.runs.drop(columns="value"), "settings": study.settings, "cells": study.cells,
                  "pairwise": study.pairwise}
        logged = {f"table/{name}": wandb.Table(dataframe=arrow_safe(df)) for name, df in tables.items()}
        logged.update({f"figure/{name}": wandb.Image(str(paths[0])) for name, paths in study.figures.items()})
        run.log(logged)
        run.summary.update({"n_runs": len(study.runs),
                            "n_diverged": int((study.runs["status"] == "diverged").sum())})
    finally:
        run.finish()
