"""Data-parallel training on the CPU with 2 gloo processes: identical weights on both ranks, one record, and
metrics gathered from every rank equal to one process scoring the same samples."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, TOY, result

NUM_FAKE = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_samples(rank: int) -> torch.Tensor:
    """Each rank's own generated samples: real digits with rank-seeded noise (so the scores are non-trivial)."""
    from ganbench.data.digits import Digits

    x = Digits().real_samples(NUM_FAKE // 2, "train")
    g = torch.Generator().manual_seed(rank)
    return (x + 0.3 * torch.randn(x.shape, generator=g)).clamp(-1, 1)


def streaming(samples: torch.Tensor):
    position = [0]

    def sample(n: int) -> torch.Tensor:
        out = samples[position[0]:position[0] + n]
        position[0] += n
        return out

    return sample


def _rank_main(rank: int, world: int, port: int, cache: str, out: str) -> None:
    import torch.distributed as dist

    from ganbench.data.digits import Digits
    from ganbench.metrics import Evaluator

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)

    def gather(t: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(t) for _ in range(world)]
        dist.all_gather(parts, t.contiguous())
        return torch.stack(parts)

    ev = Evaluator(Digits(), num_fake=NUM_FAKE, cache_dir=cache, device="cpu")
    values = ev.evaluate(streaming(rank_samples(rank)), rank=rank, world_size=world, gather=gather)
    torch.save(values, os.path.join(out, f"rank{rank}.pt"))
    dist.destroy_process_group()


def test_gathered_metrics_equal_one_process_scoring_the_same_samples(tmp_path, cache_dir):
    from ganbench.data.digits import Digits
    from ganbench.metrics import Evaluator

    single = Evaluator(Digits(), num_fake=NUM_FAKE, cache_dir=str(cache_dir), device="cpu")  # trains/caches D
    expected = single.evaluate(streaming(torch.cat([rank_samples(0), rank_samples(1)])))
    torch.multiprocessing.spawn(_rank_main, args=(2, free_port(), str(cache_dir), str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    assert ranks[0] == ranks[1]  # every rank holds the same values (so they agree on the best checkpoint)
    assert ranks[0].keys() == expected.keys()
    for key, value in expected.items():
        assert ranks[0][key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
    one_rank_only = Evaluator(Digits(), num_fake=NUM_FAKE // 2, cache_dir=str(cache_dir), device="cpu")
    assert one_rank_only.evaluate(streaming(rank_samples(0)))["fid/domain_test360"] != pytest.approx(
        expected["fid/domain_test360"])  # the test can tell one rank's samples from both ranks'


def test_ddp_on_two_cpu_processes_trains_identical_ranks_and_records_once(tmp_path, cache_dir):
    rd, dump = tmp_path / "run", tmp_path / "weights"
    cmd = [sys.executable, "-m", "ganbench.train", *[o for o in TOY if not o.startswith("metrics")],
           "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "optim.g_steps=20", "metrics=quick",
           "metrics.every=10", "metrics.num_fake=500", "+reg.dump._target_=ddp_dump.DumpWeights",
           f"+reg.dump.out={dump}", f"hydra.run.dir={rd}"]
    env = {**os.environ, "WANDB_MODE": "offline", "GANBENCH_CACHE": str(cache_dir), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT / "tests")}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = result(rd)
    assert record["status"] == "completed" and record["g_steps"] == 20
    assert [h["g_step"] for h in record["metrics"]["history"]] == [10, 20]
    w0, w1 = (torch.load(dump / f"rank{r}.pt") for r in (0, 1))
    for net in ("G", "D"):
        # batch-norm running statistics are per rank between steps (DDP broadcasts rank 0's at each forward)
        weights = [k for k in w0[net] if "running_" not in k and "num_batches" not in k]
        different = [k for k in weights if not torch.equal(w0[net][k], w1[net][k])]
        assert weights and not different, (net, different)
    assert (rd / "checkpoints" / "last.ckpt").exists() and (rd / "checkpoints" / "best.ckpt").exists()


def test_ddp_jobs_of_a_sweep_through_submitit_local_use_the_launchers_tasks_as_ranks(tmp_path, cache_dir):
    """A 2-job sweep, each job one DDP run on 2 CPU processes that submitit starts (tasks_per_node=2): no job
    relaunches the sweep, every job completes with one record and identical weights on its two ranks."""
    dump = tmp_path / "weights"
    cmd = [sys.executable, "-m", "ganbench.train", "-m", *[o for o in TOY if not o.startswith("metrics")],
           "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "optim.g_steps=10", "metrics=none",
           "loss=ns,wgan", "+reg.dump._target_=ddp_dump.DumpWeights", f"+reg.dump.out={dump}/${{loss._target_}}",
           "hydra/launcher=local_parallel", "hydra.launcher.tasks_per_node=2", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    env = {**os.environ, "WANDB_MODE": "offline", "GANBENCH_CACHE": str(cache_dir), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT / "tests")}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [result(p.parent) for p in (tmp_path / "sweep").rglob("result.json")]
    assert sorted(r["choices"]["loss"] for r in records) == ["ns", "wgan"]
    assert all(r["status"] == "completed" and r["g_steps"] == 10 for r in records)
    jobs = sorted(dump.iterdir())
    assert [j.name for j in jobs] == ["ganbench.losses.NonSaturating", "ganbench.losses.Wasserstein"]
    for job in jobs:
        assert sorted(p.name for p in job.iterdir()) == ["rank0.pt", "rank1.pt"]  # two ranks per job, no more
        w0, w1 = (torch.load(job / f"rank{r}.pt") for r in (0, 1))
        assert all(torch.equal(w0["D"][k], w1["D"][k]) for k in w0["D"] if "running_" not in k)
