"""Ranks as the launcher set them, known before the Lightning trainer exists."""

from __future__ import annotations

import os


def export_local_submitit_ranks() -> None:
    """submitit's local executor (hydra/launcher=local_parallel) starts tasks_per_node processes per job but, unlike
    SLURM, leaves nothing Lightning can read their ranks from: export them (RANK, LOCAL_RANK, WORLD_SIZE,
    MASTER_ADDR/PORT) so that trainer=ddp uses these processes instead of starting its own."""
    if int(os.environ.get("SUBMITIT_LOCAL_NTASKS", "1")) > 1 and "RANK" not in os.environ:
        from submitit.helpers import TorchDistributedEnvironment

        TorchDistributedEnvironment().export(set_cuda_visible_devices=False)


def launch_rank() -> int:
    """This process's global rank as its launcher set it (Lightning's DDP children, torchrun, SLURM tasks); 0 for a
    single process. Known before the trainer exists, so that only rank 0 writes the run's files."""
    for var in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0
