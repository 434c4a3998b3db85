"""The Lucic et al. 2018 presets draw what compare_gan v1 draws, model by model and phase by phase.

The table below is written from google/compare_gan@d6c5976ba2b9d19dbff42f439c20b48565d10235 (branch v1)
compare_gan/src/params.py: GetDefaultWideRange, GetDefaultNarrowRange and <Model>HyperParams; GetParameters maps
"GAN" (NS) and "GAN_MINMAX" (MM) to GANHyperParams. Log-scale ranges are exponents of 10, as v1 writes them
(generate_tasks_lib.py::GetSample draws 10 ** U[a, b]); v1 has no normalizer but D's batch norm.
"""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from ganbench.config import CONF_DIR
from ganbench.search import _applies, apply_search, draw, flatten_space, parse

T, F = True, False
BOTH = {T, F}


def log10(a: float, b: float) -> tuple:
    return ("log", 10.0 ** a, 10.0 ** b)


def lin(a: float, b: float) -> tuple:
    return ("lin", float(a), float(b))


#: v1's common ranges: key -> (wide, narrow); a set is a discrete range, a tuple an interval
COMMON = {"optim.lr": (log10(-5, -2), log10(-4, -3)), "optim.beta1": (lin(0, 1), {0.5}),
          "optim.n_disc": ({1, 5}, {1})}
#: model -> (default D batch norm, wide D batch-norm range, narrow D batch-norm range)
BATCH_NORM = {
    "mm": (T, BOTH, BOTH), "ns": (T, BOTH, BOTH), "ls": (T, BOTH, BOTH), "wgan": (T, BOTH, BOTH),
    "wgan_gp": (F, BOTH, {F}), "dragan": (T, BOTH, {F}),
    "vae": (F, BOTH, BOTH),  # v1's narrow default False (its wide default: GetDefaultWideRange's True)
    "began": (F, BOTH, BOTH),
}
#: model -> (lr, beta1, disc_iters) defaults
DEFAULTS = {"mm": (5e-5, 0.0, 1), "ns": (5e-5, 0.0, 1), "ls": (2e-4, 0.5, 1), "wgan": (5e-5, 0.5, 5),
            "wgan_gp": (1e-4, 0.5, 5), "dragan": (1e-4, 0.5, 1), "vae": (5e-5, 0.5, 1), "began": (1e-4, 0.5, 5)}
#: model -> {key: (default, wide range, narrow range)} of the model's own parameters
OWN = {
    "wgan": {"reg.wclip.clip": (0.01, log10(-3, 0), log10(-2, 0))},
    "wgan_gp": {"reg.gp.weight": (10.0, log10(-1, 2), log10(-1, 1))},
    "dragan": {"reg.dragan_lucic.weight": (10.0, log10(-1, 2), log10(-1, 1))},
    "began": {"family.lambda_k": (1e-3, log10(-4, -2), {1e-3}), "family.gamma": (0.75, lin(0, 1), lin(0.6, 0.9))},
}
PHASES = {"wide": "lucic2018_wide", "narrow": "lucic2018_narrow"}
BN = "model.discriminator.batch_norm"


@pytest.fixture(scope="module")
def composed():
    cache: dict = {}

    def get(gan: str, phase: str):
        if (gan, phase) not in cache:
            overrides = ["experiment=lucic2018/mnist", f"gan={gan}", f"search={PHASES[phase]}"]
            cache[gan, phase] = compose("train", overrides=overrides)
        return cache[gan, phase].copy()

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        yield get


def as_range(key: str, spec) -> set | tuple:
    """A resolved space entry as the table writes it: a set of values or (scale, low, high)."""
    if not isinstance(spec, str):
        return {spec}
    override = parse(key, spec)
    if override.is_discrete_sweep():
        return set(override.sweep_iterator())
    if override.is_sweep_override():
        dist = override.value()
        return ("log" if "log" in dist.tags else "lin", float(dist.start), float(dist.end))
    return {override.value()}


def same(a, b) -> bool:
    if isinstance(a, tuple) and isinstance(b, tuple):
        return a[0] == b[0] and a[1:] == pytest.approx(b[1:], rel=1e-12)
    return a == b


@pytest.mark.parametrize("phase", sorted(PHASES))
@pytest.mark.parametrize("gan", sorted(BATCH_NORM))
def test_each_models_space_is_v1s(composed, gan, phase):
    cfg = composed(gan, phase)
    space = flatten_space(OmegaConf.to_container(cfg.search.space, resolve=True))
    ranges = {k: as_range(k, v) for k, v in space.items() if _applies(cfg, k)}
    index = 0 if phase == "wide" else 1
    expected = {k: v[index] for k, v in COMMON.items()}
    expected[BN] = BATCH_NORM[gan][1 + index]
    expected.update({k: v[1 + index] for k, v in OWN.get(gan, {}).items()})
    ranges.pop("optim.beta2")  # not a v1 parameter: TF's Adam default, 0.999
    assert ranges.keys() == expected.keys()
    for key, value in expected.items():
        assert same(ranges[key], value), (gan, phase, key, ranges[key], value)


@pytest.mark.parametrize("gan", sorted(BATCH_NORM))
def test_each_models_defaults_are_v1s(composed, gan):
    cfg = composed(gan, "wide")  # search.sample null: no draws, the model's defaults (as search=none)
    assert apply_search(cfg) == {}
    assert (cfg.optim.lr, cfg.optim.beta1, cfg.optim.n_disc) == DEFAULTS[gan]
    assert cfg.model.discriminator.batch_norm is BATCH_NORM[gan][0]
    for key, (default, _, _) in OWN.get(gan, {}).items():
        assert OmegaConf.select(cfg, key) == default


@pytest.mark.parametrize("gan", ["wgan_gp", "dragan", "ns"])
def test_samples_draw_batch_norm_from_the_models_range(composed, gan):
    for phase, index in (("wide", 1), ("narrow", 2)):
        cfg = composed(gan, phase)
        spec = OmegaConf.to_container(cfg.search.space, resolve=True)[BN]  # the model's own range or the common one
        drawn = {draw(BN, spec, cfg.search.seed, sample) for sample in range(12)}
        assert drawn == BATCH_NORM[gan][index], (gan, phase)
        cfg.search.sample = 11
        assert apply_search(cfg)[BN] is cfg.model.discriminator.batch_norm is draw(BN, spec, cfg.search.seed, 11)


def test_no_normalizer_but_batch_norm_is_drawn(composed):
    """v1 draws D's batch norm and nothing else: no reg=sn/ln/bn, no model.discriminator.norm in either space."""
    for phase in PHASES:
        space = flatten_space(OmegaConf.to_container(composed("ns", phase).search.space))
        assert not [k for k in space if k != BN and ("norm" in k or k.startswith(("reg.sn", "reg.ln", "reg.bn")))]
        assert list(composed("ns", phase).reg) == ["none"]


@pytest.mark.parametrize("phase", ["wide", "narrow"])
def test_sample_0_is_the_models_defaults_as_v1s_tune_params(composed, phase):
    """google/compare_gan v1@d6c5976 generate_tasks_lib.py::TuneParams: samples = [GetDefaultParams] + draws."""
    cfg = composed("dragan", phase)
    cfg.search.sample = 0
    assert apply_search(cfg) == {}
    assert (cfg.optim.lr, cfg.optim.beta1, cfg.optim.n_disc) == DEFAULTS["dragan"]
    assert cfg.model.discriminator.batch_norm is True  # v1's default, even where the narrow range is [False]
    cfg.search.sample = 1
    assert apply_search(cfg)  # sample 1 on: drawn
