"""python -m ganbench.analyze on image-to-image sweeps: pix2pix and srgan runs are scored by their PSNR (higher is
better, the statistics negate it), cyclegan runs by FID; cells keyed by the swept loss x reg. Synthetic
result.json files shaped like ganbench.train's; no training."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from ganbench.analyze import analyze, stats
from ganbench.analyze.table import collect

FAMILIES = {"pix2pix": {"_target_": "ganbench.families.pix2pix.Pix2Pix"},
            "srgan": {"_target_": "ganbench.families.srgan.SRGAN", "metric_channels": "rgb"},
            "cyclegan": {"_target_": "ganbench.families.cyclegan.CycleGAN"}}
KEYS = {"pix2pix": "psnr/test360", "srgan": "psnr_rgb/test128", "cyclegan": "cycle_l1/aba_test180"}
FID = "fid/domain_test360"


def write_run(root: Path, name: str, family: str, loss: str, reg: str, seed: int, history: list[tuple[float, float]],
              status: str = "completed") -> None:
    """A run whose evaluations give (FID, family metric) per entry of ``history``; best.* at the lowest FID."""
    run_dir = root / name
    run_dir.mkdir(parents=True)
    key = KEYS[family]
    rows = [{"g_step": 10 * (i + 1), FID: fid, key: value} for i, (fid, value) in enumerate(history)]
    best = min(rows, key=lambda r: r[FID])
    config = {"family": FAMILIES[family], "model": {"name": family}, "loss": {"_target_": f"losses.{loss}"},
              "reg": {reg: {"_target_": f"regs.{reg}"}} if reg != "none" else {},
              "data": {"_target_": "data.x"}, "optim": {"lr": 2e-4, "beta1": 0.5, "beta2": 0.999, "n_disc": 1},
              "seed": seed}
    rec = {"schema_version": 1, "status": status, "choices": {"loss": loss, "data": "d", "model": family,
                                                              "family": family},
           "seed": seed, "g_steps": 30, "config": config, "wall_time_s": 1.0,
           "metrics": {"primary": FID, "protocol": {"extractor": "domain"}, "final_step": rows[-1]["g_step"],
                       "final": {k: v for k, v in rows[-1].items() if k != "g_step"},
                       "best": {k: v for k, v in best.items() if k != "g_step"}, "history": rows}}
    (run_dir / "result.json").write_text(json.dumps(rec))


def test_pix2pix_sweep_is_scored_by_its_best_psnr_higher_is_better(tmp_path):
    sweep = tmp_path / "sweep"
    # (FID, PSNR) per evaluation: the best PSNR is not at the best FID, so the score must come from the history
    psnr = {("ns", "none"): [(50.0, 14.0), (40.0, 13.0)], ("ns", "r1"): [(60.0, 17.0), (55.0, 16.0)],
            ("ls", "none"): [(30.0, 12.0), (35.0, 11.0)], ("ls", "r1"): [(45.0, 15.0), (42.0, 15.5)]}
    for i, ((loss, reg), history) in enumerate(psnr.items()):
        write_run(sweep, f"{i}", "pix2pix", loss, reg, 0, history)
        write_run(sweep, f"{i}_seed1", "pix2pix", loss, reg, 1, [(f + 1, p - 1) for f, p in history])
    write_run(sweep, "div", "pix2pix", "ns", "none", 2, [(math.nan, math.nan)], status="diverged")
    runs = collect([sweep]).set_index("run_dir")
    first = runs.loc[str(sweep / "0")]
    assert first["primary"] == "psnr/test360" and first["score"] == 14.0  # max over history, not best.* (13)
    study = analyze([sweep], out=tmp_path / "out", n_boot=50)
    assert study.metric == "psnr/test360" and study.label == "-psnr/test360"
    cells = study.cells.set_index(["loss", "reg"])
    assert sorted(cells.index) == [("ls", "none"), ("ls", "r1"), ("ns", "none"), ("ns", "r1")]
    assert cells.loc[("ns", "r1"), "best"] == -17.0 and cells.loc[("ls", "r1"), "best"] == -15.5
    assert cells.loc[("ns", "none"), "diverged"] == 1
    # the settings' medians over the two seeds, negated: ns/r1 is the best cell (PSNR 16.5 median)
    best_cell = study.cells.loc[study.cells["setting_median"].idxmin()]
    assert (best_cell["loss"], best_cell["reg"], best_cell["setting_median"]) == ("ns", "r1", -16.5)
    report = (tmp_path / "out" / "report.md").read_text()
    assert "`-psnr/test360` (`psnr/test360` is higher-is-better" in report and "best -psnr/test360" in report
    figures = {p.name for p in (tmp_path / "out" / "figures").iterdir()}
    assert {"top_fraction.png", "best_seeds.png", "budget.png", "pairwise.png"} <= figures


def test_srgan_uses_its_metric_channels_and_cyclegan_keeps_fid(tmp_path):
    write_run(tmp_path, "sr", "srgan", "ns", "none", 0, [(9.0, 30.0), (8.0, 31.0)])
    write_run(tmp_path, "cyc", "cyclegan", "ls", "none", 0, [(9.0, 0.3), (7.0, 0.4)])
    runs = collect([tmp_path]).set_index("run_dir")
    sr, cyc = runs.loc[str(tmp_path / "sr")], runs.loc[str(tmp_path / "cyc")]
    assert (sr["primary"], sr["score"]) == ("psnr_rgb/test128", 31.0)
    assert (cyc["primary"], cyc["score"]) == (FID, 7.0)
    np.testing.assert_array_equal(stats.run_values(runs.reset_index()).to_numpy(), [7.0, -31.0])


@pytest.mark.parametrize("metric, higher", [("psnr/test360", True), ("psnr_y_bicubic/test8", False),
                                            ("ssim_y/test8", True), ("fid/domain_test360", False),
                                            ("class_agree/domain_test40", True), ("cycle_l1/aba_test40", False),
                                            ("lpips/test8", False)])
def test_metric_direction(metric, higher):
    assert stats.higher_is_better(metric) is higher
    assert stats.oriented(metric) == (f"-{metric}" if higher else metric)
