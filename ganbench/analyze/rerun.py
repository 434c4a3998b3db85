"""Re-run the best setting of every cell with more seeds: the last phase of Lucic et al. 2018 (the best of the random
search, trained again with 50 seeds, shows how much of a model's score is luck).

``python -m ganbench.analyze DIR --rerun-best 50`` writes ``rerun_best.sh``: per cell, one sweep command made of the
best run's own overrides (recorded in its result.json: the experiment, model, search sample ...) with its seed
replaced by the seeds the setting lacks to have 50 (the search's seed 0 plus ``seed=range(1,50)``). The re-runs go
to ``<sweep dir>_seeds`` under ``name=<name>_seeds``; analysed together with the search, they join the best
setting (same hyperparameters), so its seed distribution is the "seeds of the best setting" figure.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np
import pandas as pd

from ganbench import results
from ganbench.analyze.table import CELL

#: overrides the re-run replaces (the seed) or sets itself (the name)
REPLACED = ("seed", "name")


def override_key(override: str) -> str:
    """``+a.b=1`` -> ``a.b``; ``hydra/launcher=slurm`` -> ``hydra/launcher`` (Hydra's own override parser)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_override(override).key_or_group


def new_seeds(have: set[int], total: int) -> list[int]:
    """The smallest seeds >= 0 not in ``have`` that bring it to ``total`` seeds (none if it has enough)."""
    out, seed = [], 0
    while len(have) + len(out) < total:
        if seed not in have:
            out.append(seed)
        seed += 1
    return out


def seed_override(seeds: list[int]) -> str:
    """``seed=range(a,b)`` for consecutive seeds, else ``seed=a,b,c``."""
    if len(seeds) > 1 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"seed=range({seeds[0]},{seeds[-1] + 1})"
    return "seed=" + ",".join(str(s) for s in seeds)


def rerun_command(record: dict, seeds: list[int]) -> list[str]:
    """The argv of a sweep re-running ``record``'s setting with ``seeds``."""
    run_dir = Path(record["run_dir"])
    name = (record.get("config") or {}).get("name") or run_dir.parent.name
    kept = [o for o in record.get("overrides", []) if override_key(o) not in REPLACED]
    return ["python", "-m", "ganbench.train", "-m", *kept, f"name={name}_seeds", seed_override(seeds),
            "hydra/sweeper=basic", f"hydra.sweep.dir={run_dir.parent}_seeds"]


def best_settings(settings: pd.DataFrame, runs: pd.DataFrame) -> list[tuple[tuple, pd.Series, Path]]:
    """Per cell with a finite score: (cell, its best setting's row, one run directory of that setting)."""
    finite = settings[np.isfinite(settings["score"].to_numpy(float))]
    out = []
    for key, part in finite.groupby(CELL, sort=True):
        best = part.loc[part["score"].idxmin()]
        run_dir = Path(runs.loc[runs["setting"] == best["setting"], "run_dir"].iloc[0])
        out.append((key, best, run_dir))
    return out


def write_script(settings: pd.DataFrame, runs: pd.DataFrame, seeds: int, path: Path, metric: str) -> list[str]:
    """Write ``path`` (an executable bash script, one sweep per cell); return its commands."""
    lines = ["#!/usr/bin/env bash",
             f"# The best setting of every cell brought to {seeds} seeds (Lucic et al. 2018: 50); written by",
             "# python -m ganbench.analyze. Each command is one sweep; run them anywhere (paths are absolute).",
             "set -e"]
    commands = []
    for key, best, run_dir in best_settings(settings, runs):
        record = results.read_result(run_dir)
        cell = ", ".join(f"{k}={v}" for k, v in zip(CELL, key))
        if not record or "overrides" not in record:
            lines.append(f"# {cell}: {run_dir}/result.json has no overrides; re-run it by hand")
            continue
        have = {int(x) for x in str(best.get("seeds") or "").split()}
        todo = new_seeds(have, seeds)
        seeds_now = " ".join(map(str, sorted(have)))
        head = f"# {cell}: best {metric} {best['score']:.4g} ({run_dir.name}; seeds {seeds_now})"
        if not todo:
            lines.append(f"{head}: already has {len(have)} seeds")
            continue
        command = shlex.join(rerun_command(record, todo))
        lines += [head, command]
        commands.append(command)
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o755)
    return commands
