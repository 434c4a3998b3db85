"""Each adversarial loss equals its paper's formula on fixed logits."""

import math

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from ganbench import losses
from ganbench.config import CONF_DIR

REAL = torch.tensor([2.0, -1.0, 0.5, 0.0])
FAKE = torch.tensor([-3.0, 1.5, 0.25, -0.5])


def sig(t):
    return 1 / (1 + math.exp(-t))


def mean(f, xs):
    return sum(f(float(x)) for x in xs) / len(xs)


# (class, D loss by hand, G loss by hand) written from the papers' formulas in plain Python
CASES = {
    "mm": (losses.Minimax,
           lambda r, f: -mean(lambda t: math.log(sig(t)), r) - mean(lambda t: math.log(1 - sig(t)), f),
           lambda f: mean(lambda t: math.log(1 - sig(t)), f)),
    "ns": (losses.NonSaturating,
           lambda r, f: -mean(lambda t: math.log(sig(t)), r) - mean(lambda t: math.log(1 - sig(t)), f),
           lambda f: -mean(lambda t: math.log(sig(t)), f)),
    "wgan": (losses.Wasserstein, lambda r, f: mean(float, f) - mean(float, r), lambda f: -mean(float, f)),
    "ls": (losses.LeastSquares,
           lambda r, f: 0.5 * mean(lambda t: (t - 1) ** 2, r) + 0.5 * mean(lambda t: t ** 2, f),
           lambda f: 0.5 * mean(lambda t: (t - 1) ** 2, f)),
    "ls_sigmoid": (losses.LeastSquaresSigmoid,
                   lambda r, f: 0.5 * mean(lambda t: (sig(t) - 1) ** 2, r) + 0.5 * mean(lambda t: sig(t) ** 2, f),
                   lambda f: 0.5 * mean(lambda t: (sig(t) - 1) ** 2, f)),
    "hinge": (losses.Hinge,
              lambda r, f: mean(lambda t: max(0, 1 - t), r) + mean(lambda t: max(0, 1 + t), f),
              lambda f: -mean(float, f)),
}


@pytest.mark.parametrize("name", CASES)
def test_loss_equals_formula(name):
    cls, d_ref, g_ref = CASES[name]
    loss = cls()
    assert loss.discriminator(REAL, FAKE).item() == pytest.approx(d_ref(REAL, FAKE), rel=1e-6)
    assert loss.generator(FAKE, REAL).item() == pytest.approx(g_ref(FAKE), rel=1e-6)
    assert loss.discriminator(REAL, FAKE).shape == ()


@pytest.mark.parametrize("name", CASES)
def test_yaml_instantiates_the_class(name):
    loss = instantiate(OmegaConf.load(CONF_DIR / "loss" / f"{name}.yaml"))
    assert type(loss) is CASES[name][0]


# the games of families that are not adversarial losses of logits: tested with their family (test_family_began.py,
# test_family_vae.py); here, that no other family can use them
FAMILY_GAMES = {"began": "family=began", "vae": "family=vae"}


def test_every_loss_yaml_is_tested():
    assert {p.stem for p in (CONF_DIR / "loss").glob("*.yaml")} == set(CASES) | set(FAMILY_GAMES)


@pytest.mark.parametrize("name", sorted(FAMILY_GAMES))
def test_a_familys_game_refuses_plain_logits(name):
    from ganbench.errors import ConfigError

    loss = instantiate(OmegaConf.load(CONF_DIR / "loss" / f"{name}.yaml"))
    with pytest.raises(ConfigError, match=FAMILY_GAMES[name]):
        loss.discriminator(REAL, FAKE)
    with pytest.raises(ConfigError, match=FAMILY_GAMES[name]):
        loss.generator(FAKE)


def test_mm_and_ns_share_d_loss_but_not_g_gradients():
    mm, ns = losses.Minimax(), losses.NonSaturating()
    assert mm.discriminator(REAL, FAKE).item() == pytest.approx(ns.discriminator(REAL, FAKE).item())
    f1, f2 = FAKE.clone().requires_grad_(), FAKE.clone().requires_grad_()
    mm.generator(f1).backward()
    ns.generator(f2).backward()
    # d/df of mean(log(1 - sigmoid f)) = -sigmoid(f)/n ; of -mean(log sigmoid f) = -(1 - sigmoid(f))/n
    n = len(FAKE)
    assert torch.allclose(f1.grad, -torch.sigmoid(FAKE) / n)
    assert torch.allclose(f2.grad, -(1 - torch.sigmoid(FAKE)) / n)
    # the point of NS: for a confidently rejected fake (logit -3) MM's gradient vanishes, NS's does not
    assert f1.grad[0].abs() < 0.02 < 0.2 < f2.grad[0].abs()


def test_losses_are_stable_for_extreme_logits():
    big = torch.tensor([80.0, -80.0])
    for cls, _, _ in CASES.values():
        loss = cls()
        assert torch.isfinite(loss.discriminator(big, -big)) and torch.isfinite(loss.generator(-big))
