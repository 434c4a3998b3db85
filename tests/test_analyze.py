"""python -m ganbench.analyze: the run table, the statistics (against closed forms and brute force), the CLI's
files and report (against known answers), and bad input. Synthetic result.json files only; no training."""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ganbench.analyze import analyze, build_study, stats
from ganbench.analyze.__main__ import main
from ganbench.wandb_mode import resolve_wandb_mode
from ganbench.analyze.table import arrow_safe, collect, flatten, reg_label, setting_id

ROOT = Path(__file__).resolve().parent.parent
PRIMARY = "fid/domain_test360"
PROTOCOL = {"extractor": "domain", "dataset": "digits", "reference_split": "test", "num_real": 360,
            "num_fake": 1000, "seed": 2020, "resize": None}
REGS = {"none": {"_target_": "ganbench.regularizers.NoRegularizer"},
        "gp": {"_target_": "ganbench.regularizers.GradientPenalty", "weight": 10.0},
        "sn": {"_target_": "ganbench.regularizers.SpectralNorm", "generator": False, "power_iterations": 1}}


def write_run(root: Path, name: str, *, loss="ns", regs=("none",), model="dcgan", data="digits", seed=0,
              lr=2e-4, status="completed", fid=10.0, final_fid=None, metrics=True, protocol=None,
              ckpt=b"", extra=b"", choices_model=True, config_extra=None) -> Path:
    """One run directory with a result.json shaped like ganbench.train's (and optional files)."""
    run_dir = root / name
    run_dir.mkdir(parents=True)
    config = {"model": {"name": model, "generator": {"width": 32}}, "loss": {"_target_": f"losses.{loss}"},
              "reg": {r: dict(REGS[r]) for r in regs},
              "data": {"_target_": f"data.{data}", "resolution": 16, "root": "/data", "num_workers": 0},
              "optim": {"lr": lr, "lr_g": None, "lr_d": None, "beta1": 0.5, "beta2": 0.999, "n_disc": 1,
                        "batch_size": 64, "z_dim": 64, "g_steps": 100},
              "trainer": {"accelerator": "cpu", "devices": 1}, "logger": {"csv": {"_target_": "csv"}},
              "name": "study", "seed": seed, "resume": True, "samples": {"every": 50}, "tags": ["a", "b"],
              **(config_extra or {})}
    choices = {"loss": loss, "data": data, "optim": "adam", **({"model": model} if choices_model else {})}
    rec = {"schema_version": 1, "status": status, "run_dir": "/elsewhere/" + name, "overrides": [],
           "choices": choices, "seed": seed, "g_steps_target": 100, "g_steps": 100 if status != "diverged" else 12,
           "config": config, "diverged": {"g_step": 12, "d_step": 12, "non_finite": {"loss/d": math.nan}}
           if status == "diverged" else None,
           "wall_time_s": 5.0, "train_time_s": 4.0, "g_steps_per_s": 25.0}
    if metrics and status != "diverged":
        final = fid if final_fid is None else final_fid
        rec["metrics"] = {"primary": PRIMARY, "protocol": protocol or PROTOCOL, "final_step": 100,
                          "final": {PRIMARY: final, "kid_mean/domain_test360": final / 10},
                          "best_step": 50, "best": {PRIMARY: fid, "kid_mean/domain_test360": fid / 10},
                          "history": [{"g_step": 50, PRIMARY: fid}]}
    (run_dir / "result.json").write_text(json.dumps(rec))
    if ckpt:
        (run_dir / "checkpoints" / "sub").mkdir(parents=True)
        (run_dir / "checkpoints" / "last.ckpt").write_bytes(ckpt[: len(ckpt) // 2])
        (run_dir / "checkpoints" / "sub" / "best.ckpt").write_bytes(ckpt[len(ckpt) // 2:])
    if extra:
        (run_dir / "samples").mkdir()
        (run_dir / "samples" / "step_1.png").write_bytes(extra)
    return run_dir


# --------------------------------------------------------------------------------------------------- table


def test_collect_rows_columns_labels_and_disk(tmp_path):
    a = write_run(tmp_path / "sweep", "a", regs=("sn", "gp"), fid=12.5, final_fid=14.0, ckpt=b"x" * 1000,
                  extra=b"y" * 300)
    write_run(tmp_path / "sweep", "nested/b", loss="wgan", regs=("none",), status="diverged", seed=3)
    write_run(tmp_path / "sweep", "c", regs=(), metrics=False, choices_model=False, model="mlp")
    (tmp_path / "sweep" / "not_a_run").mkdir()
    (tmp_path / "sweep" / "not_a_run" / "x.txt").write_text("ignored")

    df = collect([tmp_path / "sweep", a / "result.json"]).set_index("run_dir")  # the record path: no duplicate
    assert len(df) == 3
    ra, rb, rc = (df.loc[str(tmp_path / "sweep" / n)] for n in ("a", "nested/b", "c"))
    assert (ra["reg"], rb["reg"], rc["reg"]) == ("gp+sn", "none", "none")
    assert (ra["loss"], rb["loss"], rc["model"]) == ("ns", "wgan", "mlp")  # model from config when no choice
    assert ra["score"] == 12.5 and ra["best." + PRIMARY] == 12.5 and ra["final." + PRIMARY] == 14.0
    assert ra["best.kid_mean/domain_test360"] == 1.25 and ra["primary"] == PRIMARY
    assert ra["protocol.num_real"] == 360 and ra["protocol.extractor"] == "domain"
    assert ra["cfg.optim.lr"] == 2e-4 and ra["cfg.reg.gp.weight"] == 10.0 and ra["cfg.tags"] == '["a", "b"]'
    assert math.isnan(rb["score"]) and rb["status"] == "diverged" and rb["diverged_step"] == 12
    assert rb["seed"] == 3 and math.isnan(rc["score"]) and math.isnan(ra["diverged_step"])
    assert ra["disk.ckpt_bytes"] == 1000
    assert ra["disk.log_bytes"] == 300 + (a / "result.json").stat().st_size
    assert rb["disk.ckpt_bytes"] == 0
    assert list(df.reset_index().columns[:13]) == ["run_dir", "status", "loss", "reg", "model", "data", "seed",
                                                   "g_steps", "wall_time_s", "g_steps_per_s", "diverged_step",
                                                   "primary", "score"]


def test_parquet_takes_mixed_type_columns(tmp_path):
    write_run(tmp_path, "a", config_extra={"extra": 16})
    write_run(tmp_path, "b", lr=1e-3, config_extra={"extra": "auto"})
    df = collect([tmp_path])
    arrow_safe(df).to_parquet(tmp_path / "runs.parquet")
    back = pd.read_parquet(tmp_path / "runs.parquet").set_index("cfg.optim.lr")
    assert back.loc[2e-4, "cfg.extra"] == "16" and back.loc[1e-3, "cfg.extra"] == "auto"
    assert back.loc[2e-4, "score"] == 10.0


def test_flatten_and_reg_label():
    assert flatten({"a": {"b": 1, "c": [1, 2], "d": {}}, "e": None}, "cfg.") == \
        {"cfg.a.b": 1, "cfg.a.c": "[1, 2]", "cfg.a.d": "{}", "cfg.e": None}
    assert reg_label({"reg": {"sn": {}, "gp": {}}}) == "gp+sn"
    assert reg_label({"reg": {"none": {}}}) == reg_label({"reg": {}}) == reg_label({}) == "none"


def test_setting_ignores_seed_and_non_hyperparameters():
    base = {"optim": {"lr": 1e-4, "n_disc": 1}, "seed": 0, "name": "x", "logger": {"csv": {}},
            "trainer": {"devices": 1}, "data": {"resolution": 16, "root": "/a", "num_workers": 0}}
    other_seed = json.loads(json.dumps(base))
    other_seed.update(seed=7, name="y", logger={"wandb": {}}, trainer={"devices": 8})
    other_seed["data"].update(root="/b", num_workers=4)
    other_lr = json.loads(json.dumps(base))
    other_lr["optim"]["lr"] = 2e-4
    assert setting_id(base) == setting_id(other_seed)
    assert setting_id(base) != setting_id(other_lr)
    assert base["data"]["root"] == "/a" and base["seed"] == 0  # the config is not modified


# --------------------------------------------------------------------------------------------------- stats


def test_setting_scores_median_over_seeds_diverged_as_inf(tmp_path):
    for seed, fid in enumerate([5.0, 1.0, 3.0, None, 2.0]):  # seed 3 diverged: +inf, median of 1,2,3,5,inf = 3
        write_run(tmp_path, f"a{seed}", seed=seed, fid=fid or 0, status="diverged" if fid is None else "completed")
    for seed in range(5):  # 3 of 5 diverged: the median is +inf
        write_run(tmp_path, f"b{seed}", seed=seed, lr=1e-3, fid=1.0, status="diverged" if seed < 3 else "completed")
    write_run(tmp_path, "b5", seed=5, lr=1e-3, status="failed", metrics=False)  # not a result: not counted
    settings = stats.setting_scores(collect([tmp_path])).set_index("cfg.optim.lr")
    assert settings.loc[2e-4, "score"] == 3.0 and settings.loc[2e-4, "best_run"] == 1.0
    assert (settings.loc[2e-4, "n_runs"], settings.loc[2e-4, "n_diverged"]) == (5, 1)
    assert settings.loc[2e-4, "seeds"] == "0 1 2 3 4"
    assert settings.loc[1e-3, "score"] == math.inf and settings.loc[1e-3, "n_runs"] == 5
    assert settings.loc[1e-3, "n_diverged"] == 3 and settings.loc[1e-3, "best_run"] == 1.0
    assert len(settings) == 2 and set(settings["reg"]) == {"none"}


def test_top_fraction():
    values = np.r_[np.random.default_rng(0).permutation(np.arange(1.0, 101.0)), np.nan, np.nan]
    np.testing.assert_array_equal(stats.top_fraction(values, 0.05), [1, 2, 3, 4, 5])
    assert stats.top_fraction(values, 0.07).size == 7  # 0.07 * 100 is 7.000000000000001 in floats
    np.testing.assert_array_equal(stats.top_fraction([3.0, 1.0, 2.0], 0.05), [1.0])  # at least one
    np.testing.assert_array_equal(stats.top_fraction([np.inf, 4.0, np.inf], 0.5), [4.0, np.inf])
    assert stats.top_fraction([np.nan], 0.05).size == 0


@pytest.mark.parametrize("replace", [False, True])
def test_expected_min_matches_brute_force(replace):
    rng = np.random.default_rng(1)
    for n in range(1, 7):
        x = rng.integers(0, 5, n).astype(float)  # ties included
        x[rng.uniform(size=n) < 0.2] = np.inf  # and diverged settings
        for k in range(1, n + 1 if not replace else n + 3):
            draws = (itertools.product(x, repeat=k) if replace else itertools.combinations(x, k))
            brute = np.mean([min(d) for d in draws])
            exact = stats.expected_min(x, k, replace=replace)
            assert exact == pytest.approx(brute, rel=1e-12) or (math.isinf(exact) and math.isinf(brute)), \
                (x, k, exact, brute)
    w = stats.min_weights(50, 7)
    assert w.sum() == pytest.approx(1.0) and w[0] == pytest.approx(7 / 50) and np.all(w[44:] == 0)
    assert w[1] == pytest.approx(math.comb(48, 6) / math.comb(50, 7))


def test_bootstrap_mean_converges_to_exact_expectation():
    scores = np.random.default_rng(2).lognormal(3, 0.5, 40)
    budgets = [1, 2, 5, 10, 40, 60]  # 60 > n: with replacement
    curve = stats.min_score_vs_budget(scores, budgets, n_boot=20000, seed=3)
    for k, mean, lo, hi in zip(budgets, curve["mean"], curve["lo"], curve["hi"]):
        exact = stats.expected_min(scores, k)  # replace when k > n, as the bootstrap draws
        assert mean == pytest.approx(exact, rel=0.015), k
        assert lo <= exact <= hi
    assert curve["lo"][4] == curve["hi"][4] == scores.min()  # all 40 of 40: always the minimum
    assert np.all(np.diff(curve["mean"][:5]) < 0)  # more settings tried (of the n), lower minimum
    assert curve["mean"][0] == pytest.approx(scores.mean(), rel=0.02)


def test_budget_with_diverged_settings():
    scores = np.array([np.inf, np.inf, 5.0, 7.0, np.nan])  # NaN: not tried
    curve = stats.min_score_vs_budget(scores, [1, 2, 3, 4], n_boot=4000, seed=0)
    assert curve["p_inf"][0] == pytest.approx(0.5, abs=0.03)  # exact: 2 of 4
    assert curve["p_inf"][1] == pytest.approx(stats.p_all_diverged(scores, 2), abs=0.02)  # 1/6
    assert stats.p_all_diverged(scores, 2) == pytest.approx(1 / 6)
    assert curve["p_inf"][2] == 0 and curve["mean"][2] == pytest.approx(5.0 * 0.75 + 7.0 * 0.25, abs=0.05)
    assert curve["lo"][3] == curve["hi"][3] == curve["mean"][3] == 5.0  # diverged never win
    assert math.isinf(curve["mean"][0]) and math.isinf(curve["hi"][0]) and curve["lo"][0] == 5.0
    all_div = stats.min_score_vs_budget([np.inf, np.inf], [1, 2], n_boot=10)
    assert np.all(np.isinf(all_div["mean"])) and np.all(np.isinf(all_div["lo"])) and np.all(all_div["p_inf"] == 1)
    empty = stats.min_score_vs_budget([np.nan], [1], n_boot=10)
    assert np.isnan(empty["mean"][0]) and np.isnan(empty["hi"][0])
    assert stats.expected_min([np.inf, 1.0, 2.0], 2) == pytest.approx((1 + 1 + 2) / 3)
    assert math.isinf(stats.expected_min([np.inf, np.inf, 1.0], 2))


def test_pairwise_ci_excludes_zero_when_separated_includes_it_when_identical():
    rng = np.random.default_rng(4)
    low, high = rng.normal(10, 2, 30), rng.normal(20, 2, 30)
    same_a, same_b = rng.normal(15, 3, 30), rng.normal(15, 3, 30)  # independent draws of one distribution
    table = stats.pairwise_budget_differences({"low": low, "high": high, "twin": low.copy(), "a": same_a,
                                               "b": same_b}, k=5, n_boot=1000, seed=0)
    assert len(table) == 10
    pair = table.set_index(["a", "b"])
    lh = pair.loc[("low", "high")]
    assert lh["diff"] == pytest.approx(stats.expected_min(low, 5) - stats.expected_min(high, 5))
    assert lh["hi"] < 0 and lh["lo"] < lh["diff"] < lh["hi"] and lh["significant"]
    assert -12 < lh["diff"] < -8
    twin = pair.loc[("low", "twin")]
    assert twin["diff"] == 0 and twin["lo"] < 0 < twin["hi"] and not twin["significant"]
    ab = pair.loc[("a", "b")]
    assert ab["lo"] < 0 < ab["hi"] and not ab["significant"]
    again = stats.pairwise_budget_differences({"low": low, "high": high, "twin": low.copy(), "a": same_a,
                                               "b": same_b}, k=5, n_boot=1000, seed=0)
    pd.testing.assert_frame_equal(table, again)  # deterministic for a seed


def test_pairwise_needs_two_settings_and_handles_divergence():
    table = stats.pairwise_budget_differences({"one": [1.0], "many": [50.0, 60.0, 70.0],
                                               "broken": [np.inf, np.inf, 40.0]}, k=2, n_boot=200)
    pair = table.set_index(["a", "b"])
    assert not pair.loc[("one", "many"), "significant"]  # a single setting has no spread to resample
    assert pair.loc[("one", "many"), "diff"] == pytest.approx(1.0 - (50 * 2 / 3 + 60 / 3))
    assert math.isinf(pair.loc[("many", "broken"), "em_b"]) and pair.loc[("many", "broken"), "diff"] == -math.inf


# ----------------------------------------------------------------------------------------- study and CLI

BASE = {("ns", "none"): 10.0, ("ns", "gp"): 20.0, ("wgan", "none"): 30.0, ("wgan", "gp"): 40.0}
LRS = (1e-4, 2e-4, 4e-4)  # setting s: score base + s
SEED_OFFSETS = (0.0, 0.5, -0.25)  # seed median 0, best seed 2


def write_study(root: Path) -> None:
    """2 losses x 2 regs, 3 settings x 3 seeds per cell; wgan/gp setting 0, seed 2 diverged; one failed run."""
    for (loss, reg), base in BASE.items():
        for s, lr in enumerate(LRS):
            for seed, offset in enumerate(SEED_OFFSETS):
                diverged = (loss, reg, s, seed) == ("wgan", "gp", 0, 2)
                write_run(root, f"{loss}_{reg}_{s}_{seed}", loss=loss, regs=(reg,), lr=lr, seed=seed,
                          fid=base + s + offset, status="diverged" if diverged else "completed",
                          ckpt=b"c" * 100)
    write_run(root, "failed", status="failed", metrics=False, lr=8e-4)


def report_row(report: str, cell: tuple[str, ...]) -> list[str]:
    section = report.split("## Best per cell")[1].split("\n## ")[0]
    prefix = "| " + " | ".join(cell) + " |"
    rows = [line for line in section.splitlines() if line.startswith(prefix)]
    assert len(rows) == 1, section
    return [c.strip() for c in rows[0].strip("|").split("|")]


def test_study_diverged_runs_counted_never_win(tmp_path):
    write_study(tmp_path)
    study = build_study(collect([tmp_path]), n_boot=200)
    cells = study.cells.set_index(["loss", "reg"])
    assert cells.loc[("wgan", "gp"), "diverged"] == 1 and cells.loc[("wgan", "gp"), "runs"] == 9
    assert cells.loc[("wgan", "gp"), "best"] == 40.0 and cells.loc[("wgan", "gp"), "best_seed"] == 0
    assert cells.loc[("wgan", "gp"), "setting_median"] == 40.5  # median(40, 40.5, inf)
    assert cells.loc[("ns", "none"), "best"] == 9.75 and cells.loc[("ns", "none"), "setting_median"] == 10.0
    assert study.k == 3 and cells.loc[("ns", "gp"), "expected_min"] == 20.0  # all 3 of 3 settings: the min
    assert (study.runs["status"] == "diverged").sum() == 1 and len(study.runs) == 37
    assert len(study.pairwise) == 6 and study.pairwise["significant"].all()


def test_cli_writes_tables_figures_report(tmp_path, capsys):
    write_study(tmp_path / "sweep")
    out = tmp_path / "analysis"
    assert main([str(tmp_path / "sweep"), "--out", str(out), "--bootstrap", "300"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.count("\n") == 0 and "37 runs" in line and "1 diverged" in line and "9.75" in line

    for name in ("top_fraction", "budget", "best_seeds", "pairwise"):
        assert (out / "figures" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out / "figures" / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"

    runs = collect([tmp_path / "sweep"])
    for back in (pd.read_csv(out / "runs.csv"), pd.read_parquet(out / "runs.parquet")):
        assert list(back.columns) == list(runs.columns)
        back, ref = back.set_index("run_dir").sort_index(), runs.set_index("run_dir").sort_index()
        np.testing.assert_array_equal(back["score"], ref["score"])
        np.testing.assert_array_equal(back["cfg.optim.lr"], ref["cfg.optim.lr"])
        np.testing.assert_array_equal(back["disk.ckpt_bytes"], ref["disk.ckpt_bytes"])
        assert list(back["setting"]) == list(ref["setting"]) and list(back["reg"]) == list(ref["reg"])
    settings = pd.read_csv(out / "settings.csv").set_index(["loss", "reg", "cfg.optim.lr"])
    assert settings.loc[("ns", "none", 4e-4), "score"] == 12.0
    assert settings.loc[("wgan", "gp", 1e-4), "score"] == 40.5
    pairwise = pd.read_csv(out / "pairwise.csv")
    assert len(pairwise) == 6 and pairwise["significant"].all()

    report = (out / "report.md").read_text()
    #        data     model    loss  reg   runs diverged settings best  seed median seeds lr
    assert report_row(report, ("digits", "dcgan", "ns", "none"))[4:12] == \
        ["10", "0", "3", "9.75", "2", "10", "3", "0.0001"]  # 10 runs: the failed one is counted
    assert report_row(report, ("digits", "dcgan", "wgan", "gp"))[4:12] == \
        ["9", "1", "3", "40", "0", "40.5", "3", "0.0001"]
    assert "| diverged | 1 |" in report and "| completed | 35 |" in report and "| failed | 1 |" in report
    assert "Warning" not in report and "![budget](figures/budget.png)" in report
    assert "(figures/pairwise.pdf)" in report
    assert "| checkpoints | 3.5 KiB | 3600 |" in report  # 36 runs with 100 checkpoint bytes each


def test_mixed_protocols_are_flagged(tmp_path):
    write_run(tmp_path, "a", fid=5.0)
    write_run(tmp_path, "b", fid=6.0, lr=1e-3, protocol={**PROTOCOL, "num_real": 1000})
    study = analyze([tmp_path], out=tmp_path / "out", n_boot=50)
    report = (tmp_path / "out" / "report.md").read_text()
    assert len(study.protocols) == 2 and "Warning: 2 evaluation protocols are mixed" in report
    table = report.split("evaluation protocols are mixed")[1].split("\n## ")[0]
    assert "| num_real |" in table and "| 360 |" in table and "| 1000 |" in table
    assert "| extractor |" not in table  # only the keys that differ


def test_unreadable_record_is_counted_not_fatal(tmp_path):
    write_run(tmp_path, "a", fid=5.0)
    write_run(tmp_path, "b", fid=7.0, lr=1e-3)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "result.json").write_text('{"status": "compl')  # a run killed mid-write
    study = analyze([tmp_path], out=tmp_path / "out", n_boot=50)
    assert len(study.runs) == 3 and study.cells["best"].min() == 5.0
    assert "| unreadable | 1 |" in (tmp_path / "out" / "report.md").read_text()


def test_difference_matrix_is_antisymmetric():
    from ganbench.analyze.plots import difference_matrix

    pairs = pd.DataFrame({"a": ["x", "x", "y"], "b": ["y", "z", "z"], "diff": [1.0, -2.0, np.inf],
                          "significant": [True, False, True]})
    diff, sig = difference_matrix(pairs, ["x", "y", "z"])
    np.testing.assert_array_equal(diff, [[0, 1, -2], [-1, 0, np.inf], [2, -np.inf, 0]])
    np.testing.assert_array_equal(sig, [[0, 1, 0], [1, 0, 1], [0, 1, 0]])


def _one_line_error(stderr: str) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("ganbench: error: ") and "Traceback" not in stderr, stderr
    return lines[0]


def test_cli_bad_input_subprocess(tmp_path):
    p = subprocess.run([sys.executable, "-m", "ganbench.analyze", str(tmp_path / "missing")], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline"})
    assert p.returncode == 2 and p.stdout == ""
    assert "missing: no such file or directory" in _one_line_error(p.stderr)


@pytest.mark.parametrize("setup, args, words", [
    (lambda d: None, [], ["no result.json found"]),
    (lambda d: (d / "x.txt").write_text("x"), ["{d}/x.txt"], ["not a result.json"]),
    (lambda d: write_run(d, "a"), ["--top", "0"], ["--top"]),
    (lambda d: write_run(d, "a"), ["--budget", "0"], ["--budget"]),
    (lambda d: write_run(d, "a"), ["--bootstrap", "x"], ["--bootstrap", "invalid int"]),
    (lambda d: write_run(d, "a"), ["--nope"], ["unrecognized arguments", "--nope"]),
])
def test_cli_bad_input_one_line_exit_2(tmp_path, capsys, setup, args, words):
    d = tmp_path / "sweep"
    d.mkdir()
    setup(d)
    argv = [a.format(d=d) for a in args]
    code = main(argv if argv and not argv[0].startswith("--") else [str(d), *argv])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    line = _one_line_error(captured.err)
    for w in words:
        assert w in line, line
    assert not (d / "analysis" / "report.md").exists()


def test_cli_no_finite_score_writes_table_and_report_then_exit_2(tmp_path, capsys):
    write_run(tmp_path, "d0", status="diverged")
    write_run(tmp_path, "d1", status="diverged", seed=1)
    write_run(tmp_path, "f", status="failed", metrics=False)
    assert main([str(tmp_path)]) == 2
    line = _one_line_error(capsys.readouterr().err)
    assert "no run has a finite score" in line and "2 diverged" in line and "1 failed" in line
    out = tmp_path / "analysis"
    assert len(pd.read_csv(out / "runs.csv")) == 3 and not (out / "figures").exists()
    report = (out / "report.md").read_text()
    assert "| diverged | 2 |" in report and "None: no run has a finite score" in report


# ---------------------------------------------------------------------------------------------------- W&B


def test_wandb_mode_never_prompts(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert resolve_wandb_mode() == "offline"
    monkeypatch.setenv("WANDB_MODE", "online")
    assert resolve_wandb_mode() == "offline"  # online without a key would prompt
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    assert resolve_wandb_mode() == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_wandb_mode() == "disabled"


@pytest.mark.parametrize("api_key", [None, "k" * 40], ids=["no-key", "key"])
def test_wandb_logs_tables_and_figures(tmp_path, monkeypatch, api_key):
    """A stand-in wandb module records what is logged (the real one would start a service process). Without a
    key the run is offline; with one it is online, and an online start that fails falls back to offline."""
    calls: dict = {"modes": []}

    class Run:
        summary: dict = {}

        def log(self, data):
            calls["log"] = data

        def finish(self):
            calls["finished"] = True

    def init(**kw):
        calls["modes"].append(kw["mode"])
        calls["init"] = kw
        if kw["mode"] == "online":
            raise RuntimeError("server unreachable")
        return Run()

    fake = types.SimpleNamespace(
        init=init,
        Table=lambda dataframe: ("table", len(dataframe)), Image=lambda path: ("image", path),
        Settings=lambda **kw: kw)
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("WANDB_MODE", raising=False)
    if api_key:
        monkeypatch.setenv("WANDB_API_KEY", api_key)
    else:
        monkeypatch.delenv("WANDB_API_KEY", raising=False)
    write_study(tmp_path / "sweep")
    analyze([tmp_path / "sweep"], out=tmp_path / "out", n_boot=50, wandb_project="ganbench-study")
    assert calls["modes"] == (["online", "offline"] if api_key else ["offline"])
    assert calls["init"]["project"] == "ganbench-study"
    assert calls["log"]["table/runs"] == ("table", 37) and calls["log"]["table/cells"] == ("table", 4)
    assert calls["log"]["figure/budget"] == ("image", str(tmp_path / "out" / "figures" / "budget.png"))
    assert calls["finished"]


def test_wandb_push_with_the_real_library_writes_every_table_and_figure(tmp_path, monkeypatch):
    """The real wandb, offline (no network here): the run it writes holds the four tables with their rows and the
    four figures, ready for `wandb sync`."""
    import json

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("HOME", str(tmp_path))
    write_study(tmp_path / "sweep")
    study = analyze([tmp_path / "sweep"], out=tmp_path / "out", n_boot=50, wandb_project="ganbench-study")
    (run,) = (tmp_path / "out" / "wandb").glob("offline-run-*")
    tables = {p.name.split("_")[0]: json.loads(p.read_text()) for p in (run / "files" / "media").rglob("*.table.json")}
    assert sorted(tables) == ["cells", "pairwise", "runs", "settings"]
    assert len(tables["runs"]["data"]) == len(study.runs) == 37 and len(tables["cells"]["data"]) == 4
    assert "run_dir" in tables["runs"]["columns"] and len(tables["settings"]["data"]) == len(study.settings)
    figures = {p.name.rsplit("_", 2)[0] for p in (run / "files" / "media" / "images").rglob("*.png")}
    assert figures == {"top_fraction", "budget", "best_seeds", "pairwise"}


def test_sndcgan_bn_and_ln_cells_are_named_as_extending_the_study():
    """compare_gan's SNDCGAN has no BN/LN hook in D: the report names sndcgan x {bn, ln} (and with a penalty) as
    cells beyond Kurach et al.'s study; other models and regularizers are not named."""
    import pandas as pd

    from ganbench.analyze.report import extended_cells

    runs = pd.DataFrame({"model": ["sndcgan", "sndcgan", "sndcgan", "resnet_cifar", "sndcgan"],
                         "loss": ["ns", "wgan", "ns", "ns", "hinge"], "reg": ["bn", "gp+ln", "sn", "bn", "none"]})
    assert extended_cells(runs) == ["sndcgan ns/bn", "sndcgan wgan/gp+ln"]
    assert extended_cells(runs.iloc[2:3]) == [] and extended_cells(pd.DataFrame()) == []
