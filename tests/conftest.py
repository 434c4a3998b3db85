"""Shared helpers: run the CLI in a subprocess with everything written under a temporary directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs the suite on two xdist workers, one per core: one torch thread each (and in every
    # subprocess they start), or two workers' thread pools oversubscribe the two cores many times over
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
    import torch as _torch

    _torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parent.parent

# small, fast settings for the toy MLP on ring8
TOY = ["model=mlp", "data=ring8", "model.generator.hidden=32", "model.discriminator.hidden=32",
       "optim.batch_size=32", "logger=[csv]", "metrics=none", "samples.every=0", "checkpoint.every=0"]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One cache (metric statistics, domain classifier) shared by the whole test session, never the user's."""
    return tmp_path_factory.mktemp("ganbench-cache")


@pytest.fixture
def cli(tmp_path, cache_dir):
    """cli(*overrides, multirun=False) -> CompletedProcess; runs in tmp_path/run or tmp_path/sweep."""

    def run(*overrides: str, multirun: bool = False, env: dict | None = None, timeout: int = 300,
            run_dir: Path | None = None):
        where = (f"hydra.sweep.dir={tmp_path / 'sweep'}" if multirun
                 else f"hydra.run.dir={run_dir or tmp_path / 'run'}")
        cmd = [sys.executable, "-m", "ganbench.train", *(["-m"] if multirun else []), *overrides, where]
        full_env = {**os.environ, "WANDB_MODE": "offline", "GANBENCH_CACHE": str(cache_dir),
                    "TORCH_HOME": str(cache_dir / "torch"), "PYTHONPATH": str(ROOT / "tests"),
                    "HYDRA_FULL_ERROR": "0", **(env or {})}
        return subprocess.run(cmd, cwd=tmp_path, env=full_env, capture_output=True, text=True, timeout=timeout)

    return run


@pytest.fixture
def run(tmp_path, cache_dir, monkeypatch, capfd):
    """In-process twin of ``cli`` (no 8 s interpreter start-up): run(*overrides) -> (exit code, stdout+stderr).

    It calls the same ``ganbench.train.main`` that the console script calls, with sys.argv set.
    """
    import ganbench.train

    def go(*overrides: str, multirun: bool = False, env: dict | None = None, run_dir: Path | None = None):
        where = (f"hydra.sweep.dir={tmp_path / 'sweep'}" if multirun
                 else f"hydra.run.dir={run_dir or tmp_path / 'run'}")
        for k, v in {"WANDB_MODE": "offline", "GANBENCH_CACHE": str(cache_dir),
                     "TORCH_HOME": str(cache_dir / "torch"), **(env or {})}.items():
            monkeypatch.setenv(k, v)
        argv = [*(["-m"] if multirun else []), *overrides, where]
        return call_main(ganbench.train.main, "ganbench-train", argv, monkeypatch, capfd)

    return go


def call_main(main, program: str, argv: list[str], monkeypatch, capfd) -> tuple[int, str]:
    """Run a console-script ``main`` in this process with ``sys.argv = [program, *argv]``; returns (exit code,
    stdout + stderr)."""
    from hydra.core.global_hydra import GlobalHydra

    monkeypatch.setattr(sys, "argv", [program, *argv])
    GlobalHydra.instance().clear()
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        GlobalHydra.instance().clear()
    out, err = capfd.readouterr()
    return code, out + err


@pytest.fixture(scope="module")
def one_cpu_thread():
    """The test machines are small and shared: one torch thread avoids oversubscription (many times faster)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def result(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "result.json").read_text())


def read_csv(path: Path):
    import pandas as pd

    return pd.read_csv(path)


def assert_same_last_checkpoint(run_dir: Path, reference_dir: Path) -> tuple[dict, dict]:
    """The two runs' last.ckpt hold bitwise-equal weights and buffers and optimizer states; returns both."""
    import torch

    ours, theirs = (torch.load(Path(d) / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
                    for d in (run_dir, reference_dir))
    assert ours["state_dict"].keys() == theirs["state_dict"].keys()
    different = [k for k in ours["state_dict"] if not torch.equal(ours["state_dict"][k], theirs["state_dict"][k])]
    assert not different, f"differs after resume: {different}"
    for a, b in zip(ours["optimizer_states"], theirs["optimizer_states"], strict=True):
        assert a["state"].keys() == b["state"].keys()
        for p, q in zip(a["state"].values(), b["state"].values()):
            assert all(torch.equal(p[k], q[k]) for k in p)
    return ours, theirs
