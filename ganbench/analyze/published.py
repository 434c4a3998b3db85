"""Published results beside a sweep's own: each study's numbers are one data file, ``ganbench/published/<study>.yaml``.

A file holds the paper's table as data (see ``pacgan2018.yaml``):

- ``study``, ``title``, ``source`` (which table of which paper), ``statistic`` (what the +- is), ``runs``,
  ``aggregate`` (how our runs of a row are summarised: ``mean_se`` (default), ``median`` or ``min``, see
  :data:`AGGREGATES`).
- ``select``: run-table columns (``ganbench.analyze.table``) and the values a run must have to belong to the study.
- ``metrics``: name -> ``column`` (the run-table column), ``scale`` (to the paper's unit, e.g. 100 for %),
  ``digits`` and ``header``.
- ``protocol``: run-table column -> the paper's value; runs that differ are reported (a shortened budget, another
  sample count), so a comparison always says where its protocol is not the paper's.
- ``rows``: one per row of the paper's table: ``label``, ``data``, ``where`` (columns -> values picking the runs
  of that setting; null: no ganbench equivalent, shown for reference), ``protocol`` (the row's own keys) and
  ``values`` (metric -> [value, +-]).

``compare(runs)`` returns one table per study found among the runs: per row, the aggregate of its completed runs
with a finite value (PacGAN: mean +- standard error over seeds, s.e. = sample std / sqrt(n)) beside the published
value, and the protocol differences. Adding a study (kurach2019, lucic2018, studiogan) is adding its file; nothing
here changes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Mapping

import numpy as np
import pandas as pd
import yaml

PACKAGE_DIR = "published"


@dataclass(frozen=True)
class Metric:
    name: str
    column: str
    scale: float = 1.0
    digits: int = 2
    header: str = ""


@dataclass(frozen=True)
class Row:
    label: str
    data: str
    where: Mapping[str, Any] | None
    values: Mapping[str, tuple[float, float | None]]
    protocol: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Published:
    study: str
    title: str
    source: str
    statistic: str
    runs: int | None
    select: Mapping[str, Any]
    metrics: tuple[Metric, ...]
    protocol: Mapping[str, Any]
    rows: tuple[Row, ...]
    aggregate: str = "mean_se"

    @classmethod
    def from_mapping(cls, d: Mapping) -> "Published":
        if d.get("aggregate", "mean_se") not in AGGREGATES:
            raise ValueError(f"{d['study']}: aggregate must be one of {', '.join(AGGREGATES)}; got {d['aggregate']!r}")
        metrics = tuple(Metric(name, **spec) for name, spec in d["metrics"].items())
        rows = tuple(Row(label=r["label"], data=r.get("data", ""), where=r.get("where"),
                         protocol=r.get("protocol") or {},
                         values={k: (float(v[0]), None if v[1] is None else float(v[1]))
                                 for k, v in r["values"].items()})
                     for r in d["rows"])
        return cls(study=d["study"], title=d["title"], source=d["source"], statistic=d["statistic"],
                   runs=d.get("runs"), select=d.get("select") or {}, metrics=metrics,
                   protocol=d.get("protocol") or {}, rows=rows, aggregate=d.get("aggregate", "mean_se"))


def available() -> list[str]:
    """The studies with published numbers (the data files shipped in ganbench/published/)."""
    folder = resources.files("ganbench") / PACKAGE_DIR
    return sorted(p.name[:-len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load(study: str) -> Published:
    text = (resources.files("ganbench") / PACKAGE_DIR / f"{study}.yaml").read_text()
    return Published.from_mapping(yaml.safe_load(text))


# ------------------------------------------------------------------------------------------------ statistics


def mean_se(values: np.ndarray) -> tuple[float, float, int]:
    """(mean, standard error = sample std / sqrt(n), n) of the finite values; s.e. NaN for n < 2."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return math.nan, math.nan, 0
    se = float(x.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    return float(x.mean()), se, n


def median_of(values: np.ndarray) -> tuple[float, float, int]:
    """(median, NaN, n) of the finite values."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    return (float(np.median(x)) if x.size else math.nan), math.nan, int(x.size)


def min_of(values: np.ndarray) -> tuple[float, float, int]:
    """(minimum, NaN, n) of the finite values (a study that reports its best run)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    return (float(x.min()) if x.size else math.nan), math.nan, int(x.size)


#: how a row's runs are summarised: name -> (function values -> (value, +-, n), what the report calls it)
AGGREGATES = {"mean_se": (mean_se, "mean ± standard error"), "median": (median_of, "median"),
              "min": (min_of, "minimum")}


def _same(a: Any, b: Any) -> bool:
    """Config values equal as the paper means them: numbers by value (1 == 1.0), anything else as text."""
    if isinstance(a, (bool, np.bool_)) or isinstance(b, (bool, np.bool_)):
        return str(a).lower() == str(b).lower()
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)
    except (TypeError, ValueError):
        return str(a) == str(b)


def matching(runs: pd.DataFrame, where: Mapping[str, Any]) -> pd.Series:
    """Rows of ``runs`` whose columns equal every value of ``where`` (a missing column never matches)."""
    keep = pd.Series(True, index=runs.index)
    for column, value in where.items():
        if column not in runs:
            return pd.Series(False, index=runs.index)
        keep &= runs[column].map(lambda v, value=value: v is not None and _same(v, value))
    return keep


def protocol_differences(part: pd.DataFrame, protocol: Mapping[str, Any]) -> list[str]:
    """``key: ours (paper X)`` for every protocol key where some run differs from the paper."""
    out = []
    for column, paper in protocol.items():
        ours = part[column].tolist() if column in part else []
        if ours and all(_same(v, paper) for v in ours):
            continue
        shown = sorted({_text(v) for v in ours}) or ["missing"]
        name = column.removeprefix("cfg.")
        out.append(f"{name} {'/'.join(shown)} (paper {_text(paper)})")
    return out


def _text(v: Any) -> str:
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e9:
        return str(int(v))
    return str(v)


def compare_study(runs: pd.DataFrame, pub: Published) -> pd.DataFrame | None:
    """One row per published row: the paper's values, ours (mean, s.e., n over seeds) and the protocol
    differences; None when no run belongs to the study."""
    mine = runs[matching(runs, pub.select)]
    if mine.empty:
        return None
    summarise = AGGREGATES[pub.aggregate][0]
    records = []
    for row in pub.rows:
        part = mine[matching(mine, row.where)] if row.where is not None else mine.iloc[:0]
        done = part[part["status"] == "completed"] if "status" in part else part
        rec: dict[str, Any] = {"study": pub.study, "data": row.data, "label": row.label,
                               "runs": len(part), "where": None if row.where is None else dict(row.where)}
        for metric in pub.metrics:
            values = done[metric.column].to_numpy(float) * metric.scale if metric.column in done else np.array([])
            mean, se, n = summarise(values)
            paper, paper_se = row.values.get(metric.name, (math.nan, None))
            rec.update({f"{metric.name}_mean": mean, f"{metric.name}_se": se, f"{metric.name}_n": n,
                        f"{metric.name}_paper": paper,
                        f"{metric.name}_paper_se": math.nan if paper_se is None else paper_se})
        rec["protocol_differences"] = "; ".join(protocol_differences(part, {**pub.protocol, **row.protocol})) \
            if len(part) else ""
        records.append(rec)
    return pd.DataFrame.from_records(records)


def compare(runs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """study -> its comparison table, for every study with published numbers that some run belongs to."""
    out = {}
    for study in available():
        table = compare_study(runs, load(study))
        if table is not None:
            out[study] = table
    return out


# -------------------------------------------------------------------------------------------------- markdown


def pm(mean: float, se: float, digits: int) -> str:
    """``mean +- se`` with ``digits`` decimals; '-' without a value, ``+- -`` without a standard error."""
    if not math.isfinite(mean):
        return "-"
    return f"{mean:.{digits}f} ± {se:.{digits}f}" if math.isfinite(se) else f"{mean:.{digits}f} ± -"


def markdown(study: str, table: pd.DataFrame) -> str:
    """The comparison as a report section: per row, ours (mean +- s.e., n) beside the paper's."""
    pub = load(study)
    head = [f"## Published: {pub.title}", "",
            f"Source: {pub.source}; the paper's values are the {pub.statistic}. Ours: the "
            f"{AGGREGATES[pub.aggregate][1]} over the completed runs (seeds) of each setting, n of them. Shown: the "
            "paper's rows of every data set with runs; a row without runs has no ganbench equivalent or was not run."]
    columns = ["data", "setting", "runs"]
    for metric in pub.metrics:
        columns += [f"{metric.header} (ours)", f"{metric.header} (paper)"]
    columns.append("protocol differences")
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    shortened = False
    records = table.to_dict("records")
    with_runs = {rec["data"] for rec in records if rec["runs"]}
    for rec in (r for r in records if r["data"] in with_runs):
        cells = [rec["data"], rec["label"], str(rec["runs"])]
        for metric in pub.metrics:
            n = rec[f"{metric.name}_n"]
            ours = pm(rec[f"{metric.name}_mean"], rec[f"{metric.name}_se"], metric.digits)
            cells += [f"{ours} (n={n})" if n else "-",
                      pm(rec[f"{metric.name}_paper"], rec[f"{metric.name}_paper_se"], metric.digits)]
        differences = rec["protocol_differences"] or ("none" if rec["runs"] else "")
        shortened |= bool(rec["protocol_differences"])
        cells.append(differences.replace("|", "\\|"))
        lines.append("| " + " | ".join(cells) + " |")
    note = ["", "**The runs' protocol differs from the paper's where listed (e.g. a shortened budget): compare "
                "those numbers as a shortened protocol, not as a reproduction.**"] if shortened else []
    return "\n".join(head + [""] + lines + note)
