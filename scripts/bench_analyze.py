"""End-to-end time of ``ganbench.analyze`` on a synthetic Kurach-style study of 10,000 run records.

The study: 3 losses x 9 regularizers x 2 models on one data set, random hyperparameter settings (lr, beta1,
beta2, n_disc, reg weight) with 5 seeds each; some runs diverge (more for high learning rates and for WGAN
without a penalty), a few fail. Every run directory is realistic in shape: a full result.json (config,
protocol, metric history), checkpoints/ and a metrics.csv. Timed: collect (reading every result.json),
the statistics, every figure (PNG + PDF), the tables and report.md. Target: <= 30 s on 2 CPU cores.

    python scripts/bench_analyze.py [--runs 10000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from ganbench.analyze import analyze, build_study, draw_figures, write_tables
from ganbench.analyze import report as report_mod
from ganbench.analyze.table import collect

TARGET_S = 30.0
LOSSES = {"ns": "NonSaturating", "ls": "LeastSquares", "wgan": "Wasserstein"}
REGS = {  # label -> reg mapping of the config
    "none": {"none": {"_target_": "ganbench.regularizers.NoRegularizer"}},
    "gp": {"gp": {"_target_": "ganbench.regularizers.GradientPenalty", "weight": 10.0}},
    "dragan": {"dragan": {"_target_": "ganbench.regularizers.DRAGAN", "weight": 1.0, "noise": 1.0}},
    "sn": {"sn": {"_target_": "ganbench.regularizers.SpectralNorm", "generator": False, "power_iterations": 1}},
    "ln": {"ln": {"_target_": "ganbench.regularizers.LayerNormD"}},
    "bn": {"bn": {"_target_": "ganbench.regularizers.BatchNormD"}},
    "l2": {"l2": {"_target_": "ganbench.regularizers.L2", "weight": 0.01, "reduction": "mean"}},
    "r1": {"r1": {"_target_": "ganbench.regularizers.R1", "gamma": 10.0, "interval": 1}},
    "gp+sn": {"gp": {"_target_": "ganbench.regularizers.GradientPenalty", "weight": 10.0},
              "sn": {"_target_": "ganbench.regularizers.SpectralNorm", "generator": False, "power_iterations": 1}},
}
MODELS = ("dcgan", "sndcgan")
SEEDS = 5
METRIC = "fid/inception_test10k"
PROTOCOL = {"extractor": "inception", "dataset": "cifar10", "reference_split": "test", "num_real": 10000,
            "num_fake": 10000, "seed": 2020, "weights_sha256": "b8ba2a1d9bcf3c38", "resize": 299,
            "kid_subsets": 100, "kid_subset_size": 1000, "is_splits": 10, "pr_k": 3}


def config(model: str, loss: str, reg: str, hp: dict, seed: int) -> dict:
    """A resolved config shaped like ganbench.train's."""
    return {
        "model": {"name": model, "generator": {"_target_": f"ganbench.nets.{model}.Generator", "width": 64},
                  "discriminator": {"_target_": f"ganbench.nets.{model}.Discriminator", "width": 64}},
        "loss": {"_target_": f"ganbench.losses.{LOSSES[loss]}"},
        "reg": {k: dict(v, **({"weight": hp["reg_weight"]} if "weight" in v else {})) for k, v in REGS[reg].items()},
        "augment": {"_target_": "ganbench.augment.NoAugment"},
        "data": {"_target_": "ganbench.data.cifar.CIFAR10", "resolution": 32, "num_workers": 4,
                 "root": "/data/cifar10", "download": False},
        "optim": {"lr": hp["lr"], "lr_g": None, "lr_d": None, "beta1": hp["beta1"], "beta2": hp["beta2"],
                  "n_disc": hp["n_disc"], "batch_size": 64, "z_dim": 128, "prior": "normal", "g_steps": 100000},
        "trainer": {"accelerator": "gpu", "devices": 1, "strategy": "auto", "precision": "32-true",
                    "deterministic": True},
        "logger": {"csv": {"_target_": "ganbench.loggers.csv_logger"}},
        "metrics": {"_target_": "ganbench.metrics.Evaluator", "extractor": "auto", "split": "test",
                    "num_real": 10000, "num_fake": 10000, "every": 10000, "batch_size": 250, "kid_subsets": 100,
                    "kid_subset_size": 1000, "is_splits": 10, "pr_k": 3, "seed": 2020, "inception_weights": None,
                    "cache_dir": "~/.cache/ganbench/metrics", "device": "auto"},
        "name": "kurach", "seed": seed, "resume": True, "ema": {"decay": 0.999},
        "checkpoint": {"every": 10000, "keep_last": True}, "samples": {"every": 10000, "num": 64},
        "log_every": 100, "stop_after": None,
    }


def metric_values(fid: float) -> dict:
    return {"fid/inception_test10k": fid, "kid_mean/inception_test10k": fid / 10, "kid_std/inception_test10k": 0.3,
            "is_mean/inception_test10k": 8 - fid / 20, "is_std/inception_test10k": 0.1,
            "precision/inception_test10k": 0.6, "recall/inception_test10k": 0.5}


def metrics_block(fid: float, rng: np.random.Generator) -> dict:
    history = [{"g_step": s, **metric_values(fid * (1 + 2 / (i + 1)))} for i, s in enumerate(range(10000, 100001, 10000))]
    final = fid * float(rng.uniform(1.0, 1.1))
    return {"primary": METRIC, "protocol": PROTOCOL, "final_step": 100000, "final": metric_values(final),
            "best_step": 90000, "best": metric_values(fid), "history": history}


def record(run_dir: Path, model: str, loss: str, reg: str, hp: dict, seed: int, rng: np.random.Generator) -> dict:
    """A result.json of one run: diverged, failed or completed with an FID that depends on the cell and lr."""
    base = {"ns": 30.0, "ls": 33.0, "wgan": 40.0}[loss] * {"none": 1.2, "gp": 0.95, "sn": 0.85, "gp+sn": 0.9}.get(
        reg, 1.0) * (0.9 if model == "sndcgan" else 1.0)
    fid = base * (1 + 3 * abs(math.log10(hp["lr"] / 2e-4))) * (1 + 0.3 * hp["beta1"]) * math.exp(rng.normal(0, 0.1))
    p_div = 0.03 + (0.25 if hp["lr"] > 5e-4 else 0) + (0.2 if loss == "wgan" and reg in ("none", "bn") else 0)
    draw = rng.uniform()
    status = "diverged" if draw < p_div else "failed" if draw < p_div + 0.01 else "completed"
    rec = {"schema_version": 1, "status": status, "run_dir": str(run_dir), "started": "2026-11-23T09:45:44+00:00",
           "overrides": [f"loss={loss}", f"reg={reg}", f"model={model}", f"optim.lr={hp['lr']}", f"seed={seed}"],
           "choices": {"model": model, "loss": loss, "data": "cifar10", "optim": "adam", "metrics": "kurach",
                       "trainer": "gpu", "augment": "none"},
           "seed": seed, "g_steps_target": 100000, "g_steps": 100000, "config": config(model, loss, reg, hp, seed),
           "diverged": None, "error": None, "versions": {"python": "3.11.7", "ganbench": "0.1.0"},
           "git_commit": None, "wall_time_s": 3600.0, "train_time_s": 3400.0, "g_steps_per_s": 29.4,
           "eval_time_s": 200.0,
           "files": {"last_ckpt": "checkpoints/last.ckpt", "best_ckpt": "checkpoints/best.ckpt", "samples": []}}
    if status == "diverged":
        step = int(rng.integers(10, 5000))
        rec.update(g_steps=step, diverged={"g_step": step, "d_step": step * hp["n_disc"],
                                           "non_finite": {"loss/d": float("nan")}})
    elif status == "failed":
        rec.update(g_steps=0, error="CUDA out of memory")
    if status == "completed":
        rec["metrics"] = metrics_block(fid, rng)
    return rec


def generate(root: Path, n_runs: int, seed: int = 0) -> int:
    """Write ``n_runs`` run directories under ``root`` (cells x settings x 5 seeds); returns the count."""
    rng = np.random.default_rng(seed)
    cells = [(m, loss, r) for m in MODELS for loss in LOSSES for r in REGS]
    per_cell = math.ceil(n_runs / (len(cells) * SEEDS))
    written = 0
    for s in range(per_cell):
        for model, loss, reg in cells:
            hp = {"lr": float(10 ** rng.uniform(-5, -2.5)), "beta1": float(rng.choice([0.0, 0.5, 0.9])),
                  "beta2": float(rng.choice([0.9, 0.999])), "n_disc": int(rng.choice([1, 5])),
                  "reg_weight": float(10 ** rng.uniform(-1, 2))}
            for seed_ in range(SEEDS):
                if written == n_runs:
                    return written
                run_dir = root / f"model={model},loss={loss},reg={reg},s={s},seed={seed_}"
                (run_dir / "checkpoints").mkdir(parents=True)
                rec = record(run_dir, model, loss, reg, hp, seed_, rng)
                (run_dir / "result.json").write_text(json.dumps(rec, indent=2))
                (run_dir / "metrics.csv").write_text("step,loss/d,loss/g\n" * 20)
                if rec["status"] != "failed":
                    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"\0" * 2048)
                written += 1
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10000)
    ap.add_argument("--keep", type=Path, help="write the study here and keep it (default: a temporary directory)")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_analyze_"))
    sweep = root / "sweep"
    try:
        t0 = time.perf_counter()
        n = generate(sweep, args.runs)
        print(f"generated {n} run records in {time.perf_counter() - t0:.1f} s under {sweep}")
        # the breakdown (each step once), then the end-to-end command path
        times = {}
        t = time.perf_counter()
        runs = collect([sweep])
        times["collect"] = time.perf_counter() - t
        t = time.perf_counter()
        study = build_study(runs)
        times["stats"] = time.perf_counter() - t
        t = time.perf_counter()
        out = root / "breakdown"
        study.figures = draw_figures(study, out / "figures")
        times["figures"] = time.perf_counter() - t
        t = time.perf_counter()
        write_tables(study, out)
        (out / "report.md").write_text(report_mod.render(study, out, [sweep]))
        times["tables+report"] = time.perf_counter() - t
        print("breakdown: " + ", ".join(f"{k} {v:.2f} s" for k, v in times.items()))
        t = time.perf_counter()
        study = analyze([sweep], out=root / "analysis")
        total = time.perf_counter() - t
        print(report_mod.summary_line(study, root / "analysis"))
        verdict = "OK" if total <= TARGET_S else "SLOW"
        print(f"end to end (collect + stats + figures + tables + report): {total:.2f} s for {len(study.runs)} "
              f"runs on {len(os.sched_getaffinity(0))} CPU cores; target <= {TARGET_S:.0f} s: {verdict}")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
