"""Logger factories. Each has the same signature so a run can use several at once (``logger=[csv,wandb]``):

    factory(run_dir, run_name, group, tags, run_config, **options) -> a Lightning logger
"""

from __future__ import annotations

import csv
import logging
import os
import uuid
from pathlib import Path

from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only

from ganbench.wandb_mode import WANDB_MODES, resolve_wandb_mode, wandb_logged_in  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)


class AppendingCSVLogger(Logger):
    """Scalars to ``<run_dir>/metrics.csv``, one row per logging call, appended across resumed sessions.

    (Lightning's CSVLogger deletes an existing metrics.csv when a run restarts in its directory; a resumed run
    must keep the rows logged before the interruption.) The header grows when new names appear.
    """

    def __init__(self, run_dir, flush_every: int = 50):
        super().__init__()
        self.path = Path(run_dir) / "metrics.csv"
        self.flush_every = int(flush_every)
        self._rows: list[dict] = []

    @property
    def name(self) -> str:
        return "csv"

    @property
    def version(self) -> str:
        return ""

    @property
    def save_dir(self) -> str:
        return str(self.path.parent)

    @rank_zero_only
    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass

    @rank_zero_only
    def log_metrics(self, metrics, step=None) -> None:
        row = {"step": step}
        row.update({k: (v.item() if hasattr(v, "item") else v) for k, v in metrics.items()})
        self._rows.append(row)
        if len(self._rows) >= self.flush_every:
            self.save()

    @rank_zero_only
    def save(self) -> None:
        if not self._rows:
            return
        header: list[str] = []
        old_rows: list[dict] = []
        if self.path.exists():
            with open(self.path, newline="") as f:
                reader = csv.DictReader(f)
                header = list(reader.fieldnames or [])
                new_keys = [k for r in self._rows for k in r if k not in header]
                if new_keys:
                    old_rows = list(reader)
        keys = header + [k for r in self._rows for k in r if k not in header]
        keys = list(dict.fromkeys(keys))
        rewrite = not self.path.exists() or keys != header
        with open(self.path, "w" if rewrite else "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            if rewrite:
                writer.writeheader()
                writer.writerows(old_rows)
            writer.writerows(self._rows)
        self._rows = []

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.save()

    @rank_zero_only
    def drop_after(self, step: int) -> None:
        """Remove the rows logged after ``step``: a run resumed from a checkpoint at ``step`` logs them again."""
        if not self.path.exists():
            return
        with open(self.path, newline="") as f:
            reader = csv.DictReader(f)
            header, rows = list(reader.fieldnames or []), list(reader)
        kept = [r for r in rows if not r.get("step") or float(r["step"]) <= step]
        if len(kept) < len(rows):
            tmp = self.path.with_name(f".{self.path.name}.tmp")
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=header)
                writer.writeheader()
                writer.writerows(kept)
            os.replace(tmp, self.path)


def csv_logger(run_dir, run_name=None, group=None, tags=None, run_config=None, flush_every: int = 50):
    """Scalars to ``<run_dir>/metrics.csv`` (appended when a run resumes)."""
    return AppendingCSVLogger(run_dir, flush_every=flush_every)


def tensorboard_logger(run_dir, run_name=None, group=None, tags=None, run_config=None):
    """TensorBoard event files under ``<run_dir>/tensorboard``."""
    from lightning.pytorch.loggers import TensorBoardLogger

    return TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version="", default_hp_metric=False)


def wandb_logger(run_dir, run_name=None, group=None, tags=None, run_config=None, project: str = "ganbench",
                 entity: str | None = None, mode: str = "auto", init_timeout: float = 60.0):
    """A W&B run per job, grouped by sweep, tagged with the chosen loss/reg/model/data.

    The run is started here (not lazily) so that an unreachable server falls back to offline logging at once
    instead of failing mid-training. The run id is kept in ``<run_dir>/wandb_id`` so a resumed run continues it.
    """
    os.environ.setdefault("WANDB_SILENT", "true")
    for var in ("WANDB_MODE", "WANDB_API_KEY"):  # set but empty means unset (wandb itself rejects an empty mode)
        if var in os.environ and not os.environ[var].strip():
            del os.environ[var]
    import wandb
    from lightning.pytorch.loggers import WandbLogger

    mode = resolve_wandb_mode(mode)
    id_file = Path(run_dir) / "wandb_id"
    run_id = id_file.read_text().strip() if id_file.exists() else uuid.uuid4().hex[:8]
    id_file.write_text(run_id)
    kwargs = dict(save_dir=str(run_dir), name=run_name, group=group, tags=list(tags or []), project=project,
                  entity=entity, id=run_id, resume="allow", config=run_config,
                  settings=wandb.Settings(init_timeout=init_timeout, console="off"))
    try:
        return _started(WandbLogger(mode=mode, **kwargs))
    except Exception as exc:  # noqa: BLE001 - any W&B failure must not stop training
        if mode != "online":
            raise
        log.warning("W&B: could not start an online run (%s); logging offline instead.", str(exc).splitlines()[0])
        wandb.finish()
        return _started(WandbLogger(mode="offline", **kwargs))


def _started(logger):
    """Start the logger's W&B run now. Lightning always passes ``anonymous`` to wandb.init, which wandb >= 0.19
    only answers with a deprecation warning: it is left out."""
    if getattr(logger, "_wandb_init", {}).get("anonymous") is None:
        logger._wandb_init.pop("anonymous", None)
    _ = logger.experiment
    return logger


def finish_wandb() -> None:
    """Close the W&B run of this job so the next job of a sweep gets its own run."""
    import sys

    if "wandb" in sys.modules:
        import wandb

        if wandb.run is not None:
            wandb.finish()
