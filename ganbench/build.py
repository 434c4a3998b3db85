"""Composition: the objects a run is made of, built from the composed config (no Hydra app here).

``build(cfg)`` gives (family module, datamodule, evaluator); ``make_trainer`` and ``make_loggers`` assemble the
Lightning trainer, its callbacks and the loggers. Used by ``ganbench.train``, ``ganbench.evaluate`` and the
benchmarks; nothing here imports them.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_method, instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from ganbench.errors import ConfigError, GanbenchError
from ganbench.nets.init import apply_init
from ganbench.regularizers import apply_spectral_norm

#: nets a model YAML may put under ``spectral_norm`` (SAGAN, BigGAN normalise G and D as part of the model)
SN_NETS = ("generator", "discriminator")


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


def network_inits(cfg: DictConfig) -> tuple[dict[str, str], DictConfig]:
    """(``model.<net>.init`` of G and D, the config without those keys): the nets' constructors never see ``init``;
    build() applies it to whatever networks the family built (ganbench.nets.init)."""
    inits = {net: str(OmegaConf.select(cfg, f"model.{net}.init", default="pytorch")) for net in
             ("generator", "discriminator")}
    stripped = cfg.copy()
    for net in ("generator", "discriminator"):
        node = OmegaConf.select(stripped, f"model.{net}")
        if node is not None and "init" in node:
            with open_dict(node):
                del node["init"]
    return inits, stripped


def model_spectral_norm(cfg: DictConfig) -> list[str]:
    """The nets the model itself spectrally normalises (``model.spectral_norm``: a list of generator/discriminator),
    applied after their initialisation, once per layer even with ``reg=sn``."""
    nets = OmegaConf.select(cfg, "model.spectral_norm", default=None) or []
    nets = [nets] if isinstance(nets, str) else list(nets)
    bad = [n for n in nets if n not in SN_NETS]
    if bad:
        raise ConfigError(f"model.spectral_norm lists nets from {', '.join(SN_NETS)}; got {bad}")
    return nets


def build(cfg: DictConfig):
    """Instantiate data, the family's networks and module, loss, regularizers, augmentation and evaluator; return
    (module, datamodule, evaluator). The family (conf/family) decides how its networks are built and trained."""
    dm = instantiate_or_explain(cfg.data, batch_size=cfg.optim.batch_size, seed=cfg.seed)
    regs = {name: instantiate_or_explain(node) for name, node in (cfg.reg or {}).items()}
    norms = [r.d_norm for r in regs.values() if r.d_norm is not None]
    family = instantiate_or_explain(cfg.family)  # a functools.partial of the family's LightningModule class
    options = {k: v for k, v in OmegaConf.to_container(cfg.family, resolve=True).items() if not k.startswith("_")}
    inits, net_cfg = network_inits(cfg)
    if cfg.model.get("conditional") == "native" and not family.func.native_conditioning:
        raise ConfigError(f"model={cfg.model.get('name', '?')} is class-conditional (its G takes labels): use "
                          f"family=conditional with labelled data; family={family.func.family_name()} cannot train it")
    G, D, extra = family.func.build_networks(net_cfg, dm, {"norm": norms[0]} if norms else {}, options)
    apply_init(G, inits["generator"], "model.generator")
    apply_init(D, inits["discriminator"], "model.discriminator")
    for net in model_spectral_norm(cfg):
        apply_spectral_norm({"generator": G, "discriminator": D}[net])
    for reg in regs.values():
        reg.check_data(tuple(dm.shape))
        reg.configure(G, D)
    optim = OmegaConf.to_container(cfg.optim, resolve=True)
    optim["lr_g"] = optim["lr_g"] if optim.get("lr_g") is not None else optim["lr"]
    optim["lr_d"] = optim["lr_d"] if optim.get("lr_d") is not None else optim["lr"]
    try:
        module = family(G, D, loss=instantiate_or_explain(cfg.loss), regularizers=regs,
                        augment=instantiate_or_explain(cfg.augment), optim=optim, ema_decay=cfg.ema.decay,
                        ema_start=cfg.ema.get("start", 0), ema_half_life_kimg=cfg.ema.get("half_life_kimg"),
                        ema_rampup=cfg.ema.get("rampup"), truncation=cfg.samples.get("truncation"),
                        truncation_mode=cfg.samples.get("truncation_mode", "resample"),
                        num_fixed=cfg.samples.num, log_every=cfg.log_every, seed=cfg.seed, **extra)
    except TypeError as exc:  # an option the family's class does not take
        raise ConfigError(f"family={family.func.family_name()}: {exc}") from None
    data_range = getattr(dm, "range", "symmetric")
    if data_range != "symmetric" and len(dm.shape) != 3:
        raise ConfigError(f"data.range={data_range} applies to images; data={dm.name} holds vectors in their own "
                          f"coordinates (keep data.range=symmetric)")
    module.set_data_range(data_range)
    # metrics=none leaves no _target_ (an experiment may still have set e.g. metrics.every): no evaluation
    metrics = cfg.get("metrics")
    evaluator = instantiate_or_explain(metrics, datamodule=dm) if metrics and "_target_" in metrics else None
    return module, dm, evaluator


def make_callbacks(cfg: DictConfig, run_dir: Path, evaluator, terminal: bool | None = None) -> list:
    """The run's callbacks: throughput, checkpoints, sample grids, evaluation (if metrics are on), ``stop_after``,
    graceful stop on SIGTERM/SIGUSR2, and a Rich progress bar on a terminal (``terminal``: default, whether stdout
    or stderr is one) or one log line a minute otherwise. Also what ``scripts/bench_train.py`` times."""
    from lightning.pytorch.callbacks import RichProgressBar

    from ganbench.callbacks import (Checkpointer, Evaluation, GracefulStop, ProgressLog, SampleGrid, StopAfter,
                                    Throughput)

    ckpt_dir = run_dir / "checkpoints"
    callbacks = [Throughput(), Checkpointer(ckpt_dir, cfg.checkpoint.every, cfg.checkpoint.keep_last),
                 SampleGrid(run_dir / "samples", cfg.samples.every)]
    if evaluator is not None:
        callbacks.append(Evaluation(evaluator, ckpt_dir))
    if cfg.get("stop_after"):
        callbacks.append(StopAfter(cfg.stop_after))
    callbacks.append(GracefulStop(ckpt_dir / "last.ckpt"))
    if terminal if terminal is not None else (sys.stderr.isatty() or sys.stdout.isatty()):
        callbacks.append(RichProgressBar())
    else:
        callbacks.append(ProgressLog(cfg.optim.g_steps))
    return callbacks


def make_trainer(cfg: DictConfig, module, run_dir: Path, evaluator, loggers):
    import lightning as L
    from lightning.pytorch.callbacks import RichProgressBar

    from ganbench.callbacks import AtomicCheckpointIO, NoProfiler

    callbacks = make_callbacks(cfg, run_dir, evaluator)
    trainer_kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    compile_backend, compile_mode = trainer_kwargs.pop("compile_backend", "inductor"), trainer_kwargs.pop(
        "compile_mode", None)
    if trainer_kwargs.pop("compile", False):
        from ganbench.compile import CompileNetworks

        callbacks.insert(0, CompileNetworks(compile_backend, compile_mode))
    # a trainer option given as a Hydra node (debug=profile's profiler) is built here
    trainer_kwargs = {k: instantiate(v) if isinstance(v, dict) and "_target_" in v else v
                      for k, v in trainer_kwargs.items()}
    if trainer_kwargs.get("profiler") is None:
        trainer_kwargs["profiler"] = NoProfiler()
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
