"""The figure of published numbers beside ours (ganbench.analyze.published_plot), on PacGAN's Table 1 data file."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from ganbench.analyze import published
from ganbench.analyze.published_plot import comparison_figure, comparison_figures, figure

PROTOCOL = {"cfg.loss._target_": "ganbench.losses.NonSaturating", "cfg.optim.lr": 0.0001, "cfg.optim.beta1": 0.8,
            "cfg.optim.beta2": 0.999, "cfg.optim.simultaneous": True, "cfg.optim.z_dim": 2,
            "cfg.optim.g_steps": 400000, "cfg.data.n_train": 100000, "protocol.num_fake": 2500,
            "protocol.hq_threshold_std": 3.0, "cfg.data.radius": 1.0, "cfg.data.std": 0.01}


def ring_run(pack: int, modes: float, seed: int, **changes) -> dict:
    return {"cfg.model.name": "pacgan_toy", "data": "ring8", "cfg.family.pack": pack, "status": "completed",
            "seed": seed, "cfg.optim.batch_size": 100 * pack, "final.toy/modes": modes,
            "final.toy/hq_frac": 0.9, "final.toy/reverse_kl": 0.2, **PROTOCOL, **changes}


@pytest.fixture(scope="module")
def runs() -> pd.DataFrame:
    # GAN (pack 1): 3 seeds on the paper's protocol; PacGAN2: 2 seeds of a shortened run (g_steps 1000)
    return pd.DataFrame([ring_run(1, 6.0, 0), ring_run(1, 7.0, 1), ring_run(1, 8.0, 2),
                         ring_run(2, 5.0, 0, **{"cfg.optim.g_steps": 1000}),
                         ring_run(2, 7.0, 1, **{"cfg.optim.g_steps": 1000})])


@pytest.fixture(scope="module")
def table(runs) -> pd.DataFrame:
    return published.compare(runs)["pacgan2018"]


def points(ax, label: str) -> dict[float, tuple[float, float]]:
    """x -> (y, error) of the errorbar series named ``label`` in a panel."""
    out = {}
    for container in ax.containers:
        if container.get_label() != label:
            continue
        line = container.lines[0]
        x, y = float(line.get_xdata()[0]), float(line.get_ydata()[0])
        bars = container.lines[2]
        err = (float(bars[0].get_segments()[0][1][1] - y)) if bars else math.nan
        out[x] = (y, err)
    return out


def test_each_setting_shows_ours_beside_the_papers_with_the_spread(table, runs):
    fig = figure(table, runs)
    pub = published.load("pacgan2018")
    axes = fig.axes
    assert len(axes) == len(pub.metrics)  # only the ring has runs: one row of panels, one per metric
    modes = axes[0]
    ours = points(modes, "ours: mean ± s.e. over seeds")
    paper = points(modes, "paper")
    ring = pub.rows[:5]  # GAN, ALI, PacGAN2, PacGAN3, PacGAN4 on the ring
    assert sorted(ours) == pytest.approx([-0.15, 1.85])  # GAN and PacGAN2 have runs, ALI and the others none
    assert ours[-0.15][0] == pytest.approx(7.0) and ours[-0.15][1] == pytest.approx(1 / math.sqrt(3))  # mean, s.e.
    assert ours[1.85][0] == pytest.approx(6.0) and ours[1.85][1] == pytest.approx(1.0)
    assert [paper[x + 0.15][0] for x in range(5)] == [r.values["modes"][0] for r in ring]
    assert paper[0.15][1] == pytest.approx(ring[0].values["modes"][1])
    dots = [c for c in modes.collections if c.get_label() == "our runs"]
    assert dots and sorted(dots[0].get_offsets()[:, 1].tolist()) == [6.0, 7.0, 8.0]  # GAN's three runs
    ticks = [t.get_text() for t in modes.get_xticklabels()]
    assert ticks[0] == "GAN\n(n=3)" and ticks[2] == "PacGAN2 †1\n(n=2)" and ticks[1] == "ALI\n(n=0)"
    hq = points(axes[1], "ours: mean ± s.e. over seeds")
    assert hq[-0.15][0] == pytest.approx(90.0)  # the paper's unit (%): scale 100


def test_the_caption_states_where_the_protocol_differs(table, runs):
    text = "\n".join(t.get_text() for t in figure(table, runs).texts)
    assert "†1 2D-ring / PacGAN2: protocol differs: optim.g_steps 1000 (paper 400000)" in " ".join(text.split())
    assert "†2" not in text and "Source: Table 1" in text
    title = figure(table, runs)._suptitle.get_text()
    assert "PacGAN" in title and "Published beside ours" in title


def test_it_writes_a_png_and_skips_a_study_without_runs(table, runs, tmp_path):
    path = comparison_figure(table, tmp_path / "published_pacgan2018", runs)
    assert path == tmp_path / "published_pacgan2018.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    empty = table.assign(runs=0)
    assert comparison_figure(empty, tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()
    assert comparison_figures({"pacgan2018": empty}, tmp_path / "figs") == []
    matching = table.assign(protocol_differences="")
    text = "\n".join(t.get_text() for t in figure(matching).texts)
    assert "match the paper's" in text and "†" not in text
