"""Framework overhead of ganbench's training loop, measured side by side with a minimal PyTorch loop.

Both loops train copies of the same networks (same init) with the same loss, Adam settings, batch size, n_disc and
data loader; rounds alternate between them in one process (ABBA). ganbench's runs on a trainer as ``ganbench.train``
builds it (its callbacks and profiler), with checkpoints, sample grids and metrics off. Two estimates of ganbench /
plain are reported:

- ``ratio``: the median of the paired ratios of whole rounds (a pair runs back to back, so load that drifts over
  minutes cancels), with their range;
- ``block ratio``: the ratio of the medians of all blocks of ``log_every`` consecutive G steps in all rounds (every
  block holds one logging step, so ganbench's periodic work is in each), robust to bursts of other load shorter than
  a round, which on a shared machine move single rounds by 20-40%.

The plain loop has no EMA: with EMA on, ganbench's EMA update is part of its cost. Both use torch's foreach Adam and
run without Lightning's PYTORCH_NVML_BASED_CUDA_CHECK (as a plain script: ``drop_nvml_cuda_check``). FLOPs of one
iteration are counted with torch.utils.flop_counter and compared with this machine's dense fp32 matmul throughput,
measured here.

    python scripts/bench_train.py [--cases sndcgan mlp] [--steps 4] [--rounds 8] [--ema off on] [--override ...]

``--override`` adds Hydra overrides to ganbench's config only (e.g. ``+optim.optimizer.foreach=false``: ganbench
with torch's per-tensor Adam against the plain loop's foreach one, which shows what foreach saves).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from ganbench.build import build, make_callbacks
from ganbench.callbacks import NoProfiler
from ganbench.config import CONF_DIR
from ganbench.families.optimizers import drop_nvml_cuda_check
from ganbench.train import quiet_lightning

CASES = {
    # name: (overrides, warm-up steps, measured steps per round, G steps per block = log_every)
    "sndcgan": (["model=sndcgan", "data=polygons", "data.resolution=32", "optim.batch_size=64", "loss=ns",
                 "reg=none", "metrics=none"], 2, 4, 1),
    "mlp": (["model=mlp", "data=ring8", "optim.batch_size=64", "loss=ns", "reg=none", "metrics=none"], 50, 200, 10),
}

#: what ``make_callbacks`` reads: checkpoints and sample grids off (``every: 0``), the progress log's total
RUN_CFG = OmegaConf.create({"checkpoint": {"every": 0, "keep_last": False}, "samples": {"every": 0},
                            "optim": {"g_steps": 10 ** 9}})


def compose_cfg(overrides):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


class StepTimer(L.Callback):
    """The clock at the end of G step ``warmup`` and of every G step after it."""

    def __init__(self, warmup: int):
        self.warmup, self.ticks = warmup, []

    def on_train_batch_end(self, trainer, pl_module, *args):
        if pl_module.did_g_step and pl_module.g_step >= self.warmup:
            self.ticks.append(time.perf_counter())


def ganbench_ticks(module, dm, warmup, steps, n_disc) -> list[float]:
    """The clock after G step ``warmup`` and every one after it, on a trainer as ``ganbench.train`` makes it: its
    callbacks (``make_callbacks``, as under nohup: a log line a minute, not the Rich bar) with the periodic work
    (checkpoints, sample grids, metrics) off, which has benchmarks of its own, and its profiler."""
    timer = StepTimer(warmup)
    with tempfile.TemporaryDirectory() as run_dir:
        callbacks = make_callbacks(RUN_CFG, Path(run_dir), evaluator=None, terminal=False)
        trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=(warmup + steps) * (n_disc + 1), max_epochs=-1,
                            logger=False, enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, callbacks=[*callbacks, timer], num_sanity_val_steps=0,
                            profiler=NoProfiler(), use_distributed_sampler=False)
        trainer.fit(module, datamodule=dm)
    return timer.ticks


def time_ganbench(module, dm, warmup, steps, n_disc) -> float:
    """Seconds per G step of ganbench's loop after ``warmup`` G steps."""
    return per_step(ganbench_ticks(module, dm, warmup, steps, n_disc))


def plain_ticks(G, D, loss, loader, z_dim, lr, betas, n_disc, warmup, steps) -> list[float]:
    """The loop a researcher writes by hand; the clock at the end of G step ``warmup`` and every one after it."""
    # foreach, as ganbench asks torch for (families/optimizers.py): the ratio measures the loop, not the optimizer
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=betas, foreach=True)
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=betas, foreach=True)
    it, g_steps, ticks = iter(loader), 0, []
    while g_steps < warmup + steps:
        for _ in range(n_disc):
            try:
                real = next(it)[0]
            except StopIteration:
                it = iter(loader)
                real = next(it)[0]
            with torch.no_grad():
                fake = G(torch.randn(real.shape[0], z_dim))
            logits = D(torch.cat([real, fake]))
            loss_d = loss.discriminator(*logits.split(real.shape[0]))
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        D.requires_grad_(False)  # as ganbench does: G's step needs no gradient for D's weights
        loss_g = loss.generator(D(G(torch.randn(real.shape[0], z_dim))))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        D.requires_grad_(True)
        g_steps += 1
        if g_steps >= warmup:
            ticks.append(time.perf_counter())
    return ticks


def time_plain(*args) -> float:
    """Seconds per G step of the plain loop (``plain_ticks``'s arguments)."""
    return per_step(plain_ticks(*args))


def per_step(ticks: list[float]) -> float:
    return (ticks[-1] - ticks[0]) / (len(ticks) - 1)


def blocks(ticks: list[float], size: int) -> list[float]:
    """Seconds per G step of each block of ``size`` consecutive G steps."""
    return [(ticks[i + size] - ticks[i]) / size for i in range(0, len(ticks) - size, size)]


def iteration_flops(G, D, loss, real, z_dim) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        with torch.no_grad():
            fake = G(torch.randn(real.shape[0], z_dim))
        loss.discriminator(*D(torch.cat([real, fake])).split(real.shape[0])).backward()
        loss.generator(D(G(torch.randn(real.shape[0], z_dim)))).backward()
    return counter.get_total_flops()


def matmul_peak(n: int = 2048, reps: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n ** 3 * reps / (time.perf_counter() - t)


def bench(name: str, rounds: int, steps_override: int | None, ema: bool, extra: list[str] = ()) -> dict:
    overrides, warmup, steps, block = CASES[name]
    steps = steps_override or steps
    cfg = compose_cfg([*overrides, f"ema.decay={0.999 if ema else 0}", f"log_every={block}", *extra])
    L.seed_everything(0, verbose=False)
    module, dm, _ = build(cfg)
    dm.setup()
    G0, D0 = copy.deepcopy(module.G), copy.deepcopy(module.D)
    o = cfg.optim
    ours, plain = [], []
    def run_ours():
        m, _, _ = build(cfg)
        m.G.load_state_dict(G0.state_dict())
        m.D.load_state_dict(D0.state_dict())
        ours.append(ganbench_ticks(m, dm, warmup, steps, o.n_disc))

    def run_plain():
        G, D = copy.deepcopy(G0), copy.deepcopy(D0)
        plain.append(plain_ticks(G, D, module.loss, dm.train_dataloader(), o.z_dim, o.lr, (o.beta1, o.beta2),
                                o.n_disc, warmup, steps))

    for r in range(rounds):  # ABBA order: neither loop always runs first (warm caches, load drifting over time)
        for fn in ((run_ours, run_plain) if r % 2 == 0 else (run_plain, run_ours)):
            fn()
    real = dm.real_samples(o.batch_size)
    flops = iteration_flops(copy.deepcopy(G0), copy.deepcopy(D0), module.loss, real, o.z_dim)
    t_ours, t_plain = statistics.median(map(per_step, ours)), statistics.median(map(per_step, plain))
    paired = [per_step(a) / per_step(b) for a, b in zip(ours, plain)]
    b_ours, b_plain = ([b for ticks in runs for b in blocks(ticks, block)] for runs in (ours, plain))
    return {"case": name, "ema": ema, "ganbench_s_per_g_step": t_ours, "plain_s_per_g_step": t_plain,
            "ratio": statistics.median(paired), "ratio_range": (min(paired), max(paired)),
            "block_ratio": statistics.median(b_ours) / statistics.median(b_plain), "blocks": len(b_ours),
            "g_steps_per_s": 1 / t_ours, "gflop_per_iteration": flops / 1e9, "achieved_gflops": flops / t_ours / 1e9}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=None, help="measured generator steps per round")
    ap.add_argument("--override", nargs="*", default=[], help="Hydra overrides of ganbench's config only")
    ap.add_argument("--ema", type=lambda v: v.lower() in ("1", "true", "on"), nargs="+", default=[False, True],
                    help="EMA settings to measure (default: off and on)")
    args = ap.parse_args()
    quiet_lightning()
    drop_nvml_cuda_check()  # both loops as a plain PyTorch script runs (no Lightning import)
    torch.manual_seed(0)
    peak = matmul_peak()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; dense fp32 matmul peak here: "
          f"{peak / 1e9:.1f} GFLOP/s")
    print(f"{'case':8} {'ema':4} {'ganbench s/it':>13} {'plain s/it':>11} {'ratio':>6} {'G it/s':>7} "
          f"{'GFLOP/it':>9} {'GFLOP/s':>8} {'of peak':>7}  paired-ratio range  block ratio (blocks)")
    for name in args.cases:
        for ema in args.ema:
            r = bench(name, args.rounds, args.steps, ema, args.override)
            print(f"{r['case']:8} {str(ema):4} {r['ganbench_s_per_g_step']:13.5f} {r['plain_s_per_g_step']:11.5f} "
                  f"{r['ratio']:6.3f} {r['g_steps_per_s']:7.2f} {r['gflop_per_iteration']:9.2f} "
                  f"{r['achieved_gflops']:8.1f} {r['achieved_gflops'] * 1e9 / peak:7.1%}  "
                  f"{r['ratio_range'][0]:.3f}-{r['ratio_range'][1]:.3f}        {r['block_ratio']:.3f} ({r['blocks']})")


if __name__ == "__main__":
    main()
