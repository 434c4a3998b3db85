"""The run record: ``result.json`` in every run directory, written atomically.

Schema (version 1):
    status          running | completed | diverged | failed | interrupted
    config          the resolved config;  seed
    overrides       the command-line overrides of this job;  choices: the config-group options picked
    g_steps         generator steps done;  g_steps_target: the requested length
    metrics         {"final": {name: value}, "best": {name: value}, "final_step", "best_step", "protocol"}
    diverged        null, or {"g_step", "d_step", "non_finite": {term: value}}
    error           null, or the one-line error of a failed run
    wall_time_s, train_time_s, eval_time_s, g_steps_per_s
    versions        python and package versions;  git_commit: the ganbench checkout's commit, if any
    files           paths (relative to the run directory) of checkpoints and sample grids
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
STATUSES = ("running", "completed", "diverged", "failed", "interrupted")
FINISHED = ("completed", "diverged")  # statuses a rerun leaves untouched
PACKAGES = ("torch", "torchvision", "lightning", "hydra-core", "omegaconf", "torchmetrics", "torch-fidelity",
            "wandb", "numpy", "ganbench")


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write JSON to a temporary file in the same directory, fsync it, then rename it over ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=False, default=_jsonable)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def read_result(run_dir: str | Path) -> dict | None:
    """The record of a run directory, or None if it has none (or an unreadable one)."""
    try:
        return json.loads((Path(run_dir) / "result.json").read_text())
    except (OSError, ValueError):
        return None


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def git_commit() -> str | None:
    """The commit of the ganbench source tree (with '-dirty' if it has changes), when it is a git checkout."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def objective(record: dict | None, key: str | None = None, penalty: float = 1e6) -> float:
    """The value a sweeper minimises: the best primary metric; ``penalty`` for diverged or failed runs (a NaN
    would make Optuna drop the trial instead of learning that the region is bad)."""
    if not record or record.get("status") not in ("completed", "interrupted"):
        return penalty
    best = record.get("metrics", {}).get("best", {})
    key = key or record.get("metrics", {}).get("primary")
    value = best.get(key) if key else None
    return float(value) if value is not None else penalty
