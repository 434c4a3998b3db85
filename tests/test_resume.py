"""Exact resume: a run killed with SIGKILL and relaunched with the same command ends bitwise where an uninterrupted
run ends (CPU, deterministic), wherever the kill lands: before the first checkpoint, mid-epoch, after epochs of
shuffled data."""

from __future__ import annotations

import pytest
import torch

from conftest import result

# ring8 cut to 8 batches per epoch, so 24 generator steps x n_disc 2 cross six epochs of reshuffled data; the GP
# draws interpolation noise, the EMA generator and evaluations (every 10 steps, best checkpoint) are on.
ARGS = ["model=mlp", "data=ring8", "data.n_train=256", "model.generator.hidden=16", "model.discriminator.hidden=16",
        "optim.batch_size=32", "optim.n_disc=2", "optim.g_steps=24", "loss=ns", "loss._target_=kill_loss.KillAt",
        "reg=gp", "logger=[csv]", "metrics=quick", "metrics.every=10", "metrics.num_fake=500",
        "samples.every=0", "checkpoint.every=5", "log_every=1"]


def final_state(run_dir):
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    return ckpt["state_dict"], ckpt["optimizer_states"], ckpt["ganbench"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cache_dir):
    """The uninterrupted run (in a subprocess like the others: the same process-level conditions)."""
    import os
    import subprocess
    import sys

    from conftest import ROOT

    where = tmp_path_factory.mktemp("reference")
    env = {**os.environ, "WANDB_MODE": "offline", "GANBENCH_CACHE": str(cache_dir), "PYTHONPATH": str(ROOT / "tests")}
    proc = subprocess.run([sys.executable, "-m", "ganbench.train", *ARGS, f"hydra.run.dir={where}"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return where


# discriminator calls at which the process dies: before any checkpoint (restart from scratch); mid-epoch 3 after
# the checkpoint at generator step 5; in epoch 5, after an evaluation and the checkpoint at step 15
@pytest.mark.parametrize("kill_at", [7, 19, 37])
def test_sigkill_then_rerun_ends_bitwise_like_an_uninterrupted_run(cli, run, tmp_path, reference, kill_at):
    killed = cli(*ARGS, env={"GANBENCH_TEST_KILL_AT": str(kill_at)})
    assert killed.returncode == -9, killed.stderr[-2000:]
    rd = tmp_path / "run"
    assert result(rd)["status"] == "running"  # never marked completed
    code, out = run(*ARGS)  # resumed in-process (the console script's main(); no second interpreter start-up)
    assert code == 0, out[-3000:]
    assert result(rd)["status"] == "completed" and result(rd)["g_steps"] == 24
    ours, ours_opt, ours_meta = final_state(rd)
    theirs, theirs_opt, theirs_meta = final_state(reference)
    assert ours.keys() == theirs.keys()
    different = [k for k in ours if not torch.equal(ours[k], theirs[k])]
    assert not different, f"differs after resume: {different}"
    for a, b in zip(ours_opt, theirs_opt):
        for p, q in zip(a["state"].values(), b["state"].values()):
            assert all(torch.equal(p[k], q[k]) for k in p)
    assert ours_meta["d_step"] == theirs_meta["d_step"] == 48
    mine, ref = result(rd)["metrics"], result(reference)["metrics"]
    assert mine["history"] == ref["history"] and mine["best_step"] == ref["best_step"]
    # the CSV holds each generator step once, whatever was replayed after the kill
    import pandas as pd

    rows = pd.read_csv(rd / "metrics.csv")
    for column in ("loss/d", "toy/reverse_kl"):  # the loss rows, and the evaluation rows
        steps = rows.dropna(subset=[column])["g_step"].astype(int)
        assert not steps.duplicated().any() and steps.max() == 24, column
