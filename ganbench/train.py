"""ganbench's entrypoint: compose a GAN from config groups, train it, and leave a record.

    python -m ganbench.train [group=option ...] [key=value ...]       (also installed as `ganbench-train`)
    python -m ganbench.train -m loss=ns,ls,wgan reg=none,gp,sn      (a sweep: one run directory per job)

The run directory is ``outputs/<name>/<overrides>``: running the same command again continues from its last.ckpt
(a completed or diverged run is left as it is). See README.md for every config group.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
import warnings
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import get_method, instantiate
from omegaconf import DictConfig, OmegaConf

from ganbench import results
from ganbench.config import CONF_DIR, CONFIG_NAME, apply_penalty_weight, run_cli, validate
from ganbench.errors import CheckpointError, ConfigError, GanbenchError, RecordError
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


#: the parts of a config that change what a run computes (a checkpoint must match them to be resumed)
TRAINING_KEYS = ("model", "loss", "reg", "augment", "data", "optim", "ema", "seed")


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


def training_config(cfg: DictConfig) -> dict:
    plain = OmegaConf.to_container(cfg, resolve=True)
    out = {k: plain.get(k) for k in TRAINING_KEYS}
    for k in ("root", "download", "num_workers"):
        (out.get("data") or {}).pop(k, None)
    (out.get("optim") or {}).pop("g_steps", None)  # a run may be extended
    return out


def config_hash(cfg: DictConfig) -> str:
    return hashlib.sha256(json.dumps(training_config(cfg), sort_keys=True).encode()).hexdigest()[:16]


def instantiate_or_explain(node, **kwargs):
    """hydra.utils.instantiate, but a GanbenchError raised by the constructor comes out as itself (Hydra wraps
    every constructor error in an InstantiationException with a traceback-like message)."""
    from hydra.errors import InstantiationException

    try:
        return instantiate(node, **kwargs)
    except InstantiationException as exc:
        cause = exc.__cause__
        while cause is not None and not isinstance(cause, GanbenchError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from None
        raise


def build(cfg: DictConfig):
    """Instantiate data, networks, loss, regularizers, augmentation and evaluator; return the module and data."""
    from ganbench.families.gan import GAN

    dm = instantiate_or_explain(cfg.data, batch_size=cfg.optim.batch_size, seed=cfg.seed)
    regs = {name: instantiate_or_explain(node) for name, node in (cfg.reg or {}).items()}
    norms = [r.d_norm for r in regs.values() if r.d_norm is not None]
    G = instantiate_or_explain(cfg.model.generator, z_dim=cfg.optim.z_dim, data_shape=tuple(dm.shape))
    D_kwargs = {"norm": norms[0]} if norms else {}
    D = instantiate_or_explain(cfg.model.discriminator, data_shape=tuple(dm.shape), **D_kwargs)
    for reg in regs.values():
        reg.configure(G, D)
    optim = OmegaConf.to_container(cfg.optim, resolve=True)
    optim["lr_g"] = optim["lr_g"] if optim.get("lr_g") is not None else optim["lr"]
    optim["lr_d"] = optim["lr_d"] if optim.get("lr_d") is not None else optim["lr"]
    module = GAN(G, D, instantiate_or_explain(cfg.loss), regs, instantiate_or_explain(cfg.augment), optim,
                 ema_decay=cfg.ema.decay, num_fixed=cfg.samples.num, log_every=cfg.log_every, seed=cfg.seed)
    # metrics=none leaves no _target_ (an experiment may still have set e.g. metrics.every): no evaluation
    metrics = cfg.get("metrics")
    evaluator = instantiate_or_explain(metrics, datamodule=dm) if metrics and "_target_" in metrics else None
    return module, dm, evaluator


def read_checkpoint(path: Path) -> dict:
    """A ganbench checkpoint's contents; CheckpointError (one line) if it is missing, unreadable or not ganbench's."""
    import torch

    if not Path(path).is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        if not ("ganbench" in ckpt and "state_dict" in ckpt):
            raise KeyError("ganbench")
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same problem for the user
        raise CheckpointError(f"checkpoint {path} is unreadable (truncated, corrupt or not written by ganbench: "
                              f"{type(exc).__name__}); delete it to start over, or restore a copy") from None
    return ckpt


def check_checkpoint(path: Path, cfg: DictConfig) -> dict:
    """A checkpoint to resume must be readable and come from the same training config; returns its ganbench
    state (g_step, d_step, ...)."""
    state = read_checkpoint(path)["ganbench"]
    theirs, ours = state.get("training_config", {}), training_config(cfg)
    if state.get("config_hash") != config_hash(cfg):
        diff = sorted(k for k in _flatten(theirs).keys() | _flatten(ours).keys()
                      if _flatten(theirs).get(k) != _flatten(ours).get(k))
        raise CheckpointError(f"checkpoint {path} was written by a different config (differs in: "
                              f"{', '.join(diff[:5]) or 'unknown'}); use another run directory "
                              f"(hydra.run.dir=...) or delete the checkpoint")
    return state


def _flatten(d, prefix=""):
    out = {}
    for k, v in (d or {}).items():
        key = f"{prefix}{k}"
        out.update(_flatten(v, key + ".") if isinstance(v, dict) else {key: v})
    return out


def make_trainer(cfg: DictConfig, module, run_dir: Path, evaluator, loggers):
    import lightning as L
    from lightning.pytorch.callbacks import RichProgressBar

    from ganbench.callbacks import (AtomicCheckpointIO, Checkpointer, Evaluation, GracefulStop, SampleGrid, StopAfter,
                                    Throughput)

    ckpt_dir = run_dir / "checkpoints"
    callbacks = [Throughput(), Checkpointer(ckpt_dir, cfg.checkpoint.every, cfg.checkpoint.keep_last),
                 SampleGrid(run_dir / "samples", cfg.samples.every)]
    if evaluator is not None:
        callbacks.append(Evaluation(evaluator, ckpt_dir))
    if cfg.get("stop_after"):
        callbacks.append(StopAfter(cfg.stop_after))
    callbacks.append(GracefulStop(ckpt_dir / "last.ckpt"))
    if sys.stderr.isatty() or sys.stdout.isatty():
        callbacks.append(RichProgressBar())
    trainer_kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    trainer = L.Trainer(**trainer_kwargs, max_steps=cfg.optim.g_steps * (cfg.optim.n_disc + 1), max_epochs=-1,
                        callbacks=callbacks, logger=loggers or False, enable_checkpointing=False,
                        enable_progress_bar=any(isinstance(c, RichProgressBar) for c in callbacks),
                        enable_model_summary=False, num_sanity_val_steps=0, log_every_n_steps=1,
                        default_root_dir=str(run_dir), plugins=[AtomicCheckpointIO()],
                        use_distributed_sampler=False)  # the datamodule's sampler shards batches by rank itself
    if trainer_kwargs.get("deterministic"):
        # deterministic mode also fills every new tensor with NaN (5x slower here); ganbench reads no
        # uninitialised memory, so results are identical without it
        import torch.utils.deterministic

        torch.utils.deterministic.fill_uninitialized_memory = False
    return trainer, {type(c).__name__: c for c in callbacks}


def make_loggers(cfg: DictConfig, run_dir: Path) -> list:
    hc = HydraConfig.get()
    choices = hc.runtime.choices
    tags = [f"{g}={choices.get(g)}" for g in ("model", "loss", "reg", "data", "augment") if choices.get(g)]
    reg_names = ",".join(cfg.reg.keys()) if cfg.get("reg") else "none"
    tags.append(f"reg={reg_names}")
    run_name = f"{cfg.name}/{run_dir.name}"
    config = OmegaConf.to_container(cfg, resolve=True)
    loggers = []
    for node in (cfg.get("logger") or {}).values():
        # called directly, not through instantiate, so the run's config is passed as data, not instantiated
        options = {k: v for k, v in OmegaConf.to_container(node, resolve=True).items() if k != "_target_"}
        factory = get_method(node._target_)
        loggers.append(factory(run_dir=str(run_dir), run_name=run_name, group=cfg.name, tags=tags,
                               run_config=config, **options))
    return loggers


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
        _finish(record, run_dir, module, trainer, callbacks, start, cfg)
    if callbacks:
        callbacks["GracefulStop"].forward()  # SIGTERM/SIGUSR2: recorded and checkpointed; now exit (or requeue)
    return results.objective(record)


def _finish(record, run_dir, module, trainer, callbacks, start, cfg) -> None:
    from ganbench.loggers import finish_wandb

    record["finished"] = results.now()
    record["wall_time_s"] = round(time.perf_counter() - start, 3)
    if module is not None:
        record["g_steps"] = module.g_step
    if callbacks:
        thr = callbacks["Throughput"]
        record["train_time_s"] = round(thr.seconds, 3)
        record["g_steps_per_s"] = round(thr.rate, 4) if thr.seconds else None
        ev = callbacks.get("Evaluation")
        if ev is not None:
            final = ev.history[-1] if ev.history else {}
            record["eval_time_s"] = round(ev.seconds, 3)
            record["metrics"] = {
                "primary": ev.evaluator.primary, "protocol": ev.evaluator.protocol(),
                "final_step": final.get("g_step"), "final": {k: v for k, v in final.items() if k != "g_step"},
                "best_step": (ev.best or {}).get("g_step"),
                "best": {k: v for k, v in (ev.best or {}).items() if k != "g_step"},
                "history": ev.history}
        ckpt = callbacks["Checkpointer"]
        drop_last = record["status"] == "completed" and not ckpt.keep_last
        record["files"] = {
            "last_ckpt": None if drop_last else _rel(ckpt.last, run_dir),
            "best_ckpt": _rel(ckpt.dirpath / "best.ckpt", run_dir),
            "samples": [_rel(Path(p), run_dir) for p in callbacks["SampleGrid"].written]}
    unsaved = None
    if launch_rank() == 0 and (trainer is None or trainer.global_rank == 0):
        try:
            results.write_json_atomic(run_dir / "result.json", record)
        except OSError as exc:  # e.g. disk full: the previous result.json (status running) and last.ckpt stay
            unsaved = exc
        else:
            if callbacks and record["files"]["last_ckpt"] is None:  # checkpoint.keep_last=false, once recorded
                callbacks["Checkpointer"].last.unlink(missing_ok=True)
    finish_wandb()
    if unsaved is not None:
        message = (f"could not write {run_dir / 'result.json'} ({unsaved}); the run ended {record['status']} at "
                   f"generator step {record.get('g_steps')}; its checkpoints are kept: free space and rerun the "
                   f"same command to record it")
        if sys.exc_info()[0] is None:  # do not mask an error already on its way out
            raise RecordError(message)
        log.error(message)
    summary = f"{record['status']}: {record.get('g_steps', 0)} generator steps in {record['wall_time_s']:.1f}s"
    if record.get("diverged"):
        summary += f"; diverged at generator step {record['diverged']['g_step']} ({record['diverged']['non_finite']})"
    best = record.get("metrics", {}).get("best")
    if best:
        key = record["metrics"]["primary"]
        summary += f"; best {key}={best.get(key):.4g} at step {record['metrics']['best_step']}"
    if launch_rank() == 0:
        log.info("%s; run directory: %s", summary, run_dir)


def _rel(path: Path, run_dir: Path) -> str | None:
    return str(path.relative_to(run_dir)) if path.exists() else None


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
