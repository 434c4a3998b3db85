"""Benchmark ganbench's Evaluator against torch-fidelity on CPU, side by side, on the same generator samples.

Both use one randomly initialised InceptionV3 weights file (written here: no network needed), the same N samples
of a tiny conv generator (the same noise: torch-fidelity's normal noise source seeded the same way) and cached real
statistics (ganbench: Evaluator.setup(); torch-fidelity: cache=True with a tmp cache root and one warm-up call).
Also times a domain-extractor evaluation on digits (the default run's metrics).

    python scripts/bench_metrics.py [--n 64] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

Z_DIM = 64
SEED = 2020  # torch-fidelity's default rng_seed, also ganbench's


def tiny_generator(channels: int, side: int) -> nn.Module:
    """z (Z_DIM) -> images (channels, side, side) in [-1, 1]: a linear layer to 4x4, then upsample + conv blocks."""
    blocks = [nn.Linear(Z_DIM, 64 * 16), nn.Unflatten(1, (64, 4, 4))]
    size = 4
    while size < side:
        blocks += [nn.Upsample(scale_factor=2), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU()]
        size *= 2
    blocks += [nn.Conv2d(64, channels, 3, padding=1), nn.Tanh()]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return nn.Sequential(*blocks).eval()


class ToUInt8(nn.Module):
    """The generator as torch-fidelity wants it: uint8 output, converted exactly as ganbench converts."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, z):
        from ganbench.metrics.extractors import to_uint8

        return to_uint8(self.generator(z))


def noise_sampler(seed: int = SEED):
    """sample_fn's noise drawn as torch-fidelity draws it (its "normal" source on np.random.RandomState(seed))."""
    import numpy as np
    from torch_fidelity.noise import random_normal

    rng = np.random.RandomState(seed)
    return lambda n: random_normal(rng, (n, Z_DIM))


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def bench_inception(n: int, root: Path) -> None:
    import torch_fidelity
    from torch_fidelity.generative_model_modulewrapper import GenerativeModelModuleWrapper

    from ganbench.data.base import GANDataModule, tensor_dataset
    from ganbench.metrics import Evaluator
    from ganbench.metrics.extractors import InceptionExtractor, random_inception_weights, to_uint8

    weights = str(random_inception_weights(root / "inception-random.pth"))
    g = torch.Generator().manual_seed(1)
    real = torch.nn.functional.interpolate(torch.rand(n, 3, 4, 4, generator=g), size=32, mode="bilinear") * 2 - 1

    class Real(GANDataModule):
        name, shape, default_extractor = "bench-real", (3, 32, 32), "inception"

        def make_split(self, split):
            return tensor_dataset(real)

    class UInt8Images(torch.utils.data.Dataset):
        def __len__(self):
            return n

        def __getitem__(self, i):
            return to_uint8(real[i])

    gen = tiny_generator(3, 32)
    options = dict(kid_subsets=100, kid_subset_size=min(1000, n), is_splits=10)
    ev = Evaluator(Real(), num_real=n, num_fake=n, batch_size=64, inception_weights=weights,
                   cache_dir=str(root / "ganbench"), device="cpu", **options)
    _, setup_s = timed(ev.setup)
    sampler = noise_sampler()
    ours, ours_s = timed(lambda: ev.evaluate(lambda k: gen(sampler(k))))

    fidelity = dict(input1=GenerativeModelModuleWrapper(ToUInt8(gen), Z_DIM, "normal", 0),
                    input1_model_num_samples=n, input2=UInt8Images(), input2_cache_name="bench-real",
                    cache_root=str(root / "fidelity"), fid=True, isc=True, kid=True, cuda=False, batch_size=64,
                    feature_extractor="inception-v3-compat", feature_extractor_weights_path=weights,
                    isc_splits=options["is_splits"], kid_subsets=options["kid_subsets"],
                    kid_subset_size=options["kid_subset_size"], save_cpu_ram=True, verbose=False, rng_seed=SEED)
    _, warm_s = timed(lambda: torch_fidelity.calculate_metrics(**fidelity))  # caches the real features and stats
    theirs, theirs_s = timed(lambda: torch_fidelity.calculate_metrics(**fidelity))
    _, build_s = timed(lambda: InceptionExtractor(Path(weights)))

    tag = f"inception_test{n}" if n % 1000 else f"inception_test{n // 1000}k"
    fid_bytes = 2 * n * (2048 + 1008) * 4  # per-batch lists + torch.cat of both feature sets, at the cat
    print(f"InceptionV3 (random weights), CPU, {torch.get_num_threads()} thread(s), N = {n} generated vs {n} real")
    print(f"  ganbench setup (real features, once)     {setup_s:7.2f} s")
    print(f"  torch-fidelity warm-up (real, cached)    {warm_s:7.2f} s")
    print(f"  ganbench Evaluator.evaluate              {ours_s:7.2f} s   (FID, KID, IS and precision/recall)")
    print(f"  torch_fidelity.calculate_metrics         {theirs_s:7.2f} s   (FID, KID, IS; rebuilds InceptionV3 per "
          f"call: {build_s:.2f} s)")
    print(f"  ratio ganbench / torch-fidelity          {ours_s / theirs_s:7.2f}")
    print(f"  fake feature buffers: ganbench {ev.buffer_bytes / 2**20:.2f} MiB (preallocated N x (2048 + 1008) "
          f"float32), torch-fidelity ~{fid_bytes / 2**20:.2f} MiB at its torch.cat (lists + result)")
    for ours_key, their_key in (("fid", "frechet_inception_distance"), ("kid_mean", "kernel_inception_distance_mean"),
                                ("is_mean", "inception_score_mean")):
        print(f"  {ours_key:9s} ganbench {ours[f'{ours_key}/{tag}']:.7g}   torch-fidelity {theirs[their_key]:.7g}")


def bench_domain(root: Path) -> None:
    from ganbench.data.digits import Digits
    from ganbench.metrics import Evaluator

    ev = Evaluator(Digits(), cache_dir=str(root / "ganbench"), device="cpu")  # the quick preset's defaults
    _, setup_s = timed(ev.setup)
    gen, sampler = tiny_generator(1, 16), noise_sampler()
    scores, eval_s = timed(lambda: ev.evaluate(lambda k: gen(sampler(k))))
    print(f"domain classifier on digits (quick preset: {ev.num_fake} generated vs {ev.num_real} test)")
    print(f"  setup (train classifier + real features) {setup_s:7.2f} s   test accuracy "
          f"{ev.protocol()['domain_accuracy']:.4f}")
    print(f"  Evaluator.evaluate                       {eval_s:7.2f} s   fid/domain_test360 = "
          f"{scores['fid/domain_test360']:.4g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64, help="generated (and real) images")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["TORCH_HOME"] = str(root / "torch_home")  # never touch the user's torch-fidelity cache
        with torch.no_grad():
            bench_inception(args.n, root)
        bench_domain(root)


if __name__ == "__main__":
    main()
