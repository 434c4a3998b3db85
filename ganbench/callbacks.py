"""Lightning callbacks of a ganbench run: checkpoints, sample grids, evaluation and throughput.

All cadences are in generator steps (``pl_module.g_step``), never in Lightning's ``global_step``.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.profilers import PassThroughProfiler

from ganbench.primary import improves, primary_key

log = logging.getLogger("ganbench")


@contextmanager
def isolated_rng(seed: int):
    """Run a block on its own seeded random streams and leave the global ones as they were: sampling for grids and
    evaluation then neither perturbs training (so a resumed run replays it exactly) nor depends on it."""
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        yield


def _due(pl_module, every: int) -> bool:
    return bool(pl_module.did_g_step) and every > 0 and pl_module.g_step % every == 0


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file beside it, then renames it into place, so a crash or a signal
    during a save never leaves a truncated file as the only checkpoint."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            super().save_checkpoint(checkpoint, tmp, storage_options)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


class Checkpointer(L.Callback):
    """``last.ckpt`` every ``every`` generator steps and at the end; ``keep_last=False`` removes it once the run
    completes (the best checkpoint stays)."""

    def __init__(self, dirpath: str | Path, every: int = 500, keep_last: bool = True):
        self.dirpath = Path(dirpath)
        self.every = int(every)
        self.keep_last = bool(keep_last)

    @property
    def last(self) -> Path:
        return self.dirpath / "last.ckpt"

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if _due(pl_module, self.every) and pl_module.diverged is None:
            trainer.save_checkpoint(self.last)

    def on_train_end(self, trainer, pl_module):
        if pl_module.diverged is None and not _due(pl_module, self.every):
            trainer.save_checkpoint(self.last)


class GracefulStop(L.Callback):
    """SIGTERM or SIGUSR2 during training (a scheduler's stop, or SLURM's warning before a time limit or a
    preemption): finish the current generator step, write ``last.ckpt`` there, and stop; the run is recorded
    ``interrupted`` and the same command resumes it from that step, so nothing is lost.

    Replaces Lightning's SIGTERM handling (which stops after any batch, mid-way through n_disc D steps, without a
    checkpoint). Under DDP rank 0's signal decides, at the same generator step on every rank. After the record is
    written, :meth:`forward` passes the signal on: SIGUSR2 to the handler that had it before (submitit's, which
    requeues the job on SLURM; the requeued job resumes from the checkpoint), then the process exits with 128 + the
    signal number, as one killed by it would.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGUSR2)

    def __init__(self, checkpoint_path: str | Path):
        self.path = Path(checkpoint_path)
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def on_train_start(self, trainer, pl_module):
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._note)

    def _note(self, signum, frame):
        self.received = signum

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if not pl_module.did_g_step or pl_module.stopped_by_signal is not None:
            return
        stop = self.received is not None
        if trainer.world_size > 1:
            stop = bool(trainer.strategy.broadcast(stop, src=0))
        if stop:
            pl_module.stopped_by_signal = self.received or -1  # no final evaluation: the run goes on elsewhere
            if pl_module.diverged is None:
                trainer.save_checkpoint(self.path)
            trainer.should_stop = True

    def teardown(self, trainer, pl_module, stage):
        for sig, previous in self._previous.items():
            if signal.getsignal(sig) == self._note:
                signal.signal(sig, previous)

    def forward(self) -> None:
        """Pass a received signal on (call once the run is recorded)."""
        if self.received is None:
            return
        previous = self._previous.get(self.received)
        if self.received == signal.SIGUSR2 and callable(previous):
            previous(self.received, None)
        raise SystemExit(128 + self.received)


class SampleGrid(L.Callback):
    """Samples of the evaluation generator on a fixed latent batch, as PNG files (and W&B images)."""

    def __init__(self, dirpath: str | Path, every: int = 500):
        self.dirpath = Path(dirpath)
        self.every = int(every)
        self.written: list[str] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if _due(pl_module, self.every):
            self.save(trainer, pl_module)

    def on_train_end(self, trainer, pl_module):
        if not _due(pl_module, self.every) and pl_module.g_step > 0:
            self.save(trainer, pl_module)

    def save(self, trainer, pl_module) -> Path | None:
        if trainer.global_rank != 0:
            return None
        grid = getattr(pl_module, "sample_grid_images", None)  # a family's own grid (pix2pix: input | output | target)
        samples = (grid() if grid is not None else pl_module.sample(inputs=pl_module.fixed_inputs())).cpu()
        if not torch.isfinite(samples).all():
            return None
        self.dirpath.mkdir(parents=True, exist_ok=True)
        path = self.dirpath / f"step_{pl_module.g_step:07d}.png"
        if samples.dim() == 4:
            save_image_grid(samples, path, nrow=getattr(pl_module, "grid_columns", None))  # a family's layout
        else:
            real = trainer.datamodule.real_samples(2000) if trainer.datamodule is not None else None
            if len(samples) < 500:
                with isolated_rng(pl_module.g_step):
                    samples = pl_module.sample(2000).cpu()
            save_scatter(samples, real, path, title=f"generator step {pl_module.g_step}")
        self.written.append(str(path))
        for logger in trainer.loggers:
            if hasattr(logger, "log_image"):
                logger.log_image(key="samples", images=[str(path)], step=pl_module.g_step)
        return path


def save_image_grid(images: torch.Tensor, path: Path, nrow: int | None = None) -> None:
    """A PNG grid of images in [-1, 1]; ``nrow`` images per row (default: a square-ish grid)."""
    import torchvision.utils as vutils

    import torch.nn.functional as F

    side = images.shape[-1]
    if side < 64:  # small images (digits, MNIST) are enlarged so the grid is readable; pixels kept sharp
        images = F.interpolate(images, scale_factor=64 // side, mode="nearest")
    nrow = nrow or max(1, int(math.sqrt(len(images))))
    vutils.save_image(images, path, nrow=nrow, normalize=True, value_range=(-1, 1), padding=2)


def save_scatter(fake: torch.Tensor, real: torch.Tensor | None, path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    if real is not None:
        ax.scatter(real[:, 0], real[:, 1], s=2, c="tab:blue", alpha=0.4, label="data")
    ax.scatter(fake[:, 0], fake[:, 1], s=2, c="tab:orange", alpha=0.4, label="generated")
    ax.set_title(title)
    ax.legend(loc="upper right", markerscale=4)
    ax.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


class Evaluation(L.Callback):
    """Scores the evaluation generator every ``evaluator.every`` generator steps and at the end; logs every value
    to every logger, keeps the best checkpoint by the primary metric (the family's or ``evaluator.primary``), and
    remembers final and best values."""

    def __init__(self, evaluator, dirpath: str | Path):
        self.evaluator = evaluator
        self.dirpath = Path(dirpath)
        self.history: list[dict] = []
        self.best: dict | None = None
        self.seconds = 0.0

    @property
    def best_path(self) -> Path:
        return self.dirpath / "best.ckpt"

    def on_fit_start(self, trainer, pl_module):
        with isolated_rng(self.evaluator.seed):  # building the reference must not move training's random streams
            self.evaluator.setup()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if _due(pl_module, self.evaluator.every) and pl_module.diverged is None:
            self.run(trainer, pl_module)

    def on_train_end(self, trainer, pl_module):
        done = self.history and self.history[-1]["g_step"] == pl_module.g_step
        if pl_module.diverged is None and not done and pl_module.g_step > 0 and pl_module.stopped_by_signal is None:
            self.run(trainer, pl_module)

    def run(self, trainer, pl_module) -> dict:
        start = time.perf_counter()
        rank, world = trainer.global_rank, trainer.world_size
        # the same latents at every evaluation (each rank its own); training's streams untouched
        with isolated_rng(self.evaluator.seed + rank):
            values = self.evaluator.evaluate(lambda n: pl_module.sample(n), rank=rank, world_size=world,
                                             gather=trainer.strategy.all_gather if world > 1 else None)
            if all(math.isfinite(v) for v in values.values()):
                values.update(pl_module.extra_metrics(self.evaluator))
        self.seconds += time.perf_counter() - start
        row = {"g_step": pl_module.g_step, **values}
        self.history.append(row)
        for logger in trainer.loggers:
            logger.log_metrics({**values, "g_step": pl_module.g_step}, step=pl_module.g_step)
        key = self.primary(pl_module, values)
        if improves(key, values.get(key, float("nan")), None if self.best is None else self.best.get(key)):
            self.best = row
            trainer.save_checkpoint(self.best_path)
        return row

    def primary(self, pl_module, values) -> str:
        """The key that picks the best evaluation: the family's own primary metric when it has one (pix2pix,
        SRGAN: PSNR, higher is better), else the evaluator's (ganbench/primary.py)."""
        return primary_key(getattr(pl_module, "primary_metric", None), values, self.evaluator.primary)

    def state_dict(self) -> dict:
        return {"history": self.history, "best": self.best, "seconds": self.seconds}

    def load_state_dict(self, state_dict: dict) -> None:
        self.history = list(state_dict.get("history", []))
        self.best = state_dict.get("best")
        self.seconds = float(state_dict.get("seconds", 0.0))


class Throughput(L.Callback):
    """Measures generator steps per second of training (evaluation and checkpoint time excluded)."""

    def __init__(self):
        self.steps = 0
        self.seconds = 0.0
        self._t0: float | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self._t0 is not None:
            # time spent in this batch's step (callbacks ordered before this one, e.g. evaluation, excluded)
            self.seconds += time.perf_counter() - self._t0
        if pl_module.did_g_step:
            self.steps += 1

    @property
    def rate(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else float("nan")


class StopAfter(L.Callback):
    """Stops training after ``g_steps`` generator steps (status ``interrupted``; last.ckpt is saved by
    ``Checkpointer`` and the same command continues from it). For time-boxed jobs and tests."""

    def __init__(self, g_steps: int):
        self.g_steps = int(g_steps)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if pl_module.did_g_step and pl_module.g_step >= self.g_steps:
            trainer.should_stop = True


class ProgressLog(L.Callback):
    """Without a terminal (a cluster job, ``nohup``) there is no progress bar: one line to the log (train.log)
    every ``every_s`` seconds instead: the generator step of ``total``, the rate since the last line, time left."""

    def __init__(self, total: int, every_s: float = 60.0):
        self.total, self.every_s = int(total), float(every_s)
        self._last: tuple[float, int] | None = None

    def on_train_start(self, trainer, pl_module):
        self._last = (time.monotonic(), pl_module.g_step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if not getattr(trainer, "is_global_zero", True):  # one line per run, not per DDP rank
            return
        now, step = time.monotonic(), pl_module.g_step
        t0, step0 = self._last or (now, step)
        if now - t0 < self.every_s or step <= step0:
            return
        rate = (step - step0) / (now - t0)
        left = max(self.total - step, 0) / rate
        log.info(f"g_step {step}/{self.total} ({step / max(self.total, 1):.1%}), {rate:.2f} steps/s, "
                 f"about {left / 60:.0f} min left")
        self._last = (now, step)


class NoProfiler(PassThroughProfiler):
    """Lightning's default profiler (records nothing) without its cost: Lightning enters ``profile()`` ~50 times per
    training batch, and the default builds a generator-based context manager each time (2.4 us vs 0.35 us for this
    shared no-op one, measured here; lightning 2.6.6 pytorch/profilers/profiler.py ``Profiler.profile``, entered from
    pytorch/trainer/call.py's hook dispatch). ``debug=profile`` replaces it with a real profiler."""

    _nothing = nullcontext()

    def profile(self, action_name: str):
        return self._nothing
