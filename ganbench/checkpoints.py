"""Checkpoints: reading one safely, and checking that it belongs to the config that wants to resume it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ganbench.errors import CheckpointError

#: the parts of a config that change what a run computes (a checkpoint must match them to be resumed)
TRAINING_KEYS = ("family", "model", "loss", "reg", "augment", "data", "optim", "ema", "seed")


def training_config(cfg: DictConfig) -> dict:
    plain = OmegaConf.to_container(cfg, resolve=True)
    out = {k: plain.get(k) for k in TRAINING_KEYS}
    for k in ("root", "download", "num_workers"):
        (out.get("data") or {}).pop(k, None)
    (out.get("optim") or {}).pop("g_steps", None)  # a run may be extended
    return out


def config_hash(cfg: DictConfig) -> str:
    return hashlib.sha256(json.dumps(training_config(cfg), sort_keys=True).encode()).hexdigest()[:16]


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
    ours_family = OmegaConf.select(cfg, "family._target_", default=None)
    theirs_family = (state.get("training_config", {}).get("family") or {}).get("_target_")
    if theirs_family and ours_family and theirs_family != ours_family:
        raise CheckpointError(f"checkpoint {path} belongs to family {state.get('family', theirs_family)}, not to "
                              f"{ours_family.rsplit('.', 1)[-1]}; use that family's config, another run "
                              f"directory (hydra.run.dir=...), or delete the checkpoint")
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
