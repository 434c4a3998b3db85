"""Faults around a run: damaged or foreign checkpoints, a full disk, Ctrl-C, SIGTERM/SIGUSR2 (a scheduler's stop or
requeue), a signal during a checkpoint write.
Each gives one clear line, a non-zero exit where the run failed, loses nothing and marks nothing completed."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, TOY, result

ARGS = [*TOY, "optim.g_steps=6", "checkpoint.every=2"]


def one_error_line(out: str) -> str:
    lines = [ln for ln in out.splitlines() if ln.startswith("ganbench: error:")]
    assert len(lines) == 1 and "Traceback" not in out, out[-3000:]
    return lines[0]


def test_a_truncated_checkpoint_is_refused_and_kept(run, tmp_path):
    assert run(*ARGS, "stop_after=2")[0] == 0
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])
    code, out = run(*ARGS)
    assert code == 2 and "unreadable (truncated, corrupt" in one_error_line(out)
    assert last.stat().st_size == 1000  # left for the user to restore or delete
    assert result(tmp_path / "run")["status"] == "failed"


def test_a_checkpoint_from_another_config_is_refused(run, tmp_path):
    assert run(*ARGS, "stop_after=2")[0] == 0
    code, out = run(*ARGS, "loss=wgan")
    line = one_error_line(out)
    assert code == 2 and "different config" in line and "loss._target_" in line
    assert result(tmp_path / "run")["status"] == "failed"


def test_disk_full_while_writing_result_json(run, tmp_path, monkeypatch):
    from ganbench import results

    real_write = results.write_json_atomic

    def full_disk_at_the_end(path, record):
        if record.get("status") != "running":
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(path, record)

    monkeypatch.setattr(results, "write_json_atomic", full_disk_at_the_end)
    code, out = run(*ARGS, "checkpoint.keep_last=false")
    line = one_error_line(out)
    assert code == 2 and "No space left on device" in line and "rerun the same command" in line
    rd = tmp_path / "run"
    assert result(rd)["status"] == "running"  # never wrongly completed
    assert (rd / "checkpoints" / "last.ckpt").exists()  # kept although keep_last=false: not yet recorded
    monkeypatch.setattr(results, "write_json_atomic", real_write)
    code, out = run(*ARGS, "checkpoint.keep_last=false")  # space is back: the same command records it
    assert code == 0, out[-3000:]
    assert result(rd)["status"] == "completed" and result(rd)["g_steps"] == 6
    assert not (rd / "checkpoints" / "last.ckpt").exists()


def _env(cache_dir):
    return {**os.environ, "WANDB_MODE": "offline", "GANBENCH_CACHE": str(cache_dir), "PYTHONPATH": str(ROOT / "tests")}


def test_ctrl_c_marks_the_run_interrupted_and_it_resumes(tmp_path, cache_dir):
    rd = tmp_path / "run"
    cmd = [sys.executable, "-m", "ganbench.train", *TOY, "optim.g_steps=100000", "checkpoint.every=50",
           f"hydra.run.dir={rd}"]
    # a terminal's Ctrl-C: SIGINT with its default disposition (a parent that ignores SIGINT, as background jobs and
    # some test runners do, would pass the ignoring on to the child)
    proc = subprocess.Popen(cmd, env=_env(cache_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while not (rd / "checkpoints" / "last.ckpt").exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()  # never leave a training process behind
    assert proc.returncode != 0 and "Traceback" not in err, err[-3000:]
    record = result(rd)
    assert record["status"] == "interrupted" and 50 <= record["g_steps"] < 100000
    # the same command resumes from last.ckpt (here with a reachable length: g_steps may change between sessions)
    target = record["g_steps"] + 20
    resumed = subprocess.run([a.replace("g_steps=100000", f"g_steps={target}") for a in cmd], env=_env(cache_dir),
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stdout + resumed.stderr
    assert result(rd)["status"] == "completed" and result(rd)["g_steps"] == target


def test_an_output_directory_that_cannot_be_written_gets_one_line(run, tmp_path, monkeypatch, capfd):
    """A read-only file system (simulated: tests run as root, which permissions do not stop) or a path through a
    file: one line naming the directory and the key that moves it, exit 2, before anything starts."""
    from pathlib import Path

    real_mkdir = Path.mkdir
    readonly = tmp_path / "readonly"

    def mkdir(self, *args, **kwargs):
        if str(self).startswith(str(readonly)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    code, out = run(*ARGS, run_dir=readonly / "run")
    assert code == 2 and one_error_line(out) == (
        f"ganbench: error: cannot write the output directory {readonly / 'run'}: Read-only file system; run where "
        "you can write, or set hydra.run.dir=<a writable directory>")
    (tmp_path / "afile").write_text("")
    import ganbench.train
    from conftest import call_main

    code, out = call_main(ganbench.train.main, "ganbench-train",
                          ["-m", *ARGS, f"hydra.sweep.dir={tmp_path / 'afile' / 'sweep'}"], monkeypatch, capfd)
    assert code == 2 and "afile/sweep: Not a directory; run where you can write, or set hydra.sweep.dir=" in \
        one_error_line(out)
    assert not list(tmp_path.rglob("result.json"))


REQUEUER = """
import signal, sys
from pathlib import Path
# stands in for submitit's SIGUSR2 handler on SLURM: it requeues the job, then the process exits
marker = Path(sys.argv[1])
def requeue(signum, frame):
    marker.write_text("requeued")
    sys.exit(0)
signal.signal(signal.SIGUSR2, requeue)
sys.argv = ["ganbench-train", *sys.argv[2:]]
from ganbench.train import main
main()
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR2])
def test_sigterm_or_slurms_warning_signal_checkpoints_the_current_step(tmp_path, cache_dir, sig):
    """A scheduler's SIGTERM, or SLURM's SIGUSR2 before a time limit/preemption: the run finishes its generator
    step, saves last.ckpt there, is recorded interrupted, and resumes from exactly that step. A SIGUSR2 handler
    that was there before (submitit's requeue) runs after that; without one the exit code is 128 + signal."""
    rd = tmp_path / "run"
    args = [*TOY, "optim.g_steps=100000", "checkpoint.every=100000", f"hydra.run.dir={rd}"]
    marker = tmp_path / "requeued"
    cmd = ([sys.executable, "-c", REQUEUER, str(marker), *args] if sig == signal.SIGUSR2
           else [sys.executable, "-m", "ganbench.train", *args])
    proc = subprocess.Popen(cmd, env=_env(cache_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (rd / "metrics.csv").exists():
        time.sleep(0.2)
    time.sleep(1.0)  # well into training, far from any scheduled checkpoint
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert "Traceback" not in err, err[-3000:]
    record = result(rd)
    assert record["status"] == "interrupted" and 0 < record["g_steps"] < 100000
    import torch

    ckpt = torch.load(rd / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["ganbench"]["g_step"] == record["g_steps"]  # the step it stopped at, not an older one
    if sig == signal.SIGUSR2:
        assert proc.returncode == 0 and marker.read_text() == "requeued"
    else:
        assert proc.returncode == 128 + signal.SIGTERM
    target = record["g_steps"] + 5
    resumed = subprocess.run([sys.executable, "-m", "ganbench.train",
                              *[a.replace("g_steps=100000", f"g_steps={target}") for a in args]],
                             env=_env(cache_dir), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"at generator step {record['g_steps']}" in resumed.stdout + resumed.stderr
    assert result(rd)["status"] == "completed" and result(rd)["g_steps"] == target


SAVER = """
import sys, torch
from ganbench.callbacks import AtomicCheckpointIO
io, path = AtomicCheckpointIO(), sys.argv[1]
io.save_checkpoint({"step": 0, "w": torch.zeros(1)}, path)
print("ready", flush=True)
step = 0
while True:
    step += 1
    io.save_checkpoint({"step": step, "w": torch.full((2_000_000,), float(step))}, path)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_signal_during_a_checkpoint_write_leaves_a_whole_checkpoint(tmp_path, sig):
    import torch

    path = tmp_path / "last.ckpt"
    proc = subprocess.Popen([sys.executable, "-c", SAVER, str(path)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(1.5)  # several 8 MB writes in flight
    proc.send_signal(sig)
    proc.wait(timeout=30)
    ckpt = torch.load(path, weights_only=False)  # loads: the last complete write, never a torn one
    assert ckpt["step"] == 0 or float(ckpt["w"][0]) == ckpt["step"] == float(ckpt["w"][-1])
