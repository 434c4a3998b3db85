"""ganbench's entrypoint: compose a GAN from config groups, train it, and leave a record.

    python -m ganbench.train [group=option ...] [key=value ...]       (also installed as `ganbench-train`)
    python -m ganbench.train -m loss=ns,ls,wgan reg=none,gp,sn      (a sweep: one run directory per job)

The run directory is ``outputs/<name>/<overrides>``: running the same command again continues from its last.ckpt
(a completed or diverged run is left as it is). See README.md for every config group.
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from ganbench import results
from ganbench.build import build, make_loggers, make_trainer
from ganbench.config import CONF_DIR, CONFIG_NAME, apply_penalty_weight, run_cli, validate
from ganbench.checkpoints import check_checkpoint, config_hash, training_config
from ganbench.distributed import export_local_submitit_ranks, launch_rank
from ganbench.errors import ConfigError, GanbenchError
from ganbench.record import finish
from ganbench.search import apply_search

log = logging.getLogger("ganbench")


def quiet_lightning() -> None:
    """Lightning's INFO lines (GPU/TPU banners, tips, "max_steps reached") are not for ganbench's users. Called
    after Lightning is imported: its import sets its loggers' level to INFO."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)


warnings.filterwarnings("ignore", ".*does not have many workers.*")
warnings.filterwarnings("ignore", ".*LeafSpec.*")
warnings.filterwarnings("ignore", ".*Experiment logs directory.*")
warnings.filterwarnings("ignore", ".*overridden `transfer_batch_to_device`.*")  # GAN's CPU fast path, on purpose


def train(cfg: DictConfig) -> float:
    """One job: returns the value a sweeper minimises (best primary metric, or a penalty for a diverged run)."""
    hc = HydraConfig.get()
    export_local_submitit_ranks()
    run_dir = Path(hc.runtime.output_dir)
    prior = results.read_result(run_dir)
    if cfg.resume and prior and prior.get("status") in results.FINISHED:
        log.info("%s: already %s at generator step %s; left as it is (delete result.json to rerun)",
                 run_dir, prior["status"], prior.get("g_steps"))
        return results.objective(prior)

    record = {"schema_version": results.SCHEMA_VERSION, "status": "running", "run_dir": str(run_dir),
              "started": results.now(), "overrides": list(hc.overrides.task),
              "choices": {k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra")},
              "seed": int(cfg.seed) if isinstance(cfg.get("seed"), int) else cfg.get("seed"),
              "g_steps_target": None, "g_steps": 0, "config": None,
              "diverged": None, "error": None, "versions": results.package_versions(),
              "git_commit": results.git_commit()}
    start = time.perf_counter()
    module = trainer = callbacks = None
    try:
        apply_search(cfg)
        validate(cfg)
        apply_penalty_weight(cfg)
        record["config"] = OmegaConf.to_container(cfg, resolve=True)
        record["g_steps_target"] = record["config"]["optim"]["g_steps"]
        last = run_dir / "checkpoints" / "last.ckpt"
        if last.exists() and not cfg.resume:
            raise ConfigError(f"resume=false but {run_dir} already holds a checkpoint; pick another run "
                              f"directory (hydra.run.dir=...) or remove it")
        ckpt_path = last if last.exists() else None
        resumed_at = check_checkpoint(ckpt_path, cfg)["g_step"] if ckpt_path is not None else None
        import lightning as L

        quiet_lightning()
        L.seed_everything(int(cfg.seed), workers=True, verbose=False)
        module, dm, evaluator = build(cfg)
        module.checkpoint_extra = {"config_hash": config_hash(cfg), "training_config": training_config(cfg)}
        if launch_rank() == 0:
            OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
            results.write_json_atomic(run_dir / "result.json", record)
        loggers = make_loggers(cfg, run_dir)
        trainer, callbacks = make_trainer(cfg, module, run_dir, evaluator, loggers)
        if ckpt_path is not None:
            log.info("resuming from %s at generator step %d", ckpt_path, resumed_at)
            for logger in loggers:  # steps after the checkpoint are replayed: their old rows go
                if hasattr(logger, "drop_after"):
                    logger.drop_after(resumed_at)
        trainer.fit(module, datamodule=dm, ckpt_path=str(ckpt_path) if ckpt_path else None)
        if trainer.interrupted:
            record["status"] = "interrupted"
        elif module.diverged is not None:
            record["status"], record["diverged"] = "diverged", module.diverged
        elif module.g_step >= int(cfg.optim.g_steps):
            record["status"] = "completed"
        else:
            record["status"] = "interrupted"
    except GanbenchError as exc:
        record["status"], record["error"] = "failed", str(exc)
        raise
    except (KeyboardInterrupt, SystemExit):
        record["status"] = "interrupted"
        raise
    except BaseException as exc:
        record["status"], record["error"] = "failed", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        raise
    finally:
        finish(record, run_dir, module, trainer, callbacks, start, cfg)
    if callbacks:
        callbacks["GracefulStop"].forward()  # SIGTERM/SIGUSR2: recorded and checkpointed; now exit (or requeue)
    return results.objective(record)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=CONFIG_NAME)
def hydra_main(cfg: DictConfig) -> float:
    try:
        return train(cfg)
    except GanbenchError as exc:
        if HydraConfig.get().mode == RunMode.MULTIRUN:  # one failed job never aborts a sweep or an Optuna study
            log.error("job failed (recorded in result.json): %s", exc)
            return results.objective(None)
        print(f"ganbench: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except Exception as exc:  # noqa: BLE001 - a crash in a sweep job: recorded as failed, the sweep goes on
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            log.exception("job crashed (recorded in result.json): %s", exc)
            return results.objective(None)
        raise


def main() -> None:
    run_cli(hydra_main)


if __name__ == "__main__":
    main()
