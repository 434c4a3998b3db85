"""The training entrypoint end to end: sweeps, resume, determinism, divergence, W&B offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import TOY, read_csv, result

KURACH_LOSSES = ["ns", "ls", "wgan"]
KURACH_REGS = ["none", "gp", "dragan", "sn", "ln", "bn", "l2"]


def test_kurach_grid_trains_every_cell_on_the_toy_mlp(run, tmp_path):
    p = run(f"loss={','.join(KURACH_LOSSES)}", f"reg={','.join(KURACH_REGS)}", *TOY, "optim.g_steps=3",
            multirun=True)
    assert p[0] == 0, p[1][-3000:]
    runs = sorted(d for d in (tmp_path / "sweep").iterdir() if d.is_dir())
    assert len(runs) == len(KURACH_LOSSES) * len(KURACH_REGS)
    for loss in KURACH_LOSSES:
        for reg in KURACH_REGS:
            run = next(d for d in runs if f"loss={loss}," in d.name + "," and f"reg={reg}," in d.name + ",")
            r = result(run)
            assert r["status"] == "completed" and r["g_steps"] == 3, (run.name, r.get("error"))
            assert r["choices"]["loss"] == loss
            assert list(r["config"]["reg"]) == [reg]


def test_other_losses_and_composed_regularizers_train(run, tmp_path):
    p = run("loss=mm,hinge,ls_sigmoid", "reg=r1,r2,wclip,dragan_lucic,[sn,gp]", *TOY, "optim.g_steps=2",
            multirun=True)
    assert p[0] == 0, p[1][-3000:]
    runs = [d for d in (tmp_path / "sweep").iterdir() if d.is_dir()]
    assert len(runs) == 15
    assert all(result(d)["status"] == "completed" for d in runs)
    composed = next(d for d in runs if "reg=[sn,gp]" in d.name)
    assert set(result(composed)["config"]["reg"]) == {"sn", "gp"}


def test_stop_and_rerun_resumes_from_the_last_checkpoint(run, tmp_path):
    args = [*TOY, "optim.g_steps=8", "log_every=1"]
    first = run(*args, "stop_after=4")
    assert first[0] == 0, first[1][-3000:]
    rd = tmp_path / "run"
    assert result(rd)["status"] == "interrupted" and result(rd)["g_steps"] == 4
    assert (rd / "checkpoints" / "last.ckpt").exists()
    second = run(*args)
    assert second[0] == 0, second[1][-3000:]
    assert "resuming from" in second[1]
    r = result(rd)
    assert r["status"] == "completed" and r["g_steps"] == 8
    steps = read_csv(rd / "metrics.csv")["g_step"].dropna().astype(int).tolist()
    assert steps == list(range(1, 9))  # rows of both sessions, none repeated


def test_a_completed_run_is_left_alone(run, tmp_path):
    args = [*TOY, "optim.g_steps=2"]
    assert run(*args)[0] == 0
    rd = tmp_path / "run"
    before = {p: p.stat().st_mtime_ns for p in rd.rglob("*") if p.is_file()}
    again = run(*args)
    assert again[0] == 0 and "already completed" in again[1]
    after = {p: p.stat().st_mtime_ns for p in before}
    changed = [p for p in before if p.name not in ("train.log",) and ".hydra" not in str(p) and before[p] != after[p]]
    assert not changed


def test_same_seed_same_losses_at_every_step(run, tmp_path):
    args = ["model=dcgan", "data=digits", "model.generator.width=8", "model.discriminator.width=8", "reg=gp",
            "augment=diffaug", "optim.g_steps=6", "optim.batch_size=16", "log_every=1", "logger=[csv]",
            "metrics=none", "samples.every=0", "checkpoint.every=0"]
    for name in ("a", "b"):
        p = run(*args, run_dir=tmp_path / name)
        assert p[0] == 0, p[1][-3000:]
    a, b = read_csv(tmp_path / "a" / "metrics.csv"), read_csv(tmp_path / "b" / "metrics.csv")
    assert len(a) == 6
    for col in ("loss/d", "loss/g", "reg/gp"):
        assert a[col].tolist() == b[col].tolist()
    c = run(*args, "seed=1", run_dir=tmp_path / "c")
    assert c[0] == 0
    assert read_csv(tmp_path / "c" / "metrics.csv")["loss/d"].tolist() != a["loss/d"].tolist()


def test_nan_loss_stops_the_run_and_records_divergence(run, tmp_path):
    p = run(*TOY, "optim.g_steps=50", "loss._target_=nan_loss.NaNAfter", "+loss.calls=5", "checkpoint.every=2")
    assert p[0] == 0, p[1][-3000:]
    r = result(tmp_path / "run")
    assert r["status"] == "diverged"
    assert r["diverged"]["g_step"] == 5 and "loss/d" in r["diverged"]["non_finite"]
    assert r["g_steps"] == 5
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()  # the last good checkpoint is kept
    assert "diverged at generator step 5" in p[1]
    # a rerun keeps the divergence as the result
    again = run(*TOY, "optim.g_steps=50", "loss._target_=nan_loss.NaNAfter", "+loss.calls=5", "checkpoint.every=2")
    assert "already diverged" in again[1]


def test_nan_at_the_first_step_is_recorded(run, tmp_path):
    p = run(*TOY, "optim.g_steps=5", "loss._target_=nan_loss.NaNAfter", "+loss.calls=0")
    assert p[0] == 0
    r = result(tmp_path / "run")
    assert r["status"] == "diverged" and r["diverged"]["g_step"] == 0


def test_wandb_offline_gives_one_run_per_job(run, tmp_path):
    p = run("loss=ns,wgan", *TOY, "optim.g_steps=2", "logger=[csv,wandb]", "logger.wandb.mode=offline",
            multirun=True, env={"WANDB_API_KEY": "", "HOME": str(tmp_path)})
    assert p[0] == 0, p[1][-3000:]
    runs = [d for d in (tmp_path / "sweep").iterdir() if d.is_dir()]
    ids = set()
    for rd in runs:
        offline = list((rd / "wandb").glob("offline-run-*"))
        assert len(offline) == 1, rd
        run_id = (rd / "wandb_id").read_text()
        assert offline[0].name.endswith(run_id)
        ids.add(run_id)
    assert len(ids) == 2


def test_auto_wandb_mode_without_credentials_is_offline_and_never_prompts(run, tmp_path):
    env = {"WANDB_MODE": "", "WANDB_API_KEY": "", "HOME": str(tmp_path)}
    p = run(*TOY, "optim.g_steps=1", "logger=[wandb]", env=env)
    assert p[0] == 0, p[1][-3000:]
    assert list((tmp_path / "run" / "wandb").glob("offline-run-*"))


def test_run_directory_holds_the_promised_files(run, tmp_path):
    p = run("model=dcgan", "data=digits", "model.generator.width=8", "model.discriminator.width=8",
            "optim.g_steps=4", "optim.batch_size=16", "logger=[csv]", "metrics=none", "samples.every=2",
            "checkpoint.every=2", "log_every=1")
    assert p[0] == 0, p[1][-3000:]
    rd = tmp_path / "run"
    r = result(rd)
    for key in ("status", "config", "seed", "g_steps", "wall_time_s", "g_steps_per_s", "versions", "git_commit"):
        assert key in r, key
    assert r["versions"]["torch"] and r["g_steps_per_s"] > 0
    assert (rd / "config.yaml").exists() and (rd / ".hydra" / "config.yaml").exists()
    assert sorted(p.name for p in (rd / "samples").glob("*.png")) == ["step_0000002.png", "step_0000004.png"]
    assert (rd / "checkpoints" / "last.ckpt").exists()
    assert len(read_csv(rd / "metrics.csv")) == 4


def test_a_failing_job_is_recorded_and_never_aborts_the_sweep(run, tmp_path):
    toy = [o for o in TOY if not o.startswith("optim.batch_size")]
    code, out = run(*toy, "optim.g_steps=2", "optim.batch_size=32,60000", multirun=True)
    assert code == 0, out[-3000:]
    records = {r["config"]["optim"]["batch_size"]: r for r in
               (result(p.parent) for p in (tmp_path / "sweep").rglob("result.json"))}
    assert {size: r["status"] for size, r in records.items()} == {32: "completed", 60000: "failed"}
    assert "optim.batch_size=60000 is larger" in records[60000]["error"]


def test_metrics_none_wins_over_an_experiment_that_tunes_metrics(run, tmp_path):
    code, out = run("experiment=quickstart", "metrics=none", "optim.g_steps=2", "logger=[csv]", "samples.every=0")
    assert code == 0, out[-3000:]
    r = result(tmp_path / "run")
    assert r["status"] == "completed" and "metrics" not in r


def test_16_mixed_runs_both_optimizers_through_one_grad_scaler(tmp_path):
    """16-mixed (GPU AMP) with manual optimisation and two optimizers, on CPU: Lightning turns 16-mixed into bf16
    on a CPU, so the test hands the Trainer the 16-mixed plugin itself (fp16 autocast + a GradScaler). Each of the
    D and G steps is scaled, unscaled and stepped by the one scaler (one update per optimizer step), the weights
    stay finite, and the scaler's state is in the checkpoint, so a resumed run continues with the same scale."""
    import lightning as L
    import torch
    from hydra import compose, initialize_config_dir
    from lightning.pytorch.plugins.precision import MixedPrecision

    from ganbench.config import CONF_DIR
    from ganbench.build import build

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["model=dcgan", "model.generator.width=8", "model.discriminator.width=8",
                                          "loss=wgan", "reg=[gp]", "optim.g_steps=6", "optim.n_disc=2",
                                          "optim.batch_size=16", "metrics=none", "logger=[csv]"])
    module, dm, _ = build(cfg)
    plugin = MixedPrecision("16-mixed", "cpu")
    scaler = plugin.scaler
    calls = {"update": 0, "step": 0}
    for name in calls:
        real = getattr(scaler, name)

        def counted(*args, _real=real, _name=name, **kwargs):
            calls[_name] += 1
            return _real(*args, **kwargs)

        setattr(scaler, name, counted)
    trainer = L.Trainer(accelerator="cpu", devices=1, plugins=[plugin], max_steps=6 * 3, max_epochs=-1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        use_distributed_sampler=False, default_root_dir=str(tmp_path))
    trainer.fit(module, datamodule=dm)
    assert (module.g_step, module.d_step) == (6, 12) and module.diverged is None
    assert calls == {"update": 18, "step": 18}  # 12 D steps + 6 G steps, each through the one scaler
    assert all(torch.isfinite(p).all() for p in module.parameters())
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    saved = torch.load(tmp_path / "last.ckpt", weights_only=False)["MixedPrecision"]
    assert saved["scale"] == scaler.get_scale() and saved["_growth_tracker"] == scaler._get_growth_tracker()


def test_bf16_mixed_precision_with_a_gradient_penalty_trains(run, tmp_path):
    code, out = run("model=dcgan", "model.generator.width=16", "model.discriminator.width=16", "reg=gp",
                    "trainer.precision=bf16-mixed", "optim.g_steps=4", "log_every=1", "logger=[csv]",
                    "metrics=none", "samples.every=0", "optim.batch_size=32")
    assert code == 0, out[-3000:]
    assert result(tmp_path / "run")["status"] == "completed"
    rows = read_csv(tmp_path / "run" / "metrics.csv").dropna(subset=["loss/d"])
    assert len(rows) == 4 and rows[["loss/d", "loss/g", "reg/gp"]].notna().all().all()


def test_a_long_override_list_gets_a_short_stable_run_directory_name():
    from ganbench.config import run_id

    assert run_id("") == "default" and run_id("loss=ns,reg=gp") == "loss=ns,reg=gp"
    long = ",".join(f"model.generator.key_{i}={i}" for i in range(40))
    name = run_id(long)
    assert len(name.encode()) <= 200 and name == run_id(long) and name.startswith(long[:100])
    assert run_id(long + ",seed=1") != name  # the hash covers the whole list


def test_without_a_terminal_progress_is_logged_every_interval(monkeypatch, caplog):
    """No TTY, no progress bar: ProgressLog writes step, rate and time left once per interval, not more often."""
    import logging
    from types import SimpleNamespace

    from ganbench import callbacks

    clock = iter([0.0, 30.0, 61.0, 62.0, 130.0])
    monkeypatch.setattr(callbacks.time, "monotonic", lambda: next(clock))
    cb, module = callbacks.ProgressLog(total=1000, every_s=60), SimpleNamespace(g_step=0)
    with caplog.at_level(logging.INFO, logger="ganbench"):
        cb.on_train_start(None, module)  # t 0, step 0
        for step in (100, 200, 250, 400):  # t 30 (too soon), 61 (logged), 62 (too soon), 130 (logged)
            module.g_step = step
            cb.on_train_batch_end(None, module, None, None, 0)
        module.g_step = 900
        cb.on_train_batch_end(SimpleNamespace(is_global_zero=False), module, None, None, 0)  # other DDP ranks: silent
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["g_step 200/1000 (20.0%), 3.28 steps/s, about 4 min left",
                     "g_step 400/1000 (40.0%), 2.90 steps/s, about 3 min left"]
