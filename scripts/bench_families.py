"""Each family's training iteration vs a plain PyTorch loop of the same family, side by side in one process.

Both loops train copies of the same networks (the family's own: conditional wrappers, InfoGAN's Q head, BEGAN's
autoencoder, a packed D) with the same math, Adam settings, batch size and data loader; rounds alternate (ABBA) and
the median seconds per generator step are compared. EMA is off in both. The plain loops are what a researcher
writes by hand for that family.

    python scripts/bench_families.py [--cases conditional began pack2 infogan] [--rounds 4]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import lightning as L
import torch
import torch.nn.functional as F

from bench_train import compose_cfg, time_ganbench
from ganbench.build import build
from ganbench.families.optimizers import drop_nvml_cuda_check
from ganbench.train import quiet_lightning

IMAGES = ["data=polygons", "data.resolution=32", "optim.batch_size=64", "reg=none", "metrics=none", "ema.decay=0",
          "log_every=10"]
CASES = {
    # name: (overrides, warm-up steps, measured steps per round)
    "conditional": (["family=conditional", "model=dcgan", "model.generator.width=32", "model.discriminator.width=32",
                     "loss=hinge", *IMAGES], 2, 6),
    "pack2": (["family.pack=2", "model=sndcgan", "model.generator.width=32", "model.discriminator.width=32",
               "loss=ns", *IMAGES], 2, 6),
    "began": (["family=began", "model=dcgan", "model.generator.width=32", "family.autoencoders.lucic.width=32",
               *IMAGES], 2, 6),
    "infogan": (["family=infogan", "model=infogan", "model.generator.width=32", "model.discriminator.width=32",
                 "loss=ns", *IMAGES], 2, 6),
    "conditional_mlp": (["family=conditional", "family.g_cond=concat", "model=mlp", "data=ring8",
                         "optim.batch_size=64", "loss=hinge", "reg=none", "metrics=none", "ema.decay=0"], 50, 300),
}


def batches(loader):
    while True:
        yield from loader


def plain_conditional(m, real, y, z_dim, opt_g, opt_d):
    """Projection D + conditional G with the hinge loss, by hand."""
    n = real.shape[0]
    with torch.no_grad():
        y_fake = torch.randint(m.num_classes, (n,))
        fake = m.G(torch.randn(n, z_dim), y_fake)
    out = m.D(torch.cat([real, fake]), torch.cat([y, y_fake]))
    logits = out["logit"] if isinstance(out, dict) else out
    loss_d = F.relu(1 - logits[:n]).mean() + F.relu(1 + logits[n:]).mean()
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()
    return y_fake


def plain_conditional_g(m, n, z_dim, opt_g):
    m.D.requires_grad_(False)
    y = torch.randint(m.num_classes, (n,))
    out = m.D(m.G(torch.randn(n, z_dim), y), y)
    loss_g = -(out["logit"] if isinstance(out, dict) else out).mean()
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    m.D.requires_grad_(True)


def plain_pack(m, real, z_dim, opt_d, pack):
    n = real.shape[0]
    with torch.no_grad():
        fake = m.G(torch.randn(n, z_dim))
    x = torch.cat([real, fake])
    logits = m.D(x.reshape(x.shape[0] // pack, x.shape[1] * pack, *x.shape[2:]))
    loss_d = F.softplus(-logits[:n // pack]).mean() + F.softplus(logits[n // pack:]).mean()
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()


def plain_pack_g(m, n, z_dim, opt_g, pack):
    m.D.requires_grad_(False)
    fake = m.G(torch.randn(n, z_dim))
    loss_g = F.softplus(-m.D(fake.reshape(n // pack, fake.shape[1] * pack, *fake.shape[2:]))).mean()
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    m.D.requires_grad_(True)


class PlainBEGAN:
    """BEGAN by hand: L(v) = mean |v - AE(v)|; D: L(x) - k L(G(z)); G: L(G(z)); k += lambda_k (gamma L(x) - L(G))."""

    def __init__(self, gamma=0.5, lambda_k=1e-3):
        self.k, self.gamma, self.lambda_k = 0.0, gamma, lambda_k

    def d(self, m, real, z_dim, opt_d):
        n = real.shape[0]
        with torch.no_grad():
            fake = m.G(torch.randn(n, z_dim))
        x = torch.cat([real, fake])
        err = (x - m.D(x)).abs().flatten(1).mean(1)
        l_real, l_fake = err[:n].mean(), err[n:].mean()
        opt_d.zero_grad(set_to_none=True)
        (l_real - self.k * l_fake).backward()
        opt_d.step()
        self.k = min(max(self.k + self.lambda_k * float((self.gamma * l_real - l_fake).detach()), 0.0), 1.0)

    def g(self, m, n, z_dim, opt_g):
        m.D.requires_grad_(False)
        fake = m.G(torch.randn(n, z_dim))
        loss = (fake - m.D(fake)).abs().mean()
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
        m.D.requires_grad_(True)


class PlainInfoGAN:
    """InfoGAN by hand (openai's, as family=infogan's defaults): NS loss with D called on reals and fakes
    separately; lambda * (CE of the categorical codes + (c - mu)^2 / 2 of the continuous ones) from Q on the fakes,
    in D's loss and in G's."""

    def __init__(self, m, z_dim):
        self.sizes, self.n_cont, self.z_dim = list(m.codes.categorical), m.codes.continuous, z_dim

    def inputs(self, n):
        cat = torch.stack([torch.randint(k, (n,)) for k in self.sizes], 1)
        cont = torch.rand(n, self.n_cont) * 2 - 1
        onehot = [F.one_hot(cat[:, i], k).float() for i, k in enumerate(self.sizes)]
        return torch.cat([torch.randn(n, self.z_dim), *onehot, cont], 1), cat, cont

    def info(self, out, cat, cont):
        parts = out["q_cat"].split(self.sizes, 1)
        ce = sum(F.cross_entropy(p, cat[:, i]) for i, p in enumerate(parts))
        return ce + 0.5 * (cont - out["q_cont"]).square().sum(1).mean()

    def d(self, m, real, opt_d):
        x, cat, cont = self.inputs(real.shape[0])
        with torch.no_grad():
            fake = m.G(x)
        out = m.D(fake)
        loss = F.softplus(-m.D(real, heads=False)).mean() + F.softplus(out["logit"]).mean() + self.info(out, cat, cont)
        opt_d.zero_grad(set_to_none=True)
        loss.backward()
        opt_d.step()

    def g(self, m, n, opt_g):
        m.D.requires_grad_(False)
        x, cat, cont = self.inputs(n)
        out = m.D(m.G(x))
        loss = F.softplus(-out["logit"]).mean() + self.info(out, cat, cont)
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
        m.D.requires_grad_(True)


def time_plain(name, m, loader, o, warmup, steps) -> float:
    # foreach, as ganbench asks torch for (families/optimizers.py): the ratio measures the loop, not the optimizer
    opt_g = torch.optim.Adam(m.G.parameters(), lr=o.lr, betas=(o.beta1, o.beta2), foreach=True)
    opt_d = torch.optim.Adam(m.D.parameters(), lr=o.lr, betas=(o.beta1, o.beta2), foreach=True)
    began = PlainBEGAN()
    info = PlainInfoGAN(m, o.z_dim) if name == "infogan" else None
    data, t0, n = batches(loader), None, o.batch_size
    for g_step in range(warmup + steps):
        if g_step == warmup:
            t0 = time.perf_counter()
        for _ in range(o.n_disc):
            real, y = next(data)
            if name.startswith("conditional"):
                plain_conditional(m, real, y, o.z_dim, opt_g, opt_d)
            elif name == "pack2":
                plain_pack(m, real, o.z_dim, opt_d, 2)
            elif name == "began":
                began.d(m, real, o.z_dim, opt_d)
            elif name == "infogan":
                info.d(m, real, opt_d)
        if name.startswith("conditional"):
            plain_conditional_g(m, n, o.z_dim, opt_g)
        elif name == "pack2":
            plain_pack_g(m, n, o.z_dim, opt_g, 2)
        elif name == "began":
            began.g(m, n, o.z_dim, opt_g)
        elif name == "infogan":
            info.g(m, n, opt_g)
    return (time.perf_counter() - t0) / steps


def side_by_side(overrides, rounds: int, time_ours, time_plain, name: str = "") -> dict:
    """ganbench vs a plain loop on copies of the same networks (same initial state), in ABBA rounds: ``time_ours(m,
    dm)`` and ``time_plain(m, dm)`` return seconds per generator step; the medians and their ratio."""
    cfg = compose_cfg(overrides)
    L.seed_everything(0, verbose=False)
    module, dm, _ = build(cfg)
    dm.setup()
    state = copy.deepcopy(module.state_dict())
    ours, plain = [], []

    def fresh():
        m, _, _ = build(cfg)
        m.load_state_dict(state)
        return m

    runs = ((ours, time_ours), (plain, time_plain))
    for r in range(rounds):
        for out, fn in (runs if r % 2 == 0 else runs[::-1]):
            out.append(fn(fresh(), dm))
    t_ours, t_plain = statistics.median(ours), statistics.median(plain)
    return {"case": name, "ours": t_ours, "plain": t_plain, "ratio": t_ours / t_plain, "runs": (ours, plain),
            "cfg": cfg}


def bench(name: str, rounds: int) -> dict:
    overrides, warmup, steps = CASES[name]
    o = compose_cfg(overrides).optim
    return side_by_side(overrides, rounds, lambda m, dm: time_ganbench(m, dm, warmup, steps, o.n_disc),
                        lambda m, dm: time_plain(name, m, dm.train_dataloader(), o, warmup, steps), name)


def report(description: str, cases, bench_fn, note: str = "") -> None:
    """The command line of a ganbench-vs-plain benchmark: --cases, --rounds; one row per case."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--cases", nargs="+", default=list(cases), choices=list(cases))
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    quiet_lightning()
    drop_nvml_cuda_check()  # both loops as a plain PyTorch script runs (no Lightning import)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads{note}")
    print(f"{'case':16} {'ganbench s/it':>13} {'plain s/it':>11} {'ratio':>6}  per-round ratios")
    for name in args.cases:
        r = bench_fn(name, args.rounds)
        per_round = " ".join(f"{a / b:.3f}" for a, b in zip(*r["runs"])) if r["runs"][1] else "-"
        print(f"{name:16} {r['ours']:13.5f} {r['plain']:11.5f} {r['ratio']:6.3f}  {per_round}")


def main():
    report(__doc__.splitlines()[0], CASES, bench)


if __name__ == "__main__":
    main()
