"""family=infogan: codes into G, Q on D's body, the MI terms in D's and G's losses, packing, the sample grid, the
code-accuracy metric, bad options, a learning test with its control, and exact resume."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from conftest import TOY, read_csv, result
from ganbench.families import infogan as ig
from ganbench.metrics.codes import confusion, matched_accuracy, nearest_mode

INFO = ["family=infogan", "family.codes.categorical=[4]", "family.codes.continuous=2"]


@pytest.fixture(autouse=True)
def _one_thread(one_cpu_thread):
    """Every test here on one torch thread: tiny nets run many times faster on a small shared machine, and the
    resume test's in-process run must use the thread count of its subprocesses (OMP_NUM_THREADS=1)."""


# -- training runs --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("extra", [
    [],
    ["family.pack=2"],
    ["reg=gp"],
    ["family.continuous_loss=learned", "family.codes.categorical=[3,5]"],
], ids=["mlp", "pack2", "gp", "learned_two_codes"])
def test_infogan_trains_three_steps_on_the_toy(run, tmp_path, extra):
    code, out = run(*TOY, *INFO, *extra, "optim.g_steps=3", "log_every=1")
    assert code == 0, out[-3000:]
    r = result(tmp_path / "run")
    assert r["status"] == "completed" and r["g_steps"] == 3
    rows = read_csv(tmp_path / "run" / "metrics.csv")
    for key in ("info/cat_d", "info/cont_d", "info/cat_g", "info/cont_g"):  # the MI terms in D's and G's losses
        assert rows[key].notna().sum() == 3 and rows[key].dropna().map(math.isfinite).all(), key


@pytest.mark.parametrize("model", [["model=dcgan"], ["model=infogan", "model.discriminator.batch_norm=true"]],
                         ids=["dcgan", "infogan"])
def test_infogan_trains_image_nets_on_digits_with_the_code_metric(run, tmp_path, model):
    code, out = run("family=infogan", *model, "model.generator.width=8", "model.discriminator.width=8",
                    "optim.batch_size=16", "optim.g_steps=3", "logger=[csv]", "metrics=quick", "metrics.num_fake=100",
                    "family.code_samples=10", "samples.every=0", "checkpoint.every=0")
    assert code == 0, out[-3000:]
    r = result(tmp_path / "run")
    assert r["status"] == "completed"
    acc = r["metrics"]["final"]["code_acc/domain_10x10"]  # 10 samples x 10 code values, domain classifier
    assert 0 <= acc <= 1
    proto = r["metrics"]["protocol"]["family"]["code_accuracy"]
    assert proto["classifier"] == "domain" and proto["samples_per_code"] == 10 and proto["domain_accuracy"] > 0.9
    assert r["files"]["samples"], "a sample grid was written"


def test_code_metric_is_skipped_with_a_line_on_data_without_classes(run, tmp_path):
    code, out = run(*TOY, *INFO, "data=swissroll", "metrics=quick", "metrics.num_fake=200", "optim.g_steps=2")
    assert code == 0, out[-3000:]
    assert "code accuracy skipped: data=swissroll has neither modes nor a domain classifier" in out
    r = result(tmp_path / "run")
    assert not [k for k in r["metrics"]["final"] if k.startswith("code_acc")]
    assert "neither modes" in r["metrics"]["protocol"]["family"]["code_accuracy"]["skipped"]


# -- formulas on fixed numbers --------------------------------------------------------------------------------------

def test_categorical_term_is_the_cross_entropy_of_each_code_summed():
    # two codes (3 and 2 values) on two samples; MI_hat = H(c) - CE with H(c) = log 3 + log 2, a constant
    logits = torch.tensor([[2.0, 0.0, 0.0, 1.0, -1.0],
                           [0.0, 1.0, 0.0, 0.0, 0.0]])
    values = torch.tensor([[0, 1], [1, 0]])
    ce_first = (-math.log(math.e ** 2 / (math.e ** 2 + 2)) - math.log(math.e / (math.e + 2))) / 2
    ce_second = (-math.log(math.e ** -1 / (math.e + math.e ** -1)) - math.log(0.5)) / 2
    got = ig.categorical_nll(logits, values, (3, 2))
    assert got.item() == pytest.approx(ce_first + ce_second, rel=1e-6)


def test_fixed_variance_term_is_half_the_squared_error():
    mean = torch.tensor([[0.5, -1.0], [0.0, 0.25]])
    c = torch.tensor([[1.0, 0.0], [-0.5, 0.25]])
    # sample 1: (0.25 + 1) / 2 = 0.625; sample 2: 0.25 / 2 = 0.125; mean 0.375
    assert ig.fixed_variance_nll(mean, c).item() == pytest.approx(0.375)
    assert ig.CONTINUOUS_LOSSES["fixed"].nll(mean, c).item() == pytest.approx(0.375)


def test_learned_variance_term_is_the_gaussian_nll_and_stays_finite():
    mean = torch.tensor([[0.5, -1.0], [0.0, 0.25]])
    log_var = torch.tensor([[0.0, math.log(4.0)], [math.log(0.25), -1.0]])
    c = torch.tensor([[1.0, 0.0], [-0.5, 0.25]])
    std = (log_var.exp() + ig.VARIANCE_FLOOR).sqrt()
    nll = -torch.distributions.Normal(mean, std).log_prob(c) - 0.5 * math.log(2 * math.pi)
    expected = nll.sum(1).mean()
    by_hand = (0.5 * (0.25 + 0.0) + 0.5 * (math.log(4) + 1 / 4)) / 2 + (
        0.5 * (math.log(0.25) + 0.25 / 0.25) + 0.5 * (-1.0 + 0.0)) / 2
    assert ig.gaussian_nll(mean, log_var, c).item() == pytest.approx(expected.item(), rel=1e-5)
    assert expected.item() == pytest.approx(by_hand, rel=1e-4)
    learned = ig.CONTINUOUS_LOSSES["learned"]
    assert learned.params == 2 and learned.nll(torch.cat([mean, log_var], 1), c).item() == pytest.approx(
        expected.item(), rel=1e-5)
    # sigma -> 0 with the code hit exactly: bounded below by log(floor) / 2 per code, never -inf
    tiny = ig.gaussian_nll(c, torch.full_like(c, -1e4), c)
    assert math.isfinite(tiny.item()) and tiny.item() == pytest.approx(2 * 0.5 * math.log(ig.VARIANCE_FLOOR))


def test_code_matching_accuracy_takes_the_best_one_to_one_assignment():
    codes = torch.tensor([0, 0, 1, 1, 2, 2])
    classes = torch.tensor([2, 2, 0, 0, 1, 2])  # 0 -> 2, 1 -> 0, 2 -> 1: 5 of 6
    assert confusion(codes, classes, 3, 3).tolist() == [[0, 0, 2], [2, 0, 0], [0, 1, 1]]
    assert matched_accuracy(codes, classes, 3, 3) == pytest.approx(5 / 6)
    # all codes onto one class: only one code can be matched to it
    assert matched_accuracy(codes, torch.zeros(6, dtype=torch.long), 3, 3) == pytest.approx(2 / 6)
    # more code values than classes: the unmatched code counts as wrong
    assert matched_accuracy(codes, torch.tensor([1, 1, 0, 0, 0, 0]), 3, 2) == pytest.approx(4 / 6)
    modes = torch.tensor([[2.0, 0.0], [0.0, 2.0], [-2.0, 0.0]])
    assert nearest_mode(torch.tensor([[1.9, 0.1], [-0.1, 2.2], [-3.0, 0.4]]), modes).tolist() == [0, 1, 2]


# -- Q recovers the very codes that generated the fakes --------------------------------------------------------------

@pytest.mark.parametrize("d_calls", ["separate", "joint"])
def test_q_targets_are_the_codes_fed_to_g_and_q_sees_those_fakes(run, tmp_path, monkeypatch, d_calls):
    """Hooks record what G consumed and produced and what D saw; the MI terms must use as targets the codes in G's
    very input (one-hot part decoded, continuous part bitwise), and Q's output must be D's output on those fakes
    (pack=2: the fake packs are G's output packed; joint: the fake part of the joint call's output)."""
    events = []
    z_dim, sizes, n_cont = 3, (3, 4), 2

    def start(self):
        events.clear()
        self.G.register_forward_hook(lambda m, i, o: events.append(("G", i[0].detach().clone(), o.detach().clone())))

        def d_hook(m, i, o):
            if isinstance(o, dict):
                events.append(("D", i[0].detach().clone(), {k: v.detach().clone() for k, v in o.items()}))
        self.D.register_forward_hook(d_hook)
        original_start(self)

    def info_terms(self, out, inputs, who):
        events.append(("Q", who, {k: v.detach().clone() for k, v in out.items()},
                       {k: v.detach().clone() for k, v in inputs.items()}))
        return original_terms(self, out, inputs, who)

    original_start, original_terms = ig.InfoGAN.on_train_start, ig.InfoGAN.info_terms
    monkeypatch.setattr(ig.InfoGAN, "on_train_start", start)
    monkeypatch.setattr(ig.InfoGAN, "info_terms", info_terms)
    code, out = run(*TOY, "family=infogan", "family.codes.categorical=[3,4]", "family.codes.continuous=2",
                    "family.pack=2", f"optim.z_dim={z_dim}", "optim.n_disc=2", "optim.g_steps=2", "reg=gp",
                    f"family.d_calls={d_calls}")
    assert code == 0, out[-3000:]
    checked = {"d": 0, "g": 0}
    for i, event in enumerate(events):
        if event[0] != "Q":
            continue
        _, who, q_out, inputs = event
        g_in, g_out = next(e[1:] for e in reversed(events[:i]) if e[0] == "G")
        d_in, d_out = next(e[1:] for e in reversed(events[:i]) if e[0] == "D")
        n = len(g_in)
        onehot = g_in[:, z_dim:z_dim + sum(sizes)].split(sizes, dim=1)
        assert all(torch.equal(inputs["cat"][:, j], part.argmax(1)) for j, part in enumerate(onehot))
        assert all(torch.equal(part.sum(1), torch.ones(n)) for part in onehot)
        assert torch.equal(inputs["cont"], g_in[:, -n_cont:])
        packs = n // 2
        assert torch.equal(d_in[-packs:], g_out.reshape(packs, -1))  # the fakes D (and Q) saw: G's, packed
        for key in ("logit", "q_cat", "q_cont"):
            assert torch.equal(q_out[key], d_out[key][-packs:]), key
        assert q_out["q_cat"].shape == (packs, 2 * sum(sizes)) and q_out["q_cont"].shape == (packs, 2 * n_cont)
        checked[who] += 1
    assert checked == {"d": 4, "g": 2}  # every D step and every G step


def tiny_module(**options) -> ig.InfoGAN:
    from ganbench.losses import NonSaturating
    from ganbench.nets.mlp import Discriminator, Generator

    codes = ig.Codes.parse(options.get("codes"))
    torch.manual_seed(0)
    G = Generator(3 + codes.dim, (2,), hidden=8, layers=1)
    D = ig.InfoDiscriminator(Discriminator((2,), hidden=8, layers=1), codes.cat_dim, codes.continuous)
    optim = {"n_disc": 1, "z_dim": 3, "prior": "normal", "batch_size": 8}
    return ig.InfoGAN(G, D, loss=NonSaturating(), regularizers={}, augment=nn.Identity(), optim=optim,
                      ema_decay=0, num_fixed=64, **options)


def test_the_mi_gradient_reaches_d_body_and_q_in_d_step():
    m = tiny_module(codes={"categorical": [4], "continuous": 1})
    inputs = m.sample_inputs(8)
    with torch.no_grad():
        fake = m.generate(inputs)
    terms = m.d_terms(None, m.discriminate(fake, {}), {}, inputs)
    sum(terms.values()).backward()
    assert m.D.body.net[0].weight.grad.abs().sum() > 0 and m.D.q[0].weight.grad.abs().sum() > 0
    assert m.D.body.head.weight.grad is None  # the logit head is not part of the MI term


def test_sample_grid_rows_sweep_the_category_and_columns_the_continuous_code():
    m = tiny_module(codes={"categorical": [3], "continuous": 2})
    inputs = m.fixed_inputs()
    cols = 8  # save_image_grid: floor(sqrt(64)) columns
    cat = inputs["cat"][:, 0].reshape(-1, cols)
    assert torch.equal(cat, (torch.arange(8) % 3)[:, None].expand(8, cols))
    sweep = inputs["cont"][:, 0].reshape(-1, cols)
    assert torch.allclose(sweep, torch.linspace(-1, 1, cols).expand(8, cols))
    z = inputs["z"].reshape(8, cols, -1)
    other = inputs["cont"][:, 1].reshape(8, cols)
    for block in range(3):  # rows 3b..3b+2 share z and the other codes; blocks differ
        rows = slice(3 * block, min(8, 3 * block + 3))
        assert (z[rows] == z[3 * block, 0]).all() and (other[rows] == other[3 * block, 0]).all()
    assert not torch.equal(z[0, 0], z[3, 0])
    assert torch.equal(m.fixed_inputs()["z"], inputs["z"])  # the same grid every time
    assert m.sample(inputs=inputs).shape == (64, 2)


# -- bad input --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides, words", [
    (["family.codes.categorical=[]", "family.codes.continuous=0"], ["at least one code", "family.codes"]),
    (["family.codes.categorical=[10,1]"], ["family.codes.categorical", ">= 2", "[10, 1]"]),
    (["family.codes.categorical=10"], ["family.codes.categorical", "list"]),
    (["family.codes.continuous=-1"], ["family.codes.continuous", ">= 0", "-1"]),
    (["family.info_weight.categorical=-1"], ["family.info_weight.categorical", ">= 0"]),
    (["family.info_weight.continuous=-0.5"], ["family.info_weight.continuous", ">= 0"]),
    (["family.continuous_loss=laplace"], ["family.continuous_loss", "fixed, learned", "laplace"]),
    (["family.code_samples=0"], ["family.code_samples", ">= 1"]),
])
def test_bad_infogan_options_get_one_line_and_exit_2(run, overrides, words):
    code, out = run(*TOY, "family=infogan", *overrides, "optim.g_steps=1")
    assert code == 2, out[-2000:]
    line = next(line for line in out.splitlines() if line.startswith("ganbench: error:"))
    assert all(w in line for w in words), line
    assert "Traceback" not in out


# -- learning test with a control ---------------------------------------------------------------------------------

# ring8 with its modes widened to std 0.2 (the default 0.02 makes the GAN itself slow to fit) and openai's G:D
# learning-rate ratio (1e-3 : 2e-4, here 2e-3 : 5e-4); one 8-way categorical code, no continuous code. Measured
# (d_calls=separate): seeds 0-7 end at accuracy 1.0 after 800 steps but seed 0 (0.93); seed 6 is at 1.0 from
# step 200 on; with info_weight.categorical=0 seed 6 ends at 0.74 (the MI term is what aligns codes and modes)
RING_INFO = ["family=infogan", "family.codes.categorical=[8]", "family.codes.continuous=0", "model=mlp",
             "data=ring8", "data.std=0.2", "model.generator.hidden=64", "model.discriminator.hidden=64",
             "optim.batch_size=128", "optim.lr_g=0.002", "optim.lr_d=0.0005", "optim.z_dim=2", "ema.decay=0",
             "logger=[csv]", "metrics=quick", "metrics.every=0", "metrics.num_fake=200", "samples.every=0",
             "checkpoint.every=0", "seed=6"]


def test_infogan_matches_the_ring_modes_with_its_code(run, tmp_path):
    code, out = run(*RING_INFO, "optim.g_steps=800")
    assert code == 0, out[-2000:]
    final = result(tmp_path / "run")["metrics"]["final"]
    assert final["code_acc/modes_100x8"] >= 0.9, final


def test_untrained_control_does_not_match(run, tmp_path):
    code, out = run(*RING_INFO, "optim.g_steps=1")
    assert code == 0, out[-2000:]
    final = result(tmp_path / "run")["metrics"]["final"]
    assert final["code_acc/modes_100x8"] < 0.9, final


# -- exact resume ---------------------------------------------------------------------------------------------------

RESUME = ["family=infogan", "family.codes.categorical=[8]", "family.codes.continuous=1", "model=mlp", "data=ring8",
          "data.n_train=256", "model.generator.hidden=16", "model.discriminator.hidden=16", "optim.batch_size=32",
          "optim.n_disc=2", "optim.g_steps=24", "loss=ns", "loss._target_=kill_loss.KillAt", "reg=gp",
          "logger=[csv]", "metrics=quick", "metrics.every=10", "metrics.num_fake=200", "family.code_samples=20",
          "samples.every=0", "checkpoint.every=5", "log_every=1"]


def test_sigkill_then_rerun_ends_bitwise_like_an_uninterrupted_run(cli, run, tmp_path):
    # every run on one thread (the subprocesses through OMP_NUM_THREADS, this process through _one_thread): float
    # sums depend on the thread count, so the resumed in-process run must use the reference's
    reference = tmp_path / "reference"
    whole = cli(*RESUME, run_dir=reference, env={"OMP_NUM_THREADS": "1"})
    assert whole.returncode == 0, whole.stderr[-3000:]
    # killed at the 19th D step: mid-epoch, after the checkpoint at generator step 5
    killed = cli(*RESUME, env={"GANBENCH_TEST_KILL_AT": "19", "OMP_NUM_THREADS": "1"})
    assert killed.returncode == -9, killed.stderr[-2000:]
    rd = tmp_path / "run"
    assert result(rd)["status"] == "running"
    code, out = run(*RESUME)
    assert code == 0, out[-3000:]
    assert result(rd)["status"] == "completed" and result(rd)["g_steps"] == 24

    def final_state(run_dir):
        ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
        return ckpt["state_dict"], ckpt["optimizer_states"]

    ours, ours_opt = final_state(rd)
    theirs, theirs_opt = final_state(reference)
    assert ours.keys() == theirs.keys() and any(k.startswith("D.q.") for k in ours)
    assert not [k for k in ours if not torch.equal(ours[k], theirs[k])]
    for a, b in zip(ours_opt, theirs_opt):
        for p, q in zip(a["state"].values(), b["state"].values()):
            assert all(torch.equal(p[k], q[k]) for k in p)
    mine, ref = result(rd)["metrics"], result(reference)["metrics"]
    assert mine["history"] == ref["history"] and "code_acc/modes_20x8" in mine["final"]
