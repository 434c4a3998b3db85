"""trainer.compile on vs off: seconds per generator step of ganbench's loop, side by side in one process.

Each round trains a fresh module of the same config twice, uncompiled and compiled (``CompileNetworks``, the
callback ``trainer.compile=true`` adds), and times the steps after the warm-up (compilation happens in the trial
before the first step and in the warm-up steps); the ratio compiled / uncompiled is reported per round, so a
shared machine's drift shows as spread, not as a speed-up. Compilation time is reported separately.

    python scripts/bench_compile.py [--cases sndcgan biggan] [--rounds 3] [--steps 6] [--backend inductor]
"""

from __future__ import annotations

import argparse
import statistics
import time

import lightning as L
import torch

from ganbench.build import build
from ganbench.compile import CompileNetworks
from ganbench.train import quiet_lightning

from bench_train import StepTimer, compose_cfg, per_step

CASES = {
    "sndcgan": ["model=sndcgan", "data=polygons", "data.resolution=32", "optim.batch_size=32", "loss=ns"],
    "biggan": ["model=biggan", "family=conditional", "data=polygons", "data.resolution=32", "optim.batch_size=32",
               "loss=hinge", "model.generator.ch=32", "model.discriminator.ch=32"],
}
COMMON = ["reg=none", "metrics=none", "ema.decay=0"]


def timed_fit(overrides: list[str], warmup: int, steps: int, backend: str | None) -> tuple[float, float]:
    """(seconds per G step after the warm-up, seconds until the first step: the compile trial)."""
    torch.manual_seed(0)
    torch._dynamo.reset()
    module, dm, _ = build(compose_cfg(overrides))
    timer = StepTimer(warmup)
    callbacks = [timer] if backend is None else [CompileNetworks(backend), timer]
    start = time.perf_counter()

    class FirstStep(L.Callback):
        def on_train_batch_start(self, *args):
            self.at = getattr(self, "at", time.perf_counter() - start)

    first = FirstStep()
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=(warmup + steps) * (module.n_disc + 1),
                        max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[*callbacks, first], num_sanity_val_steps=0)
    trainer.fit(module, datamodule=dm)
    return per_step(timer.ticks), first.at


def main():
    quiet_lightning()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--backend", default="inductor")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, backend {args.backend}")
    for name in args.cases:
        overrides = [*CASES[name], *COMMON]
        ratios, compile_s = [], []
        for r in range(args.rounds):
            plain, plain_first = timed_fit(overrides, args.warmup, args.steps, None)
            compiled, compiled_first = timed_fit(overrides, args.warmup, args.steps, args.backend)
            ratios.append(compiled / plain)
            compile_s.append(compiled_first - plain_first)
            print(f"{name} round {r}: uncompiled {plain * 1e3:.1f} ms/G step, compiled {compiled * 1e3:.1f} "
                  f"ms/G step, ratio {ratios[-1]:.3f}, compile trial {compile_s[-1]:.1f} s")
        print(f"{name}: compiled / uncompiled median {statistics.median(ratios):.3f} "
              f"(min {min(ratios):.3f}, max {max(ratios):.3f}; {args.rounds} rounds), compile trial median "
              f"{statistics.median(compile_s):.1f} s")


if __name__ == "__main__":
    main()
