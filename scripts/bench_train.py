"""Framework overhead of ganbench's training loop, measured side by side with a minimal PyTorch loop.

Both loops train copies of the same networks (same init) with the same loss, Adam settings, batch size, n_disc and
data loader; rounds alternate between them in one process (ABBA) and each round's pair of timings gives a ratio:
the median of those paired ratios is reported with their range (a pair runs back to back, so load that drifts over
minutes cancels). The plain loop has no EMA: with EMA on, ganbench's EMA update is part of its cost. FLOPs of one
iteration are counted with torch.utils.flop_counter and compared with this machine's dense fp32 matmul throughput,
measured here.

    python scripts/bench_train.py [--cases sndcgan mlp] [--steps 4] [--rounds 8] [--ema off on]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import lightning as L
import torch
from hydra import compose, initialize_config_dir

from ganbench.config import CONF_DIR
from ganbench.build import build
from ganbench.train import quiet_lightning

CASES = {
    # name: (overrides, warm-up steps, measured steps per round)
    "sndcgan": (["model=sndcgan", "data=polygons", "data.resolution=32", "optim.batch_size=64", "loss=ns",
                 "reg=none", "metrics=none"], 2, 4),
    "mlp": (["model=mlp", "data=ring8", "optim.batch_size=64", "loss=ns", "reg=none", "metrics=none"], 50, 200),
}


def compose_cfg(overrides):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


class StepTimer(L.Callback):
    def __init__(self, warmup: int):
        self.warmup, self.t0, self.steps = warmup, None, 0

    def on_train_batch_end(self, trainer, pl_module, *args):
        if pl_module.did_g_step:
            if pl_module.g_step == self.warmup:
                self.t0 = time.perf_counter()
            elif pl_module.g_step > self.warmup:
                self.steps += 1
                self.seconds = time.perf_counter() - self.t0


def time_ganbench(module, dm, warmup, steps, n_disc) -> float:
    timer = StepTimer(warmup)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=(warmup + steps) * (n_disc + 1), max_epochs=-1,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[timer], num_sanity_val_steps=0)
    trainer.fit(module, datamodule=dm)
    return timer.seconds / timer.steps


def time_plain(G, D, loss, loader, z_dim, lr, betas, n_disc, warmup, steps) -> float:
    """The loop a researcher writes by hand."""
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=betas)
    it, g_steps, t0 = iter(loader), 0, None
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
        if g_steps == warmup:
            t0 = time.perf_counter()
    return (time.perf_counter() - t0) / steps


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


def bench(name: str, rounds: int, steps_override: int | None, ema: bool) -> dict:
    overrides, warmup, steps = CASES[name]
    steps = steps_override or steps
    cfg = compose_cfg([*overrides, f"ema.decay={0.999 if ema else 0}", "log_every=10"])
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
        ours.append(time_ganbench(m, dm, warmup, steps, o.n_disc))

    def run_plain():
        G, D = copy.deepcopy(G0), copy.deepcopy(D0)
        plain.append(time_plain(G, D, module.loss, dm.train_dataloader(), o.z_dim, o.lr, (o.beta1, o.beta2),
                                o.n_disc, warmup, steps))

    for r in range(rounds):  # ABBA order: neither loop always runs first (warm caches, load drifting over time)
        for fn in ((run_ours, run_plain) if r % 2 == 0 else (run_plain, run_ours)):
            fn()
    real = dm.real_samples(o.batch_size)
    flops = iteration_flops(copy.deepcopy(G0), copy.deepcopy(D0), module.loss, real, o.z_dim)
    t_ours, t_plain = statistics.median(ours), statistics.median(plain)
    paired = [a / b for a, b in zip(ours, plain)]
    return {"case": name, "ema": ema, "ganbench_s_per_g_step": t_ours, "plain_s_per_g_step": t_plain,
            "ratio": statistics.median(paired), "ratio_range": (min(paired), max(paired)),
            "g_steps_per_s": 1 / t_ours, "gflop_per_iteration": flops / 1e9, "achieved_gflops": flops / t_ours / 1e9}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=None, help="measured generator steps per round")
    ap.add_argument("--ema", type=lambda v: v.lower() in ("1", "true", "on"), nargs="+", default=[False, True],
                    help="EMA settings to measure (default: off and on)")
    args = ap.parse_args()
    quiet_lightning()
    torch.manual_seed(0)
    peak = matmul_peak()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; dense fp32 matmul peak here: "
          f"{peak / 1e9:.1f} GFLOP/s")
    print(f"{'case':8} {'ema':4} {'ganbench s/it':>13} {'plain s/it':>11} {'ratio':>6} {'G it/s':>7} "
          f"{'GFLOP/it':>9} {'GFLOP/s':>8} {'of peak':>7}  paired-ratio range")
    for name in args.cases:
        for ema in args.ema:
            r = bench(name, args.rounds, args.steps, ema)
            print(f"{r['case']:8} {str(ema):4} {r['ganbench_s_per_g_step']:13.5f} {r['plain_s_per_g_step']:11.5f} "
                  f"{r['ratio']:6.3f} {r['g_steps_per_s']:7.2f} {r['gflop_per_iteration']:9.2f} "
                  f"{r['achieved_gflops']:8.1f} {r['achieved_gflops'] * 1e9 / peak:7.1%}  "
                  f"{r['ratio_range'][0]:.3f}-{r['ratio_range'][1]:.3f}")


if __name__ == "__main__":
    main()
