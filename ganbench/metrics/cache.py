"""A small on-disk cache of tensors: atomic writes, and a corrupt or foreign file is recomputed, never fatal."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def digest(obj: Any, length: int = 16) -> str:
    """The first ``length`` hex digits of the sha256 of ``obj``'s canonical JSON (a stable cache key)."""
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def file_sha256(path: str | os.PathLike, length: int = 16) -> str:
    """The first ``length`` hex digits of the sha256 of a file's bytes (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:length]


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file in the same directory, then ``os.replace`` it over ``path``.

    ``os.replace`` is atomic on POSIX, so a reader (another job of the same sweep) sees the old file or the new one,
    never a half-written one; two writers of the same key both write valid files and the last one wins.
    """
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_or_compute(path: str | os.PathLike, key: dict, compute: Callable[[], dict]) -> tuple[dict, bool]:
    """Return ``(payload, computed)``: the payload cached at ``path`` if it loads and was stored under ``key``,
    otherwise ``compute()``, saved atomically with its key. A truncated, corrupt or mismatched file is recomputed.
    """
    import torch

    path = Path(path)
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(stored, dict) and stored.get("key") == key:
            return stored["payload"], False
    except Exception:  # missing, truncated, or not a torch file at all: all mean "recompute"
        pass
    payload = compute()
    atomic_save({"key": key, "payload": payload}, path)
    return payload, True
