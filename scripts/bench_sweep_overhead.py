"""Per-run overhead of a sweep (launch, compose, build, record) beyond training and evaluation, with 1-step runs.

Runs two sweeps of the toy MLP with the default (basic) launcher, side by side in this machine's state: one of 1 job
and one of N jobs, each a single generator step. The per-run overhead is (T_N - T_1) / (N - 1) minus the mean
training + evaluation time the runs record in result.json; the difference of the two sweeps cancels the one-off
interpreter and import start-up.

    python scripts/bench_sweep_overhead.py [--jobs 9]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOY = ["model=mlp", "data=ring8", "model.generator.hidden=32", "model.discriminator.hidden=32", "logger=[csv]",
       "metrics=none", "samples.every=0", "optim.g_steps=1", "optim.batch_size=32"]


def sweep(seeds: list[int], where: Path) -> tuple[float, list[dict]]:
    cmd = [sys.executable, "-m", "ganbench.train", "-m", *TOY, f"seed={','.join(map(str, seeds))}",
           f"hydra.sweep.dir={where}"]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "WANDB_MODE": "offline"})
    seconds = time.perf_counter() - start
    return seconds, [json.loads(p.read_text()) for p in where.rglob("result.json")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=9)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        one, _ = sweep([0], Path(tmp) / "one")
        many, records = sweep(list(range(args.jobs)), Path(tmp) / "many")
    work = sum(r["train_time_s"] + r.get("eval_time_s", 0.0) for r in records) / len(records)
    wall = sum(r["wall_time_s"] for r in records) / len(records)
    per_run = (many - one) / (args.jobs - 1)
    print(f"sweep of 1 job: {one:.2f} s; sweep of {args.jobs} jobs: {many:.2f} s (1 generator step each)")
    print(f"per added run: {per_run:.2f} s, of which training + evaluation {work:.2f} s (inside the job's own "
          f"record: {wall:.2f} s wall)")
    print(f"overhead per run beyond training: {per_run - work:.2f} s (target <= 2 s)")


if __name__ == "__main__":
    main()
