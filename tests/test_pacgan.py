"""PacGAN (Lin et al. 2018): packing in the shared loop, its toy nets, data, mode metrics, the study presets
(experiment=pacgan2018/{ring,grid,mini}) and the analysis beside the published Table 1."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from torch import nn

from conftest import TOY, result
from ganbench.config import CONF_DIR
from ganbench.families.gan import GAN
from ganbench.losses import NonSaturating
from ganbench.metrics.toy import mode_metrics
from ganbench.nets.maxout import BlocksBatchNorm, Discriminator, Generator, LinearMaxout

OPTIM = {"n_disc": 1, "z_dim": 2, "prior": "normal", "batch_size": 4, "lr_g": 1e-4, "lr_d": 1e-4,
         "beta1": 0.8, "beta2": 0.999}


class LinearCritic(nn.Module):
    """D(x) = w . x on flat packs, recording every input it receives (the net contract: features, head)."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.feature_dim = len(w)
        self.head = nn.Linear(len(w), 1, bias=False)
        self.head.weight.data.copy_(w[None])
        self.seen: list[torch.Tensor] = []

    def features(self, x):
        return x

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.head(x).flatten()


def packed_gan(pack: int, critic: nn.Module) -> GAN:
    return GAN(Generator(2, (2,), hidden=8, layers=1), critic, loss=NonSaturating(), regularizers={},
               augment=nn.Identity(), optim=OPTIM, ema_decay=0.0, num_fixed=4, pack=pack)


# ------------------------------------------------------------------------------------------------------ packing


def test_packs_hold_real_with_real_and_fake_with_fake_as_built_by_hand():
    """2 real and 2 fake samples, m = 2: D receives exactly [r0 r1] and [f0 f1] (features side by side)."""
    d = LinearCritic(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    gan = packed_gan(2, d)
    real = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    fake = torch.tensor([[-1.0, -2.0], [-3.0, -4.0]])
    real_out, fake_out = gan.discriminate_pair(real, {}, fake, {})
    by_hand = torch.tensor([[1.0, 2.0, 3.0, 4.0], [-1.0, -2.0, -3.0, -4.0]])
    assert len(d.seen) == 1 and torch.equal(d.seen[0], by_hand)
    assert real_out.tolist() == [1 + 4 + 9 + 16] and fake_out.tolist() == [-30.0]
    d.seen.clear()
    gan.discriminate(fake, {})  # G's step: the fakes packed the same way
    assert torch.equal(d.seen[0], by_hand[1:])
    assert torch.equal(gan.unpacked(gan.packed(torch.cat([real, fake]))), torch.cat([real, fake]))


def test_gradient_penalty_takes_one_interpolation_and_one_gradient_norm_per_pack():
    """GP on packed input: each pack is interpolated with one alpha for all its members, and the penalty is
    (||w|| - 1)^2 with w the gradient over the whole packed vector (per-sample norms would give ||w_half||)."""
    from ganbench.regularizers import GradientPenalty

    w = torch.tensor([0.5, -1.0, 2.0, 0.25])
    d = LinearCritic(w)
    gan = packed_gan(2, d)
    torch.manual_seed(0)
    real, fake = torch.randn(6, 2), torch.randn(6, 2)
    critic = gan.penalty_critic({}, {})
    term = GradientPenalty(weight=1.0).penalty(critic, gan.packed(real), gan.packed(fake))
    assert float(term) == pytest.approx((float(w.norm()) - 1) ** 2, rel=1e-4)  # per sample: 0.52
    x_hat = d.seen[-1]
    assert x_hat.shape == (3, 4)  # one interpolated row per pack
    r, f = gan.packed(real), gan.packed(fake)
    alpha = (x_hat - f) / (r - f)  # x_hat = alpha r + (1 - alpha) f, the same alpha across a pack's 4 numbers
    assert torch.allclose(alpha, alpha[:, :1].expand_as(alpha), atol=1e-5)
    assert alpha[:, 0].unique().numel() == 3


# ------------------------------------------------------------------------------------------------------ the nets


def test_maxout_nets_shapes_and_init_follow_pacgans_toy_code():
    torch.manual_seed(0)
    g, d = Generator(2, (2,), bn_groups=3), Discriminator((6,))
    assert g(torch.randn(12, 2)).shape == (12, 2)
    x = torch.randn(5, 6)
    assert d(x).shape == (5,) and d.features(x).shape == (5, 200) and d.feature_dim == 200
    assert isinstance(d.head, nn.Linear) and (d.head.in_features, d.head.out_features) == (200, 1)
    assert torch.equal(d(x), d.head(d.features(x)).flatten())
    g_lin = [m for m in g.modules() if isinstance(m, nn.Linear)]
    d_lin = [m for m in d.modules() if isinstance(m, nn.Linear)]
    assert [tuple(m.weight.shape) for m in g_lin] == [(400, 2)] + [(400, 400)] * 3 + [(2, 400)]
    assert [m.bias is None for m in g_lin] == [True] * 4 + [False]  # hidden layers without bias (BN follows)
    assert [tuple(m.weight.shape) for m in d_lin] == [(1000, 6), (1000, 200), (1000, 200), (1, 200)]
    for m in g_lin + d_lin:  # N(0, 0.02^2) weights, zero biases
        if m.weight.numel() >= 1000:
            assert float(m.weight.std()) == pytest.approx(0.02, rel=0.05)
            assert abs(float(m.weight.mean())) < 0.002
        if m.bias is not None:
            assert not m.bias.any()
    bns = [m for m in g.modules() if isinstance(m, BlocksBatchNorm)]
    assert len(bns) == 4 and all(bool((b.scale == 1).all() and (b.shift == 0).all()) for b in bns)


def test_linear_maxout_takes_the_max_over_each_units_consecutive_pieces():
    layer = LinearMaxout(1, units=2, pieces=3)
    layer.linear.weight.data = torch.tensor([[1.0], [-1.0], [2.0], [0.5], [-3.0], [0.0]])
    layer.linear.bias.data.zero_()
    out = layer(torch.tensor([[1.0], [-2.0]]))
    assert out.tolist() == [[2.0, 0.5], [2.0, 6.0]]


def test_blocks_batch_norm_normalises_each_pack_member_alone_and_moves_population_stats():
    """Groups j = rows j, j + m, ...; stdev sqrt(biased var + 1e-4); population p <- 0.95 p + 0.05 mean over groups."""
    bn = BlocksBatchNorm(1, groups=2)
    x = torch.tensor([[0.0], [10.0], [2.0], [14.0]])  # group 0: 0, 2 (mean 1, var 1); group 1: 10, 14 (12, 4)
    y = bn(x)
    s0, s1 = math.sqrt(1 + 1e-4), math.sqrt(4 + 1e-4)
    assert y.flatten().tolist() == pytest.approx([-1 / s0, -2 / s1, 1 / s0, 2 / s1], rel=1e-6)
    assert float(bn.population_mean) == pytest.approx(0.05 * (1 + 12) / 2)
    assert float(bn.population_stdev) == pytest.approx(0.95 + 0.05 * (s0 + s1) / 2)
    bn.eval()
    z = torch.tensor([[3.0]])
    assert float(bn(z)) == pytest.approx((3 - float(bn.population_mean)) / float(bn.population_stdev))


# ---------------------------------------------------------------------------------------------------- metrics


def pacgan_metric_logger(points: np.ndarray, means: list, variances: list, threshold: float = 3.0) -> dict:
    """PacGAN's MetricLogger.do (fjxmlzn/PacGAN@190853e pacgan/extensions.py), transcribed as a formula: nearest
    mode by the variance-scaled distance, HQ when below 3, modes = nonzero counts, entropy of the counts; its Table
    1's reverse KL is KL(p || uniform) = log K - entropy."""
    from scipy.stats import entropy

    counts = np.zeros(len(means))
    for x in points:
        dis = [math.sqrt(np.sum((x - mu) ** 2 / np.diag(var))) for mu, var in zip(means, variances)]
        if min(dis) < threshold:
            counts[int(np.argmin(dis))] += 1
    return {"modes": float(np.count_nonzero(counts)), "hq_frac": counts.sum() / len(points),
            "reverse_kl": math.log(len(means)) - entropy(counts / counts.sum())}


def test_mode_metrics_equal_pacgans_formula_on_fixed_points():
    from ganbench.data.toy import ring_modes

    modes = ring_modes(8, 1.0).double()
    std = 0.01
    points = torch.stack([modes[0], modes[0], modes[0] + torch.tensor([0.0, 0.02]),  # 3 HQ at mode 0
                          modes[1] + torch.tensor([0.025, 0.0]),                        # 1 HQ at mode 1 (2.5 std)
                          modes[2] + torch.tensor([0.0, 0.035]),                        # 3.5 std: not HQ
                          torch.zeros(2)])                                              # the centre: not HQ
    ours = mode_metrics(points, modes, std)
    means = [m.numpy() for m in modes]
    theirs = pacgan_metric_logger(points.numpy(), means, [std ** 2 * np.eye(2)] * 8)
    by_hand = {"modes": 2.0, "hq_frac": 4 / 6, "reverse_kl": 0.75 * math.log(8 * 0.75) + 0.25 * math.log(8 * 0.25)}
    for key, value in by_hand.items():
        assert ours[key] == pytest.approx(value, rel=1e-12) and theirs[key] == pytest.approx(value, rel=1e-12)
    torch.manual_seed(0)  # and on a spread of random points over the grid
    from ganbench.data.toy import grid_modes

    grid = grid_modes(5, 2.0).double()
    cloud = grid[torch.randint(25, (1000,))] + 0.12 * torch.randn(1000, 2, dtype=torch.float64)
    ours = mode_metrics(cloud, grid, 0.05)
    theirs = pacgan_metric_logger(cloud.numpy(), [g.numpy() for g in grid], [0.05 ** 2 * np.eye(2)] * 25)
    assert ours == pytest.approx(theirs, rel=1e-9)


# ----------------------------------------------------------------------------------------------------- the data


def test_fixed_packs_are_drawn_once_with_replacement_and_batched_whole():
    from ganbench.data.toy import Ring8

    dm = Ring8(radius=1.0, std=0.01, n_train=50, n_test=10, draw_seed=3, fixed_packs=2, batch_size=8, seed=0)
    x = dm.dataset("train").tensors[0]
    assert x.shape == (100, 2)  # 50 packs of 2
    points = Ring8(radius=1.0, std=0.01, n_train=50, n_test=10, draw_seed=3, batch_size=8).dataset("train")
    assert all(any(torch.equal(row, p) for p in points.tensors[0]) for row in x)  # members are drawn points
    loader = dm.train_dataloader()
    for k, (indices, (xb, _)) in enumerate(zip(loader.sampler, loader)):  # 2 epochs of 6 batches of 4 packs
        assert torch.equal(xb, x[indices])
        assert all(indices[i + 1] == indices[i] + 1 and indices[i] % 2 == 0 for i in range(0, 8, 2))
        if k == 11:
            break
    other = Ring8(radius=1.0, std=0.01, n_train=50, n_test=10, draw_seed=4, fixed_packs=2, batch_size=8)
    assert not torch.equal(other.dataset("train").tensors[0], x)  # another run's seed, other points
    default = Ring8(n_train=50, n_test=10).dataset("train").tensors[0]
    g = torch.Generator().manual_seed(1000)  # the default is unchanged: the fixed draw of before
    labels = torch.randint(8, (50,), generator=g)
    from ganbench.data.toy import ring_modes

    assert torch.equal(default, ring_modes(8, 2.0)[labels] + 0.02 * torch.randn(50, 2, generator=g))


# ---------------------------------------------------------------------------------------------------- presets


def sweep_points(params: dict) -> list[dict]:
    """Every job a sweeper params block expands to, as {key: value}."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    axes = [[(o.key_or_group, v) for v in (o.sweep_iterator() if o.is_sweep_override() else [o.value()])]
            for o in parsed]
    return [dict(point) for point in itertools.product(*axes)]


def composed(preset: str, *overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=[f"experiment=pacgan2018/{preset}", *overrides], return_hydra_config=True)


@pytest.mark.parametrize("preset", ["ring", "grid"])
def test_presets_compose_with_pacgans_code_protocol(preset):
    cfg = composed(preset)
    points = sweep_points(OmegaConf.to_container(cfg.hydra.sweeper.params))
    assert len(points) == 40 and {(p["optim.batch_size"], p["seed"]) for p in points} == {
        (100 * m, s) for m in (1, 2, 3, 4) for s in range(10)}
    data = cfg.data
    if preset == "ring":
        assert data._target_.endswith("Ring8") and (data.radius, data.std) == (1.0, 0.01)
    else:
        assert data._target_.endswith("Grid25") and (data.spacing, data.std) == (2.0, 0.05)
    assert data.n_train == 100_000
    o = cfg.optim
    assert (o.lr, o.beta1, o.beta2, o.n_disc, o.simultaneous, o.z_dim, o.prior) == (1e-4, 0.8, 0.999, 1, True, 2,
                                                                                    "normal")
    assert o.g_steps == 400 * 100_000 // 100  # 400 epochs of 1,000 batches of 100 packs
    assert cfg.loss._target_ == "ganbench.losses.NonSaturating" and list(cfg.reg) == ["none"]
    g, d = cfg.model.generator, cfg.model.discriminator
    assert cfg.model.name == "pacgan_toy" and (g.hidden, g.layers, g.init_std) == (400, 4, 0.02)
    assert (d.hidden, d.layers, d.pieces, d.init_std) == (200, 3, 5, 0.02)
    m = cfg.metrics
    assert (m.extractor, m.num_fake, m.every, m.seed) == ("toy", 2500, 0, 2333) and cfg.ema.decay == 0
    for batch, pack in ((100, 1), (300, 3)):  # m follows the batch: 100 packs of m samples
        job = composed(preset, f"optim.batch_size={batch}", "seed=7")
        assert job.family.pack == job.model.generator.bn_groups == job.data.fixed_packs == pack
        assert job.data.draw_seed == 7  # the points are drawn anew in every run


def test_mini_composes_as_a_shortened_ring():
    cfg, ring = composed("mini"), composed("ring")
    points = sweep_points(OmegaConf.to_container(cfg.hydra.sweeper.params))
    assert {p["optim.batch_size"] for p in points} == {100, 200} and len(points) == 4
    assert cfg.optim.g_steps == 1000 and cfg.name == "pacgan2018_mini"
    for key in ("model", "data", "loss", "metrics", "family"):
        assert cfg[key] == ring[key]
    assert {k: v for k, v in cfg.optim.items() if k != "g_steps"} == {k: v for k, v in ring.optim.items()
                                                                     if k != "g_steps"}


# -------------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("overrides, words", [
    (["family.pack=0"], "family.pack must be an integer >= 1"),
    (["family.pack=2.5"], "family.pack must be an integer >= 1"),
    (["family.pack=3"], "needs optim.batch_size divisible by 3"),
    (["optim.simultaneous=true", "optim.n_disc=2"], "optim.simultaneous=true"),
    (["data.fixed_packs=-1"], "data.fixed_packs must be an integer >= 0"),
    (["data.fixed_packs=3"], "data.fixed_packs=3 needs optim.batch_size divisible"),
])
def test_bad_packing_input_is_one_line_exit_2(run, overrides, words):
    code, out = run(*TOY, "optim.g_steps=2", *overrides)
    assert code == 2, out[-2000:]
    line = [x for x in out.splitlines() if x.startswith("ganbench: error:")]
    assert len(line) == 1 and words in line[0], out[-2000:]


def test_packing_with_simultaneous_updates_trains(run, tmp_path):
    code, out = run(*TOY, "family.pack=2", "optim.simultaneous=true", "optim.g_steps=3")
    assert code == 0, out[-3000:]
    r = result(tmp_path / "run")
    assert r["status"] == "completed" and r["g_steps"] == 3


# ------------------------------------------------------------------------------------------ published numbers


def test_published_table_1_is_package_data_and_compares_only_the_studys_runs():
    import pandas as pd

    from ganbench.analyze import published

    assert "pacgan2018" in published.available()
    pub = published.load("pacgan2018")
    assert [(r.data, r.label) for r in pub.rows][:5] == [("2D-ring", "GAN"), ("2D-ring", "ALI"),
                                                         ("2D-ring", "PacGAN2"), ("2D-ring", "PacGAN3"),
                                                         ("2D-ring", "PacGAN4")]
    assert pub.rows[9].values == {"modes": (24.8, 0.2), "hq": (93.6, 0.6), "reverse_kl": (0.04, 0.01)}
    base = {"status": "completed", "data": "ring8", "cfg.family.pack": 1, "cfg.model.name": "pacgan_toy",
            "cfg.optim.g_steps": 400000, "final.toy/modes": 6.0, "final.toy/hq_frac": 0.9}
    runs = pd.DataFrame([base, {**base, "final.toy/modes": 8.0, "cfg.optim.g_steps": 500},
                         {**base, "status": "diverged", "final.toy/modes": math.nan},
                         {**base, "cfg.model.name": "mlp", "final.toy/modes": 0.0}])
    table = published.compare(runs)["pacgan2018"].set_index(["data", "label"])
    gan = table.loc[("2D-ring", "GAN")]
    assert (gan["runs"], gan["modes_n"], gan["modes_mean"], gan["modes_se"]) == (3, 2, 7.0, 1.0)
    assert gan["hq_mean"] == pytest.approx(90.0) and gan["modes_paper"] == 6.3 and gan["modes_paper_se"] == 0.5
    assert "optim.g_steps 400000/500 (paper 400000)" in gan["protocol_differences"]
    assert "data.radius missing (paper 1)" in gan["protocol_differences"]
    assert table.loc[("2D-ring", "PacGAN2"), "runs"] == 0
    assert published.compare(runs[runs["cfg.model.name"] == "mlp"]) == {}  # not a PacGAN run: no section


# ---------------------------------------------------------------------------------------- the study, end to end


def test_mini_sweep_then_analysis_shows_mean_and_se_per_m_beside_table_1(run, tmp_path, monkeypatch, capfd,
                                                                         one_cpu_thread):
    """The mini's machinery shortened (2 seeds x m in {1, 2}, a few updates): the sweep, then the analysis, whose
    report puts each m's mean +- s.e. over seeds beside PacGAN's Table 1 row and names the shortened budget."""
    import pandas as pd

    from ganbench.analyze.__main__ import main as analyze_main
    from conftest import call_main

    code, out = run("experiment=pacgan2018/mini", "seed=0,1", "optim.g_steps=4", "data.n_train=2000",
                    "metrics.num_fake=500", multirun=True)
    assert code == 0, out[-3000:]
    records = [result(p.parent) for p in sorted((tmp_path / "sweep").rglob("result.json"))]
    assert len(records) == 4 and all(r["status"] == "completed" for r in records)
    assert sorted((r["config"]["family"]["pack"], r["seed"]) for r in records) == [(1, 0), (1, 1), (2, 0), (2, 1)]
    code, out = call_main(analyze_main, "analyze", [str(tmp_path / "sweep"), "--bootstrap", "20"], monkeypatch,
                          capfd)
    assert code == 0, out
    assert "beside the published numbers of pacgan2018" in out
    report = (tmp_path / "sweep" / "analysis" / "report.md").read_text()
    table = pd.read_csv(tmp_path / "sweep" / "analysis" / "published_pacgan2018.csv")
    for pack, label, paper in ((1, "GAN", "6.3 ± 0.5"), (2, "PacGAN2", "7.9 ± 0.1")):
        mine = [r["metrics"]["final"]["toy/modes"] for r in records if r["config"]["family"]["pack"] == pack]
        mean, se = np.mean(mine), np.std(mine, ddof=1) / math.sqrt(2)
        row = table[(table["data"] == "2D-ring") & (table["label"] == label)].iloc[0]
        assert row["runs"] == 2 and row["modes_n"] == 2
        assert row["modes_mean"] == pytest.approx(mean) and row["modes_se"] == pytest.approx(se, abs=1e-12)
        assert row["modes_paper"] == float(paper.split()[0])
        line = next(x for x in report.splitlines() if x.startswith(f"| 2D-ring | {label} | 2 |"))
        assert f"{mean:.1f} ± {se:.1f} (n=2)" in line and paper in line
        assert "optim.g_steps 4 (paper 400000)" in line and "data.n_train 2000 (paper 100000)" in line
    assert "shortened budget" in report or "shortened protocol" in report
    assert "| 2D-ring | ALI | 0 | - | 6.6 ± 0.3 |" in report  # the paper's other rows of the ring, for reference
    assert "| 2D-grid |" not in report and len(table) == 10  # a data set without runs: in the CSV only


# a PacGAN run cut small: packs of 2 from the fixed packed data (8 packs per batch, 5 batches per epoch), grouped
# batch norm in G, simultaneous updates; 12 steps cross two epochs; an evaluation at step 6, checkpoints every 5
RESUME = ["experiment=pacgan2018/mini", "family.pack=2", "optim.batch_size=16", "data.n_train=40",
          "model.generator.hidden=16", "model.discriminator.hidden=16", "optim.g_steps=12", "metrics.every=6",
          "metrics.num_fake=200", "checkpoint.every=5", "log_every=1", "loss._target_=kill_loss.KillAt"]


def test_sigkill_then_rerun_ends_bitwise_like_an_uninterrupted_run(cli, run, tmp_path, one_cpu_thread):
    """One torch thread in every process (the in-process runs and the killed subprocess), so all compute alike."""
    reference = tmp_path / "reference"
    code, out = run(*RESUME, run_dir=reference)
    assert code == 0, out[-3000:]
    killed = cli(*RESUME, env={"GANBENCH_TEST_KILL_AT": "8", "OMP_NUM_THREADS": "1"})  # in step 8, after the checkpoint at step 5
    assert killed.returncode == -9, killed.stderr[-2000:]
    rd = tmp_path / "run"
    assert result(rd)["status"] == "running"
    code, out = run(*RESUME)
    assert code == 0, out[-3000:]
    assert result(rd)["status"] == "completed" and result(rd)["g_steps"] == 12
    ours, theirs = (torch.load(d / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
                    for d in (rd, reference))
    assert ours["state_dict"].keys() == theirs["state_dict"].keys()
    assert any("population_stdev" in k for k in ours["state_dict"])  # G's batch-norm statistics are state
    assert not [k for k in ours["state_dict"] if not torch.equal(ours["state_dict"][k], theirs["state_dict"][k])]
    for a, b in zip(ours["optimizer_states"], theirs["optimizer_states"]):
        for p, q in zip(a["state"].values(), b["state"].values()):
            assert all(torch.equal(p[k], q[k]) for k in p)
    assert result(rd)["metrics"]["history"] == result(reference)["metrics"]["history"]
