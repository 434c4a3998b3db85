"""Study presets: Kurach et al. 2019's grid as one command, launched through submitit, resumable and idempotent."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from conftest import ROOT, result
from ganbench.config import CONF_DIR, group_options
from ganbench.search import apply_search, draw

KURACH = sorted(p.stem for p in (CONF_DIR / "experiment" / "kurach2019").glob("*.yaml"))


def sweep_points(params: dict) -> list[dict]:
    """Every job a sweeper params block expands to, as {key: value}."""
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    axes = [[(o.key_or_group, v) for v in (o.sweep_iterator() if o.is_sweep_override() else [o.value()])]
            for o in parsed]
    return [dict(point) for point in itertools.product(*axes)]


@pytest.mark.parametrize("preset", [p for p in KURACH if "mini" not in p and not p.startswith("bo_")])
def test_kurach_presets_expand_to_table_1s_grid(preset):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment=kurach2019/{preset}"], return_hydra_config=True)
    points = sweep_points(OmegaConf.to_container(cfg.hydra.sweeper.params))
    assert len(points) == 3 * 9 * 24 * 5  # loss x reg x Table 1's 24 settings x 5 seeds
    assert {p["loss"] for p in points} == {"ns", "ls_sigmoid", "wgan"}
    regs = {tuple(p["reg"]) if isinstance(p["reg"], list) else p["reg"] for p in points}
    assert regs == {"none", "gp", "dragan", "sn", "ln", "bn", "l2", ("sn", "gp"), ("ln", "gp")}
    for p in points[:: 97]:  # every value names a real option
        assert p["loss"] in group_options("loss") and p["optim"] in group_options("optim")
    assert cfg.optim.batch_size == 64 and cfg.metrics.num_fake == cfg.metrics.num_real == 10_000
    settings = {(p["optim"], p["optim.lr"], p["penalty_weight"]) for p in points}
    assert len(settings) == 24
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):  # budgets in discriminator steps
        job = compose("train", overrides=[f"experiment=kurach2019/{preset}", "optim=adam_0.5_0.9_n5"])
    budget = 200_000 if "cifar" in preset else 100_000
    assert job.optim.g_steps * job.optim.n_disc == budget and job.optim.n_disc == 5
    # the study's code (compare_gan v2): z ~ U[-1, 1], D called on reals and fakes separately, its weight init
    assert job.optim.prior == "uniform" and job.family.d_calls == "separate" and job.data.range == "unit"
    init = "normal_0.02" if preset.startswith("sndcgan") else "compare_gan"
    assert job.model.generator.init == job.model.discriminator.init == init
    if preset.startswith("sndcgan"):
        assert job.model.discriminator.layout == "compare_gan" and job.model.discriminator.recenter
    else:  # compare_gan's resnet blocks and mean pooling
        assert job.model.generator.block == job.model.discriminator.block == "compare_gan"
        assert job.model.discriminator.pool == "mean"


@pytest.mark.parametrize("preset", [p for p in KURACH if p.startswith("bo_") and "mini" not in p])
def test_kurach_bo_presets_search_table_2s_ranges(preset):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment=kurach2019/{preset}"], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.sampler._target_.endswith("TPESampler")
    assert (sweeper.n_trials, sweeper.n_jobs) == (120, 10)  # 12 rounds of 10 parallel trials
    assert dict(sweeper.params) == {"optim.lr": "tag(log, interval(0.00001, 0.01))",
                                    "penalty_weight": "tag(log, interval(0.1, 100))",
                                    "optim.beta1": "interval(0.0, 0.999)", "optim.beta2": "interval(0.0, 0.999)",
                                    "optim.n_disc": "choice(1, 5)"}
    assert sweeper.max_failure_rate == 1.0  # a failed trial never aborts the study


def sweep(tmp_path, cache_dir, *overrides, launcher=None):
    cmd = [sys.executable, "-m", "ganbench.train", "-m", "experiment=kurach2019/mini", *overrides,
           f"hydra.sweep.dir={tmp_path / 'sweep'}", *([f"hydra/launcher={launcher}"] if launcher else [])]
    env = {**os.environ, "WANDB_MODE": "offline", "GANBENCH_CACHE": str(cache_dir), "PYTHONPATH": str(ROOT / "tests")}
    return cmd, env


def test_mini_grid_through_submitit_local_then_analysis(tmp_path, cache_dir):
    """The acceptance path of a study: a grid launched through submitit (as on SLURM), then analysed."""
    cmd, env = sweep(tmp_path, cache_dir, "loss=ns,wgan", "reg=none,[sn,gp]", "optim.lr=0.001",
                     launcher="local_parallel")
    # four jobs at once on a 2-core machine: one thread each, not torch's default of one per core
    proc = subprocess.run(cmd, env={**env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = {p.parent.name: result(p.parent) for p in (tmp_path / "sweep").rglob("result.json")}
    assert sorted(records) == sorted(f"loss={loss},optim.lr=0.001,reg={reg}" for loss in ("ns", "wgan")
                                     for reg in ("none", "[sn,gp]"))
    for name, r in records.items():
        assert r["status"] == "completed", (name, r.get("error"))
        assert r["g_steps"] == 300 and r["metrics"]["primary"] == "toy/reverse_kl"
    gp = records["loss=wgan,optim.lr=0.001,reg=[sn,gp]"]["config"]["reg"]
    assert set(gp) == {"sn", "gp"} and gp["gp"]["weight"] == 1.0  # penalty_weight applied
    # the analysis of that sweep: one row per run with its cell, the best score per cell, every figure
    import pandas as pd

    out = tmp_path / "analysis"
    analysis = subprocess.run([sys.executable, "-m", "ganbench.analyze", str(tmp_path / "sweep"), "--out", str(out),
                               "--bootstrap", "200"], env=env, capture_output=True, text=True, timeout=300)
    assert analysis.returncode == 0, analysis.stderr[-3000:]
    runs = pd.read_csv(out / "runs.csv")
    assert sorted(zip(runs["loss"], runs["reg"])) == [("ns", "gp+sn"), ("ns", "none"), ("wgan", "gp+sn"),
                                                      ("wgan", "none")]
    for _, row in runs.iterrows():  # each score is the run's best toy/reverse_kl from its result.json
        name = f"loss={row['loss']},optim.lr=0.001,reg={'[sn,gp]' if row['reg'] == 'gp+sn' else 'none'}"
        assert row["score"] == pytest.approx(records[name]["metrics"]["best"]["toy/reverse_kl"])
    report = (out / "report.md").read_text()
    assert "toy/reverse_kl" in report and "| completed | 4 |" in report
    figures = {p.name for p in (out / "figures").iterdir()}
    assert len(figures) >= 8 and {p.rsplit(".", 1)[1] for p in figures} == {"png", "pdf"}


def test_a_killed_sweep_relaunched_leaves_completed_runs_untouched(tmp_path, cache_dir):
    cmd, env = sweep(tmp_path, cache_dir, "loss=ns,wgan", "reg=none,sn", "optim.lr=0.001")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    completed = []
    while time.time() < deadline and proc.poll() is None:
        completed = [p for p in (tmp_path / "sweep").rglob("result.json") if result(p.parent)["status"] == "completed"]
        if len(completed) >= 2:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 2 <= len(completed) < 4
    before = {p: p.stat().st_mtime_ns for d in completed for p in d.parent.rglob("*") if p.is_file()}
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    records = [result(p.parent) for p in (tmp_path / "sweep").rglob("result.json")]
    assert len(records) == 4 and all(r["status"] == "completed" for r in records)
    changed = [p for p, t in before.items() if p.stat().st_mtime_ns != t and p.name != "train.log"
               and ".hydra" not in p.parts]
    assert not changed, changed


def test_optuna_rounds_of_parallel_trials_survive_a_diverging_trial(run, tmp_path):
    """Kurach's Table 2 machinery on the toy: 2 rounds of 2 trials; a trial whose loss turns NaN is recorded as
    diverged and reports a penalty, and the study goes on to pick a completed trial as the best."""
    code, out = run("experiment=kurach2019/bo_mini", "hydra.sweeper.n_trials=4", "loss._target_=nan_loss.NaNAfter",
                    "+loss.calls=choice(3,1000000000)", multirun=True)
    assert code == 0, out[-3000:]
    assert out.count("Launching 2 jobs") == 2
    records = [result(p.parent) for p in (tmp_path / "sweep").rglob("result.json")]
    statuses = sorted(r["status"] for r in records)
    assert len(records) == 4 and "diverged" in statuses and "completed" in statuses
    for r in records:  # the diverged trial is the one whose loss was set to turn NaN after 3 calls
        assert (r["status"] == "diverged") == (r["config"]["loss"]["calls"] == 3)
    best = min(r["metrics"]["best"]["toy/reverse_kl"] for r in records if r["status"] == "completed")
    reported = float(out.split("Best value: ")[1].split()[0])
    assert reported == pytest.approx(best)


LUCIC = {  # preset: (data, training images, epochs)
    "mnist": ("mnist", 60_000, 20), "fashion_mnist": ("fashion_mnist", 60_000, 20),
    "cifar10": ("cifar10", 50_000, 100), "celeba": ("celeba", 162_770, 40),
}
LUCIC_MODELS = {"mm": ("mm", ["none"]), "ns": ("ns", ["none"]), "ls": ("ls_sigmoid", ["none"]),
                "wgan": ("wgan", ["wclip"]), "wgan_gp": ("wgan", ["gp"]), "dragan": ("ns", ["dragan_lucic"]),
                "began": ("began", ["none"]), "vae": ("vae", ["none"])}  # the VAE: its ELBO marker loss
LUCIC_FAMILIES = {"began": "began", "vae": "vae"}  # the others: family=gan


def test_lucic_presets_are_all_there():
    assert sorted(p.stem for p in (CONF_DIR / "experiment" / "lucic2018").glob("*.yaml")) == sorted([*LUCIC, "mini"])


@pytest.mark.parametrize("preset", sorted(LUCIC))
@pytest.mark.parametrize("phase,samples", [("lucic2018_wide", 100), ("lucic2018_narrow", 50)])
def test_lucic_presets_expand_to_the_random_search(preset, phase, samples):
    data, n_train, epochs = LUCIC[preset]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment=lucic2018/{preset}", f"search={phase}"],
                      return_hydra_config=True)
        points = sweep_points(OmegaConf.to_container(cfg.hydra.sweeper.params))
        assert len(points) == 8 * samples  # eight models x the phase's samples
        assert {p["gan"] for p in points} == set(LUCIC_MODELS)
        assert {p["search.sample"] for p in points} == set(range(samples))
        for gan, (loss, reg) in LUCIC_MODELS.items():  # each model is its loss and regularizer
            job = compose("train", overrides=[f"experiment=lucic2018/{preset}", f"search={phase}", f"gan={gan}"],
                          return_hydra_config=True)
            assert job.hydra.runtime.choices.loss == loss and list(job.reg) == reg
            assert job.hydra.runtime.choices.family == LUCIC_FAMILIES.get(gan, "gan")
            # compare_gan v1 (the study's code): D on [0, 1] images, D called on reals and fakes apart, its init
            assert job.data.range == "unit" and job.family.d_calls == "separate"
            assert job.model.generator.init == job.model.discriminator.init == "compare_gan"
            if preset in ("mnist", "fashion_mnist"):  # Lucic's FID on MNIST-like data: Inception, gray -> RGB
                assert job.metrics.extractor == "inception"
            assert job.optim.prior == ("normal" if gan == "vae" else "uniform")  # compare_gan v1's z
            if gan in ("began", "vae"):  # compare_gan v1's: D/encoder on [0, 1] images
                assert job.data.range == "unit"
            if gan == "began":  # compare_gan v1's BEGAN: k unclipped, its autoencoder, its defaults
                assert (job.family.clip_k, job.family.autoencoder) == (False, "lucic")
                job.search.sample = 0
                apply_search(job)
                lo, hi = (0.0, 1.0) if phase == "lucic2018_wide" else (0.6, 0.9)
                assert lo <= job.family.gamma <= hi
                if phase == "lucic2018_wide":
                    assert 1e-4 <= job.family.lambda_k <= 1e-2
                else:
                    assert job.family.lambda_k == 1e-3
    assert cfg.hydra.runtime.choices.model == "infogan" and cfg.hydra.runtime.choices.data == data
    assert (cfg.optim.batch_size, cfg.optim.z_dim, cfg.ema.decay) == (64, 64, 0)
    assert cfg.metrics.num_fake == cfg.metrics.num_real == 10_000 and cfg.metrics.every == 0
    assert cfg.data.resolution == {"mnist": 28, "fashion_mnist": 28, "cifar10": 32, "celeba": 64}[preset]
    space = OmegaConf.to_container(cfg.search.space)
    if phase == "lucic2018_wide":
        assert space == {"optim.lr": "tag(log, interval(1e-5, 1e-2))", "optim.beta1": "interval(0, 1)",
                         "optim.beta2": 0.999, "optim.n_disc": "choice(1, 5)",
                         "model.discriminator.batch_norm": "choice(true, false)",
                         "reg.gp.weight": "tag(log, interval(0.1, 100))",
                         "reg.dragan_lucic.weight": "tag(log, interval(0.1, 100))",
                         "reg.wclip.clip": "tag(log, interval(0.001, 1))",
                         "family.gamma": "interval(0, 1)", "family.lambda_k": "tag(log, interval(1e-4, 1e-2))"}
    else:
        assert (space["optim.lr"], space["optim.beta1"], space["optim.n_disc"]) == (
            "tag(log, interval(1e-4, 1e-3))", 0.5, 1)
        assert (space["family.gamma"], space["family.lambda_k"]) == ("interval(0.6, 0.9)", 0.001)
    for n_disc in (1, 5):  # the budget: epochs of the training set, counted in discriminator steps
        cfg.optim.n_disc = n_disc
        assert cfg.optim.g_steps * n_disc == pytest.approx(epochs * n_train / 64, abs=n_disc)


def test_lucic_mini_wide_narrow_then_the_best_setting_with_more_seeds(run, tmp_path, monkeypatch, capfd):
    """The whole Lucic et al. machinery, shortened: two models x two samples of each phase, the analysis, then its
    rerun_best.sh commands, which train the best setting of each model with a new seed and the same draws."""
    import shlex

    import pandas as pd

    import ganbench.train
    from ganbench.analyze.__main__ import main as analyze_main
    from conftest import call_main

    short = ["gan=ns,wgan", "search.sample=range(0,2)", "optim.g_steps=15", "metrics.num_fake=500"]
    for phase in ("lucic2018_wide", "lucic2018_narrow"):
        code, out = run("experiment=lucic2018/mini", f"search={phase}", *short, multirun=True)
        assert code == 0, out[-3000:]
    records = {p.parent.name: result(p.parent) for p in (tmp_path / "sweep").rglob("result.json")}
    assert len(records) == 8 and all(r["status"] == "completed" for r in records.values())
    for name, r in records.items():  # each run holds the draws of its own sample and phase
        phase = "lucic2018_narrow" if "search=lucic2018_narrow" in name else "lucic2018_wide"
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            space = compose("train", overrides=["experiment=lucic2018/mini", f"search={phase}"]).search
        sample = r["config"]["search"]["sample"]
        if sample == 0:  # compare_gan v1's TuneParams: sample 0 is the model's defaults (conf/gan/<model>.yaml)
            gan = "ns" if "gan=ns" in name else "wgan"
            with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
                default = compose("train", overrides=["experiment=lucic2018/mini", f"gan={gan}"]).optim.lr
            assert r["config"]["optim"]["lr"] == default
            continue
        assert r["config"]["optim"]["lr"] == pytest.approx(
            draw("optim.lr", space.space["optim.lr"], space.seed, sample))
    code, out = call_main(analyze_main, "analyze", [str(tmp_path / "sweep"), "--rerun-best", "2",
                                                    "--bootstrap", "50"], monkeypatch, capfd)
    assert code == 0, out
    cells = pd.read_csv(tmp_path / "sweep" / "analysis" / "cells.csv")
    assert sorted(zip(cells["loss"], cells["reg"])) == [("ns", "none"), ("wgan", "wclip")]
    script = (tmp_path / "sweep" / "analysis" / "rerun_best.sh").read_text()
    commands = [shlex.split(line) for line in script.splitlines() if line.startswith("python -m ganbench.train")]
    assert len(commands) == 2
    for argv in commands:
        code, out = call_main(ganbench.train.main, "ganbench-train", argv[3:], monkeypatch, capfd)
        assert code == 0, out[-3000:]
    reruns = [result(p.parent) for p in (tmp_path / "sweep_seeds").rglob("result.json")]
    assert len(reruns) == 2 and all(r["status"] == "completed" and r["seed"] == 1 for r in reruns)
    for r in reruns:  # the rerun is the best run of its model with another seed: same draws, same model
        loss = r["config"]["loss"]["_target_"]
        best = min((x for x in records.values() if x["config"]["loss"]["_target_"] == loss),
                   key=lambda x: x["metrics"]["best"]["fid/domain_test360"])
        assert r["config"]["optim"] == best["config"]["optim"] and r["config"]["reg"] == best["config"]["reg"]
        assert r["config"]["name"] == "lucic2018_mini_seeds"
    # analysed together, each best setting now has its two seeds
    code, out = call_main(analyze_main, "analyze", [str(tmp_path / "sweep"), str(tmp_path / "sweep_seeds"),
                                                    "--out", str(tmp_path / "both"), "--bootstrap", "50"],
                          monkeypatch, capfd)
    assert code == 0, out
    both = pd.read_csv(tmp_path / "both" / "cells.csv")
    assert both["setting_seeds"].tolist() == [2, 2]
