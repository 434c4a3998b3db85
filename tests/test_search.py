"""Random search (ganbench.search): the draws follow their distributions, are reproducible per (seed, sample, key),
land in the config before anything reads it, and bad spaces get one clear line."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from ganbench.config import CONF_DIR
from ganbench.errors import ConfigError
from ganbench.search import apply_search, draw, flatten_space

N = 4000


def draws(spec: str, key: str = "k", seed: int = 0) -> np.ndarray:
    return np.array([draw(key, spec, seed, i) for i in range(N)])


def test_log_uniform_is_uniform_in_log_space():
    x = draws("tag(log, interval(1e-5, 1e-2))")
    assert x.min() >= 1e-5 and x.max() <= 1e-2
    # half of a log-uniform sample lies below the geometric midpoint (a plain uniform puts ~3% there)
    assert np.mean(x < math.sqrt(1e-5 * 1e-2)) == pytest.approx(0.5, abs=0.03)
    for q in (0.1, 0.25, 0.75, 0.9):  # the quantiles of log10(x) are those of U[-5, -2]
        assert np.quantile(np.log10(x), q) == pytest.approx(-5 + 3 * q, abs=0.08)


def test_uniform_interval_and_integers():
    x = draws("interval(0, 1)")
    assert x.min() >= 0 and x.max() < 1
    assert x.mean() == pytest.approx(0.5, abs=0.02) and np.mean(x < 0.1) == pytest.approx(0.1, abs=0.02)
    n = draws("tag(int, interval(1, 4))")
    assert set(n.tolist()) == {1, 2, 3, 4} and all(isinstance(v, int) for v in n[:10].tolist())


def test_choice_is_uniform_over_its_values_and_keeps_their_types():
    x = [draw("k", "choice(true, false)", 0, i) for i in range(N)]
    assert {type(v) for v in x} == {bool}
    assert np.mean(x) == pytest.approx(0.5, abs=0.03)
    n = draws("choice(1, 5)")
    assert set(n.tolist()) == {1, 5} and np.mean(n == 5) == pytest.approx(0.5, abs=0.03)
    assert {draw("k", "range(0,3)", 0, i) for i in range(200)} == {0, 1, 2}
    assert draw("k", 0.999, 0, 3) == 0.999 and draw("k", "0.5", 0, 3) == 0.5  # a plain value stays as it is


def test_draws_are_reproducible_and_each_key_has_its_own_stream():
    spec = "tag(log, interval(1e-5, 1e-2))"
    assert draw("optim.lr", spec, 0, 7) == draw("optim.lr", spec, 0, 7)
    assert draw("optim.lr", spec, 0, 7) != draw("optim.lr", spec, 0, 8)
    assert draw("optim.lr", spec, 0, 7) != draw("optim.lr", spec, 1, 7)  # another study seed
    assert draw("optim.lr", spec, 0, 7) != draw("reg.gp.weight", spec, 0, 7)  # keys are independent
    lr = draws(spec, "optim.lr")
    beta1 = draws("interval(0, 1)", "optim.beta1")
    assert abs(np.corrcoef(np.log(lr), beta1)[0, 1]) < 0.05


def test_flatten_space_takes_dotted_and_nested_keys():
    assert flatten_space({"optim.lr": 1, "reg": {"gp": {"weight": 2}}}) == {"optim.lr": 1, "reg.gp.weight": 2}


def lucic_mini(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=["experiment=lucic2018/mini", *overrides])


@pytest.mark.parametrize("phase", ["lucic2018_wide", "lucic2018_narrow"])
def test_a_sample_sets_every_key_of_the_space_its_model_has(phase):
    cfg = lucic_mini("gan=wgan", f"search={phase}", "search.sample=3")
    drawn = apply_search(cfg)
    space = flatten_space(OmegaConf.to_container(cfg.search.space, resolve=True))
    seed = cfg.search.seed
    assert drawn == {k: draw(k, v, seed, 3) for k, v in space.items() if not k.startswith(("reg.gp", "reg.dragan", "family."))}
    assert cfg.optim.lr == drawn["optim.lr"] and cfg.reg.wclip.clip == drawn["reg.wclip.clip"]
    assert cfg.model.discriminator.batch_norm is drawn["model.discriminator.batch_norm"]
    assert set(cfg.reg) == {"wclip"}  # reg.gp.weight of the space did not create a gp regularizer
    assert cfg.optim.g_steps == 224 // cfg.optim.n_disc  # the budget follows the drawn n_disc
    lo, hi = (1e-5, 1e-2) if phase == "lucic2018_wide" else (1e-4, 1e-3)
    assert lo <= cfg.optim.lr <= hi
    if phase == "lucic2018_narrow":
        assert (cfg.optim.beta1, cfg.optim.n_disc) == (0.5, 1)


def test_without_a_sample_the_models_own_defaults_stay():
    cfg = lucic_mini("gan=wgan_gp")
    assert apply_search(cfg) == {}
    assert (cfg.optim.lr, cfg.optim.beta1, cfg.optim.n_disc, cfg.reg.gp.weight) == (1e-4, 0.5, 5, 10.0)


def test_the_same_sample_draws_the_same_values_for_every_model():
    """Lucic et al. compare models over the same 100 draws: sample i is a paired comparison."""
    a, b = lucic_mini("gan=ns", "search.sample=5"), lucic_mini("gan=dragan", "search.sample=5")
    apply_search(a), apply_search(b)
    assert (a.optim.lr, a.optim.beta1, a.optim.n_disc) == (b.optim.lr, b.optim.beta1, b.optim.n_disc)


@pytest.mark.parametrize("overrides,match", [
    (["+search.space.optim.lrr=0.1"], r"search.space.optim.lrr: optim has no key 'lrr'; its keys are: lr, "),
    (["+search.space.modl.width=8"], r"search.space.modl.width: the config has no modl"),
    (["+search.space.optim.lr='tag(log, interval(0, 1))'"], r"optim.lr: .* needs low < high and low > 0"),
    (["search.sample=-1"], r"search.sample must be an integer >= 0"),
    (["search.sample=a"], r"search.sample and search.seed must be integers"),
])
def test_bad_spaces_and_samples_get_one_line(overrides, match):
    cfg = lucic_mini("gan=ns", "search.sample=0", *overrides) if "search.sample" not in overrides[0] \
        else lucic_mini("gan=ns", *overrides)
    with pytest.raises(ConfigError, match=match) as info:
        apply_search(cfg)
    assert "\n" not in str(info.value)


def test_a_bad_space_on_the_command_line_exits_2_before_training(run):
    code, out = run("experiment=lucic2018/mini", "search.sample=0", "+search.space.optim.lrr=0.1")
    assert code == 2
    assert "ganbench: error: search.space.optim.lrr: optim has no key 'lrr'" in out
