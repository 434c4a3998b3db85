"""Which W&B mode a run uses, decided without prompting or connecting (light: no Lightning import)."""

from __future__ import annotations

import logging
import netrc
import os

from ganbench.errors import ConfigError

log = logging.getLogger("ganbench")
WANDB_MODES = ("auto", "online", "offline", "disabled")


def wandb_logged_in() -> bool:
    """True when W&B credentials exist (WANDB_API_KEY or a netrc entry for the W&B host); never prompts, never
    connects."""
    if os.environ.get("WANDB_API_KEY", "").strip():
        return True
    host = os.environ.get("WANDB_BASE_URL", "api.wandb.ai").replace("https://", "").replace("http://", "")
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def resolve_wandb_mode(mode: str = "auto") -> str:
    """``auto`` -> WANDB_MODE if set, else online when logged in, else offline. ``online`` without credentials
    falls back to offline with a warning: a run never waits for a key."""
    if mode not in WANDB_MODES:
        raise ConfigError(f"logger.wandb.mode must be one of {', '.join(WANDB_MODES)}; got {mode!r}")
    if mode == "auto":
        mode = os.environ.get("WANDB_MODE", "").strip() or ("online" if wandb_logged_in() else "offline")
    if mode == "online" and not wandb_logged_in():
        log.warning("W&B: not logged in (no WANDB_API_KEY, no netrc entry); logging offline instead. "
                    "Sync later with `wandb sync <dir>/wandb/offline-run-*`.")
        mode = "offline"
    return mode
