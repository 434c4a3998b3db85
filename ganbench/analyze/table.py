"""Collect run records (``result.json``) into one flat table: one row per training run.

Columns (see :func:`collect`):
    run_dir, status, loss, reg, model, data, seed, g_steps, wall_time_s, g_steps_per_s, diverged_step,
    primary, score, setting, protocol_id,
    best.<metric>, final.<metric>, protocol.<key>, cfg.<dotted.key>, disk.ckpt_bytes, disk.log_bytes

``score`` follows Kurach et al. (2019): a run is scored by its best checkpoint, i.e. the best value of the
primary metric seen during training. The primary metric is the record's (the evaluator's, FID) except for the
families with their own (:data:`FAMILY_PRIMARY`: pix2pix and srgan are scored by their PSNR against the ground truth,
higher is better: its largest value over the evaluations; the statistics negate it, ``stats.run_values``). Only a
completed run has a score; diverged, failed, interrupted and running runs get NaN (the statistics count diverged
ones as tried with score +inf, see ``stats.run_values``).

A *setting* is a run's hyperparameters without its seed (Kurach et al. train each setting with several seeds):
``setting`` is a short stable hash of the flattened config minus the keys in :data:`NOT_HYPERPARAMETERS`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

import pandas as pd

from ganbench.errors import ConfigError
from ganbench.primary import higher_is_better

RECORD = "result.json"
CKPT_DIR = "checkpoints"
CELL = ["data", "model", "loss", "reg"]  # a cell of the study: Kurach's loss x regularizer, per model and data
PANEL = ["data", "model"]

# dotted config keys (and their subtrees) that are not hyperparameters of the trained model: where it runs,
# how it logs, where it writes, the seed. The same list as hydra.job.config.override_dirname.exclude_keys plus
# the seed, the output cadence and the evaluation's own batch size/device/cache.
NOT_HYPERPARAMETERS = (
    "seed", "name", "experiment", "resume", "stop_after", "run_dir", "hydra", "logger", "trainer",
    "data.root", "data.download", "data.num_workers",
    "metrics.cache_dir", "metrics.inception_weights", "metrics.vgg16_weights", "metrics.device", "metrics.batch_size",
    "checkpoint", "samples", "log_every",
)


#: metric short names (the key before its '/') where higher is better; every other metric (FID, KID, L1, LPIPS,
#: reverse KL, energy distance, cycle L1) is lower-is-better
#: family ``_target_`` -> the short name of its own primary metric, from its config: the image-to-image families with
#: ground truth are scored by their PSNR against it (families.md 10.3: SR and paired translation report PSNR/SSIM);
#: every other family (cyclegan: FID of G_A(A) against domain B) by the evaluator's primary metric
FAMILY_PRIMARY = {
    "ganbench.families.pix2pix.Pix2Pix": lambda family: "psnr",
    "ganbench.families.srgan.SRGAN": lambda family: f"psnr_{family.get('metric_channels', 'y')}",
}


def family_primary(config: dict, keys: Iterable[str]) -> str | None:
    """The family's own primary metric among ``keys`` (``psnr/test360``; None when the family has none or it was
    not computed): the key whose name before '/' is FAMILY_PRIMARY's for the config's family."""
    family = config.get("family") or {}
    name = FAMILY_PRIMARY.get(str(family.get("_target_")))
    if name is None:
        return None
    short = name(family)
    return next((k for k in keys if str(k).split("/", 1)[0] == short), None)


def best_value(metrics: dict, key: str) -> float:
    """The best value of ``key`` over a run's evaluations (``history``; ``final`` without one): the largest for a
    higher-is-better metric, the smallest otherwise; NaN evaluations skipped."""
    values = [_number(h.get(key)) for h in metrics.get("history") or []] or [_number((metrics.get("final") or
                                                                                     {}).get(key))]
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return math.nan
    return max(finite) if higher_is_better(key) else min(finite)


def cell_sort_key(loss: str, reg: str) -> tuple:
    """Cells ordered by loss, then regularizer with ``none`` (the baseline) first."""
    return loss, reg != "none", reg


# ---------------------------------------------------------------------------------------------- discovery


def find_run_dirs(paths: Iterable[str | Path]) -> dict[Path, dict[str, int]]:
    """Every run directory (one holding ``result.json``) under ``paths``, with its disk usage in bytes:
    ``{run_dir: {"ckpt": bytes under checkpoints/, "log": bytes of every other file}}``.

    A path may be a directory (searched recursively, symlinks not followed) or a ``result.json`` file.
    Files below a run directory count towards the nearest run directory above them.
    Raises ConfigError for a path that does not exist.
    """
    runs: dict[Path, dict[str, int]] = {}
    for given in paths:
        path = Path(os.path.abspath(given))
        if not path.exists():
            raise ConfigError(f"{given}: no such file or directory")
        if path.is_file() and path.name != RECORD:
            raise ConfigError(f"{given}: not a {RECORD} file or a directory of runs")
        for run, usage in _walk(path.parent if path.is_file() else path).items():
            runs.setdefault(run, usage)
    return runs


def _walk(root: Path) -> dict[Path, dict[str, int]]:
    """Iterative os.scandir walk from ``root``; see find_run_dirs."""
    runs: dict[Path, dict[str, int]] = {}
    stack: list[tuple[str, Path | None, bool]] = [(str(root), None, False)]
    while stack:
        directory, owner, in_ckpt = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        if any(e.name == RECORD and e.is_file(follow_symlinks=False) for e in entries):
            owner, in_ckpt = Path(directory), False
            runs[owner] = {"ckpt": 0, "log": 0}
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                child_in_ckpt = in_ckpt or (owner is not None and entry.name == CKPT_DIR
                                            and Path(directory) == owner)
                stack.append((entry.path, owner, child_in_ckpt))
            elif owner is not None and entry.is_file(follow_symlinks=False):
                runs[owner]["ckpt" if in_ckpt else "log"] += entry.stat(follow_symlinks=False).st_size
    return runs


def read_records(run_dirs: Iterable[Path]) -> Iterator[tuple[Path, dict | None]]:
    """(run_dir, parsed result.json or None when unreadable), in the order given."""
    for run_dir in run_dirs:
        try:
            with open(run_dir / RECORD, "rb") as f:
                yield run_dir, json.load(f)
        except (OSError, ValueError):
            yield run_dir, None


# ----------------------------------------------------------------------------------------------- flatten


def flatten(obj: dict, prefix: str = "") -> dict[str, Any]:
    """Nested mappings to one level with dotted keys; lists (and tuples) become their JSON text; an empty
    mapping becomes '{}'.

    >>> flatten({"a": {"b": 1, "c": [1, 2]}}, "cfg.")
    {'cfg.a.b': 1, 'cfg.a.c': '[1, 2]'}
    """
    out: dict[str, Any] = {}
    _flatten_into(obj, prefix, out)
    return out


def _flatten_into(obj: dict, prefix: str, out: dict[str, Any]) -> None:
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            if value:
                _flatten_into(value, name + ".", out)
            else:
                out[name] = "{}"
        elif isinstance(value, (list, tuple)):
            out[name] = json.dumps(value, default=str)
        else:
            out[name] = value


def hyperparameters(config: dict) -> dict:
    """The config without the keys in NOT_HYPERPARAMETERS (the seed, logging, hardware, paths): what makes a
    setting. The input is not modified."""
    pruned = dict(config)
    for dotted in NOT_HYPERPARAMETERS:
        *parents, leaf = dotted.split(".")
        node = pruned
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                break
            node[part] = child = dict(child)  # copy on the way down, so the record stays intact
            node = child
        else:
            node.pop(leaf, None)
    return pruned


def short_hash(obj: Any, prefix: str = "s", length: int = 10) -> str:
    """A stable id of a JSON-able object (keys sorted; NaN and None spelled out): ``prefix`` + hex digits. The
    letter prefix keeps an all-digit digest from being read back from CSV as a number."""
    text = json.dumps(obj, sort_keys=True, default=str, allow_nan=True)
    return prefix + hashlib.sha1(text.encode()).hexdigest()[:length]


def setting_id(config: dict) -> str:
    """The setting of a run: a hash of its hyperparameters (the config without the seed etc.)."""
    return short_hash(hyperparameters(config))


def reg_label(config: dict) -> str:
    """The regularizer of a run from its config's ``reg`` mapping: its keys sorted and joined with '+'
    (``gp+sn``); ``none`` when empty or only ``none``. (reg is a multi-select group, not in ``choices``.)"""
    keys = sorted(k for k in (config.get("reg") or {}) if k != "none")
    return "+".join(keys) or "none"


def _number(value: Any) -> float:
    try:
        return float(value) if value is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def row(run_dir: Path, record: dict, usage: dict[str, int]) -> dict[str, Any]:
    """One table row from one run record (see the module docstring for the columns)."""
    config = record.get("config") or {}
    choices = record.get("choices") or {}
    metrics = record.get("metrics") or {}
    best = metrics.get("best") or {}
    primary = family_primary(config, metrics.get("final") or {}) or metrics.get("primary")
    status = record.get("status", "unknown")
    flat_config = flatten(config)
    if primary == metrics.get("primary"):
        score = _number(best.get(primary))
    else:  # the family's own metric: its best evaluation (the record's best.* follow the evaluator's primary)
        score = best_value(metrics, primary)
    protocol = metrics.get("protocol") or {}
    out = {
        "run_dir": str(run_dir),  # where it lies now (the record holds where it ran)
        "status": status,
        "loss": choices.get("loss", "unknown"),
        "reg": reg_label(config),
        "model": choices.get("model") or (config.get("model") or {}).get("name") or "unknown",
        "data": choices.get("data", "unknown"),
        "seed": record.get("seed", config.get("seed")),
        "g_steps": record.get("g_steps"),
        "wall_time_s": _number(record.get("wall_time_s")),
        "g_steps_per_s": _number(record.get("g_steps_per_s")),
        "diverged_step": _number((record.get("diverged") or {}).get("g_step")),
        "primary": primary,
        "score": score if status == "completed" and primary else math.nan,
        "setting": setting_id(config),
        "protocol_id": short_hash([primary, protocol], "p", 8) if primary else None,
    }
    out.update(flatten(best, "best."))
    out.update(flatten(metrics.get("final") or {}, "final."))
    out.update(flatten(protocol, "protocol."))
    out.update({f"cfg.{k}": v for k, v in flat_config.items()})
    out["disk.ckpt_bytes"] = usage["ckpt"]
    out["disk.log_bytes"] = usage["log"]
    return out


def unreadable_row(run_dir: Path, usage: dict[str, int]) -> dict[str, Any]:
    """A row for a run directory whose result.json cannot be parsed (status ``unreadable``), so it is counted."""
    return {"run_dir": str(run_dir), "status": "unreadable", "loss": "unknown", "reg": "unknown",
            "model": "unknown", "data": "unknown", "score": math.nan, "setting": short_hash(str(run_dir), "u"),
            "disk.ckpt_bytes": usage["ckpt"], "disk.log_bytes": usage["log"]}


def collect(paths: Iterable[str | Path]) -> pd.DataFrame:
    """One row per run found under ``paths`` (directories searched recursively, or result.json files).

    Rows are built as dicts and turned into a DataFrame once (10,000 records: reading the JSON is the cost).
    Raises ConfigError when a path does not exist or no result.json is found.
    """
    paths = list(paths)
    runs = find_run_dirs(paths)
    if not runs:
        raise ConfigError(f"no {RECORD} found under {', '.join(map(str, paths))}")
    rows = [row(d, rec, runs[d]) if isinstance(rec, dict) else unreadable_row(d, runs[d])
            for d, rec in read_records(sorted(runs))]
    df = pd.DataFrame.from_records(rows)
    front = [c for c in _FRONT if c in df.columns]
    return df[front + [c for c in df.columns if c not in _FRONT]]


_FRONT = ["run_dir", "status", "loss", "reg", "model", "data", "seed", "g_steps", "wall_time_s", "g_steps_per_s",
          "diverged_step", "primary", "score", "setting", "protocol_id"]


def arrow_safe(df: pd.DataFrame) -> pd.DataFrame:
    """A copy Parquet can store: object columns mixing types (a config key that is a number in one run and a
    string in another) become strings; missing values stay missing."""
    out = df.copy()
    for col in out.columns[out.dtypes == object]:
        kind = pd.api.types.infer_dtype(out[col], skipna=True)
        if kind not in ("string", "empty", "boolean", "integer", "floating"):
            out[col] = out[col].map(lambda v: v if v is None or (isinstance(v, float) and math.isnan(v))
                                    else str(v))
    return out
