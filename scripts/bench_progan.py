"""family=progan at 32 px mid-fade: a ganbench training step vs a plain PyTorch loop of the same networks.

Both loops train copies of the same model=progan networks as build() makes them, at a fixed fractional lod (32 px
fading in over 16 px, so both resolutions' layers run), with ProGAN's D loss (WGAN, gradient penalty lambda 10
without epsilon, drift 0.001 D(x)^2; D on reals and fakes in separate calls), G loss -D(G(z)), Adam 1e-3 (0, 0.99),
the reals cross-faded as process_reals, the same batch size and data loader; rounds alternate (ABBA) and the median
seconds per generator step are compared. EMA is off in both. Small widths (32 channels), batch 16.

    python scripts/bench_progan.py [--rounds 4] [--device cpu|cuda] [--width 32]

Run it on a quiet machine: other processes show up as spread between rounds.
"""

from __future__ import annotations

import argparse
import time

import lightning as L
import torch

from bench_families import side_by_side
from bench_train import compose_cfg
from ganbench.families.progan import fade_reals
from ganbench.train import quiet_lightning

LOD = 0.99  # the plain loop's lod; ganbench's schedule below sits at 1 - kimg / 1e6 (0.99998 after warm-up)


def overrides(width: int) -> list[str]:
    nets = [f"model.{n}.{k}={v}" for n in ("generator", "discriminator")
            for k, v in (("fmap_base", width * 16), ("fmap_max", width))]
    return ["family=progan", "data=polygons", "data.resolution=32", "optim.batch_size=16", "optim.z_dim=64",
            "reg.gp.eps=0", "ema.decay=0", "metrics=none", "log_every=10", "family.initial_resolution=16",
            "family.training_kimg=0", "family.transition_kimg=1000000", *nets]


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class StepTimer(L.Callback):
    def __init__(self, warmup: int, device: str):
        self.warmup, self.device, self.t0, self.steps, self.seconds = warmup, device, None, 0, 0.0

    def on_train_batch_end(self, trainer, pl_module, *args):
        if pl_module.did_g_step:
            if pl_module.g_step == self.warmup:
                sync(self.device)
                self.t0 = time.perf_counter()
            elif pl_module.g_step > self.warmup:
                sync(self.device)
                self.steps += 1
                self.seconds = time.perf_counter() - self.t0


def time_ganbench(module, dm, warmup: int, steps: int, device: str) -> float:
    timer = StepTimer(warmup, device)
    trainer = L.Trainer(accelerator="gpu" if device.startswith("cuda") else "cpu", devices=1,
                        max_steps=(warmup + steps) * 2, max_epochs=-1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[timer],
                        num_sanity_val_steps=0)
    trainer.fit(module, datamodule=dm)
    return timer.seconds / timer.steps


def time_plain(G, D, loader, z_dim: int, warmup: int, steps: int, device: str) -> float:
    """The ProGAN loop a researcher writes by hand (loss.py D_wgangp_acgan / G_wgan_acgan, no labels)."""
    G, D = G.to(device), D.to(device)
    G.set_lod(LOD), D.set_lod(LOD)
    # foreach, as ganbench asks torch for (families/optimizers.py): the ratio measures the loop, not the optimizer
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.0, 0.99), eps=1e-8, foreach=True)
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.0, 0.99), eps=1e-8, foreach=True)
    it, g_steps, t0 = iter(loader), 0, None
    while g_steps < warmup + steps:
        real = fade_reals(next(it)[0].to(device), LOD)
        n = real.shape[0]
        with torch.no_grad():
            fake = G(torch.randn(n, z_dim, device=device))
        d_real, d_fake = D(real), D(fake)
        a = torch.rand(n, 1, 1, 1, device=device)
        x_hat = (real + (fake - real) * a).requires_grad_(True)
        (grad,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
        gp = (grad.flatten(1).square().sum(1).sqrt() - 1).square().mean() * 10
        loss_d = d_fake.mean() - d_real.mean() + gp + 0.001 * d_real.square().mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        D.requires_grad_(False)
        loss_g = -D(G(torch.randn(n, z_dim, device=device))).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        D.requires_grad_(True)
        g_steps += 1
        if g_steps == warmup:
            sync(device)
            t0 = time.perf_counter()
    sync(device)
    return (time.perf_counter() - t0) / steps


def bench(rounds: int, device: str, width: int, warmup: int = 5, steps: int = 20) -> dict:
    overrides_ = overrides(width) + (["trainer=gpu"] if device.startswith("cuda") else [])
    z_dim = compose_cfg(overrides_).optim.z_dim
    return side_by_side(overrides_, rounds, lambda m, dm: time_ganbench(m, dm, warmup, steps, device),
                        lambda m, dm: time_plain(m.G, m.D, dm.train_dataloader(), z_dim, warmup, steps, device))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--width", type=int, default=32, help="channels at every resolution (fmap_max)")
    ap.add_argument("--steps", type=int, default=20, help="measured generator steps per round")
    args = ap.parse_args()
    quiet_lightning()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.device}, batch 16, 32 px, "
          f"width {args.width}, lod {LOD}")
    r = bench(args.rounds, args.device, args.width, steps=args.steps)
    per_round = " ".join(f"{a / b:.3f}" for a, b in zip(*r["runs"]))
    print(f"{'case':10} {'ganbench s/it':>13} {'plain s/it':>11} {'ratio':>6}  per-round ratios")
    print(f"{'progan':10} {r['ours']:13.5f} {r['plain']:11.5f} {r['ours'] / r['plain']:6.3f}  {per_round}")


if __name__ == "__main__":
    main()
