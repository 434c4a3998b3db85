"""model=sagan, biggan and stylegan2 at 32 px: a ganbench training step vs a plain PyTorch loop of the same networks.

Both loops train copies of the same networks as build() makes them (spectral norm, orthogonal init, BigGAN's
projection D from family=conditional) with the hinge loss (stylegan2: the logistic NS loss, no R1/PL), Adam, the same batch size and data loader; rounds
alternate (ABBA) and the median seconds per generator step are compared. EMA is off in both. The plain loops are
bench_train's (unconditional: sagan, stylegan2) and bench_families' (conditional: biggan). CPU, batch 16, small widths.

    python scripts/bench_models.py [--cases sagan biggan stylegan2] [--rounds 4]

About 0.3 s (sagan) and 0.5 s (biggan) per generator step on 2 quiet CPU cores; --rounds 4 takes about 3 minutes.
Run it on a quiet machine: other processes show up as spread between rounds.
"""

from __future__ import annotations

from bench_families import report, side_by_side, time_plain as time_plain_conditional
from bench_train import compose_cfg, time_ganbench, time_plain

BASE = ["data=polygons", "data.resolution=32", "optim.batch_size=16", "reg=none", "metrics=none", "ema.decay=0",
        "log_every=10"]
CASES = {
    # name: (overrides, warm-up steps, measured steps per round); G 64 channels, D 32 (sagan) / 64 (biggan)
    "sagan": (["model=sagan", "model.generator.width=16", "model.discriminator.width=16", "loss=hinge", *BASE], 2, 12),
    "biggan": (["model=biggan", "family=conditional", "model.generator.ch=16", "model.discriminator.ch=16",
                "loss=hinge", *BASE], 2, 12),
    # the tiny CPU StyleGAN2 (32 channels at every resolution, w 64, 2 mapping layers)
    "stylegan2": (["model=stylegan2", "loss=ns", "optim.z_dim=64", "model.generator.w_dim=64",
                   "model.generator.channel_base=1024", "model.generator.channel_max=32",
                   "model.discriminator.channel_base=1024", "model.discriminator.channel_max=32", *BASE], 4, 30),
}


def plain_step_timer(name: str, module, dm, cfg, warmup: int, steps: int) -> float:
    o = cfg.optim
    if name == "biggan":
        return time_plain_conditional("conditional", module, dm.train_dataloader(), o, warmup, steps)
    return time_plain(module.G, module.D, module.loss, dm.train_dataloader(), o.z_dim, o.lr, (o.beta1, o.beta2),
                      o.n_disc, warmup, steps)


def bench(name: str, rounds: int) -> dict:
    overrides, warmup, steps = CASES[name]
    cfg = compose_cfg(overrides)
    return side_by_side(overrides, rounds, lambda m, dm: time_ganbench(m, dm, warmup, steps, cfg.optim.n_disc),
                        lambda m, dm: plain_step_timer(name, m, dm, cfg, warmup, steps), name)


def main():
    report(__doc__.splitlines()[0], CASES, bench, note=", batch 16, 32 px")


if __name__ == "__main__":
    main()
