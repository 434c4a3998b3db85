"""family=pix2pix and family=cyclegan at 32 px: a ganbench training step vs a plain PyTorch loop of the same networks.

The plain loops are the reference's (junyanz/pytorch-CycleGAN-and-pix2pix@032e884 ``models/pix2pix_model.py`` and
``cycle_gan_model.py`` ``optimize_parameters``): one forward of G per iteration, used by G's step and (detached) by
D's; pix2pix: vanilla GAN loss on cat(A, B) patches, D halved, L1 100; CycleGAN: LS loss, cycle 10, identity 0.5,
D halved, an image pool of 50 per domain. ganbench's shared loop runs D's step first and draws G's outputs again in
G's step (a second forward; ``families/gan.py``). Both train copies of the same networks with Adam 2e-4 (0.5, 0.999)
on the same loader; rounds alternate (ABBA) and the median seconds per generator step are compared. CPU, batch 8.

    python scripts/bench_translation.py [--cases pix2pix cyclegan] [--rounds 4]
"""

from __future__ import annotations

import random
import time

import torch
import torch.nn.functional as F

from bench_families import report, side_by_side
from bench_train import time_ganbench

BASE = ["data.resolution=32", "optim.batch_size=8", "reg=none", "metrics=none", "ema.decay=0", "log_every=10",
        "optim.lr=0.0002", "optim.beta1=0.5", "optim.beta2=0.999"]
CASES = {
    # name: (overrides, warm-up steps, measured steps per round)
    "pix2pix": (["family=pix2pix", "model=pix2pix", "data=edges2digits", "loss=ns", *BASE], 2, 10),
    "cyclegan": (["family=cyclegan", "model=cyclegan", "data=digits2tinted", "loss=ls", "model.generator.ngf=16",
                  "model.generator.n_blocks=6", "model.discriminator.ndf=16", *BASE], 2, 10),
}


def batches(loader):
    while True:
        yield from loader


def adam(params):
    # foreach, as ganbench asks torch for (families/optimizers.py): the ratio measures the loop, not the optimizer
    return torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999), foreach=True)


def bce(logits, real: bool):
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, float(real)))


def pix2pix_step(m, a, b, opt_g, opt_d):
    """optimize_parameters: fake = G(A); D on cat(A, fake.detach()) and cat(A, B), halved; G: GAN + 100 L1."""
    fake = m.G(a)
    m.D.requires_grad_(True)
    loss_d = 0.5 * (bce(m.D(torch.cat([a, fake.detach()], 1)), False) + bce(m.D(torch.cat([a, b], 1)), True))
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()
    m.D.requires_grad_(False)
    loss_g = bce(m.D(torch.cat([a, fake], 1)), True) + 100 * (fake - b).abs().mean()
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()


class Pool:
    """The reference's ImagePool (50): stores fakes, then returns a stored one (swapped) half the time."""

    def __init__(self, size=50):
        self.size, self.images = size, []

    def query(self, images):
        out = []
        for img in images.detach():
            img = img.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(img)
                out.append(img)
            elif random.random() > 0.5:
                i = random.randrange(self.size)
                out.append(self.images[i].clone())
                self.images[i] = img
            else:
                out.append(img)
        return torch.cat(out)


def ls(x, target):
    return (x - target).square().mean()


def cyclegan_step(m, a, b, opt_g, opt_d, pools):
    """optimize_parameters: forward (fake_B, rec_A, fake_A, rec_B), G's step with D frozen, then D_A and D_B on
    pooled fakes (LS, halved)."""
    g_a, g_b, d_a, d_b = m.G.ab, m.G.ba, m.D.a, m.D.b
    fake_b, fake_a = g_a(a), g_b(b)
    rec_a, rec_b = g_b(fake_b), g_a(fake_a)
    m.D.requires_grad_(False)
    loss_g = (ls(d_a(fake_b), 1) + ls(d_b(fake_a), 1) + 10 * (rec_a - a).abs().mean() + 10 * (rec_b - b).abs().mean()
              + 5 * (g_a(b) - b).abs().mean() + 5 * (g_b(a) - a).abs().mean())
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    m.D.requires_grad_(True)
    pooled_b, pooled_a = pools["b"].query(fake_b), pools["a"].query(fake_a)
    loss_d = 0.5 * (ls(d_a(b), 1) + ls(d_a(pooled_b), 0)) + 0.5 * (ls(d_b(a), 1) + ls(d_b(pooled_a), 0))
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()


def time_plain(name, m, loader, warmup, steps) -> float:
    opt_g, opt_d, pools = adam(m.G.parameters()), adam(m.D.parameters()), {"a": Pool(), "b": Pool()}
    data, t0 = batches(loader), None
    for step in range(warmup + steps):
        if step == warmup:
            t0 = time.perf_counter()
        a, b = next(data)
        if name == "pix2pix":
            pix2pix_step(m, a, b, opt_g, opt_d)
        else:
            cyclegan_step(m, a, b, opt_g, opt_d, pools)
    return (time.perf_counter() - t0) / steps


def bench(name: str, rounds: int) -> dict:
    overrides, warmup, steps = CASES[name]
    return side_by_side(overrides, rounds, lambda m, dm: time_ganbench(m, dm, warmup, steps, 1),
                        lambda m, dm: time_plain(name, m, dm.train_dataloader(), warmup, steps), name)


def main():
    report(__doc__.splitlines()[0], CASES, bench, note=", batch 8, 32 px")


if __name__ == "__main__":
    main()
