"""The `family` group and the shared loop's options: the default family, a checkpoint of another family, the
optimizers of the `optim` group, simultaneous updates, and the `debug` group."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from hydra import compose, initialize_config_dir
from torch import nn

from conftest import TOY, result
from ganbench.build import build
from ganbench.config import CONF_DIR
from ganbench.families.gan import GAN
from ganbench.losses import NonSaturating


def composed(*overrides):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=["metrics=none", *overrides])


def test_the_default_family_is_the_unconditional_loop_built_from_cfg_family():
    cfg = composed("model=mlp", "data=ring8")
    assert cfg.family._target_ == "ganbench.families.gan.GAN" and cfg.family.pack == 1
    module, _, _ = build(cfg)
    assert type(module) is GAN and module.pack == 1 and not module.simultaneous


def test_a_checkpoint_of_another_family_is_refused_in_one_line(run, tmp_path):
    args = [*TOY, "optim.g_steps=4", "stop_after=2"]
    assert run(*args)[0] == 0
    code, out = run(*args, "family._target_=family_stub.OtherFamily")
    assert code == 2, out[-2000:]
    assert "belongs to family gan" in out and "OtherFamily" in out
    assert result(tmp_path / "run")["status"] == "failed"
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()  # nothing lost


@pytest.mark.parametrize("option, cls, lr", [("adam", torch.optim.Adam, 2e-4), ("rmsprop", torch.optim.RMSprop, 5e-5),
                                              ("sgd", torch.optim.SGD, 1e-2)])
def test_optim_group_picks_the_optimizer_class_with_its_settings(option, cls, lr):
    module, _, _ = build(composed("model=mlp", "data=ring8", f"optim={option}", "optim.lr_d=0.003"))
    opt_g, opt_d = module.configure_optimizers()
    assert type(opt_g) is cls and type(opt_d) is cls
    assert opt_g.defaults["lr"] == pytest.approx(lr) and opt_d.defaults["lr"] == pytest.approx(0.003)
    if option == "adam":
        assert opt_g.defaults["betas"] == (0.5, 0.999)
    if option == "rmsprop":  # WGAN's reference: torch.optim.RMSprop with its defaults, n_critic 5
        assert opt_g.defaults["alpha"] == 0.99 and module.n_disc == 5


def test_the_original_wgan_setting_is_one_command(run, tmp_path):
    code, out = run(*TOY, "+gan=wgan", "optim=rmsprop", "optim.g_steps=2")
    assert code == 0, out[-2000:]
    cfg = result(tmp_path / "run")["config"]
    assert cfg["optim"]["optimizer"]["_target_"] == "torch.optim.RMSprop" and cfg["optim"]["lr"] == 5e-5
    assert cfg["loss"]["_target_"].endswith("Wasserstein") and "wclip" in cfg["reg"]


class Scalar(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([w]))


class LinearG(Scalar):
    def forward(self, z):
        return z * self.w


class LinearD(Scalar):
    def forward(self, x):
        return (x * self.w).sum(1)


def test_simultaneous_updates_take_both_gradients_at_the_same_weights():
    """One simultaneous step with SGD(lr=1) moves G and D by gradients taken at the weights before the step."""
    G, D = LinearG(0.5), LinearD(-0.3)
    optim = {"n_disc": 1, "z_dim": 1, "prior": "normal", "batch_size": 4, "simultaneous": True,
             "lr_g": 1.0, "lr_d": 1.0}
    module = GAN(copy.deepcopy(G), copy.deepcopy(D), NonSaturating(), {}, nn.Identity(), optim, ema_decay=0)
    opts = (torch.optim.SGD(module.G.parameters(), lr=1.0), torch.optim.SGD(module.D.parameters(), lr=1.0))
    module.optimizers = lambda: opts
    real = torch.tensor([[1.0], [2.0], [-1.0], [0.5]])
    torch.manual_seed(7)
    module.simultaneous_step((real, torch.zeros(4)))
    torch.manual_seed(7)
    z = torch.randn(4, 1)
    loss = NonSaturating()
    fake = G(z)
    d_out = D(torch.cat([real, fake]))
    (gd,) = torch.autograd.grad(loss.discriminator(*d_out.split(4)), D.w)
    (gg,) = torch.autograd.grad(loss.generator(D(fake)), G.w)
    assert torch.allclose(module.D.w, D.w - gd) and torch.allclose(module.G.w, G.w - gg)
    assert module.g_step == module.d_step == 1


def test_simultaneous_needs_one_d_step_per_g_step(run):
    code, out = run(*TOY, "optim.simultaneous=true", "optim.n_disc=2", "optim.g_steps=2")
    assert code == 2 and "optim.simultaneous=true" in out and "n_disc=1" in out


def test_debug_fast_and_profile(run, tmp_path):
    code, out = run("model=mlp", "data=ring8", "debug=fast")
    assert code == 0, out[-2000:]
    r = result(tmp_path / "run")
    assert r["g_steps"] == 5 and "metrics" not in r and r["config"]["name"] == "debug"
    code, out = run("model=mlp", "data=ring8", "debug=profile", "optim.g_steps=3", run_dir=tmp_path / "prof")
    assert code == 0, out[-2000:]
    assert "run_training_batch" in (tmp_path / "prof" / "fit-profile.txt").read_text()


def test_without_debug_profile_the_trainer_profiles_nothing_at_no_cost(tmp_path):
    from lightning.pytorch.profilers import SimpleProfiler

    from ganbench.build import make_trainer
    from ganbench.callbacks import NoProfiler

    profile = ["debug=profile", f"trainer.profiler.dirpath={tmp_path}"]  # (a Hydra run's output dir otherwise)
    for debug, kind in (([], NoProfiler), (profile, SimpleProfiler)):
        cfg = composed("model=mlp", "data=ring8", *debug)
        module, _, _ = build(cfg)
        trainer, _ = make_trainer(cfg, module, tmp_path, None, [])
        assert type(trainer.profiler) is kind
    with trainer.profiler.profile("x"), NoProfiler().profile("y") as inside:
        assert inside is None
    assert "x" in trainer.profiler.recorded_durations  # (the real one recorded the block)


def test_debug_overfit_draws_from_the_first_batches_only():
    cfg = composed("model=mlp", "data=ring8", "debug=overfit", "optim.batch_size=16")
    assert cfg.data.overfit_batches == 2
    _, dm, _ = build(cfg)
    dm.setup()
    sampler = dm.train_dataloader().sampler  # a TensorDataset: a loader of whole batches of indices
    seen = {i for _, batch in zip(range(20), sampler) for i in batch}
    assert seen == set(range(32))


class BNCritic(nn.Module):
    """D(x) = sum(BN(x)): its batch norm's running mean shows which samples each call normalised."""

    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm1d(1, momentum=1.0)  # running mean = the last call's batch mean
        self.calls: list[int] = []

    def forward(self, x):
        self.calls.append(len(x))
        return self.bn(x).sum(1)


@pytest.mark.parametrize("d_calls, d_step_calls, g_step_calls, g_step_mean", [
    ("joint", [8], [8], 5.0),           # the G step's call holds reals (10) and fakes (0): mean 5
    ("separate", [4, 4], [4], 0.0),     # fakes alone: mean 0
    ("joint_in_d_step", [8], [4], 0.0),
])
def test_d_calls_decide_what_batch_norm_in_d_sees(d_calls, d_step_calls, g_step_calls, g_step_mean):
    G, D = LinearG(0.0), BNCritic()  # G(z) = 0: every fake is 0, every real 10
    optim = {"n_disc": 1, "z_dim": 1, "prior": "normal", "batch_size": 4, "lr_g": 0.1, "lr_d": 0.1}
    module = GAN(G, D, NonSaturating(), {}, nn.Identity(), optim, ema_decay=0, d_calls=d_calls)
    module.optimizers = lambda: (torch.optim.SGD(G.parameters(), lr=0.0), torch.optim.SGD(D.parameters(), lr=0.0))
    module.manual_backward = lambda loss: loss.backward()  # no trainer attached
    real = torch.full((4, 1), 10.0)
    module.discriminator_step((real, torch.zeros(4)))
    assert D.calls == d_step_calls
    D.calls.clear()
    module.generator_step(4, real)
    assert D.calls == g_step_calls
    assert D.bn.running_mean.item() == pytest.approx(g_step_mean)


def test_bad_d_calls_is_one_line(run):
    code, out = run(*TOY, "family.d_calls=sometimes", "optim.g_steps=1")
    assert code == 2 and "family.d_calls" in out and "separate" in out


class RecenteringLinearD(nn.Module):
    """D(u) = <w, 2u - 1>: a critic on [0, 1] inputs that maps them back to [-1, 1], as compare_gan's SNDCGAN."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(w)
        self.seen: list[torch.Tensor] = []

    def forward(self, u):
        self.seen.append(u.detach().clone())
        return (u * 2 - 1).flatten(1) @ self.w


@pytest.mark.parametrize("data_range, grad_scale", [("symmetric", 1.0), ("unit", 2.0)])
def test_penalties_take_gradients_in_ds_range(data_range, grad_scale):
    """data.range=unit: D sees (x + 1) / 2 and WGAN-GP differentiates with respect to those [0, 1] inputs, as
    compare_gan's wgangp_penalty: for compare_gan's recentering D(u) = <w, 2u - 1> the gradient is 2w and the
    penalty lambda (sqrt(4 ||w||^2 + 1e-4) - 1)^2; the same D on [-1, 1] (D(x) = <w, x>) has gradient w."""
    from ganbench.regularizers import DRAGAN, GradientPenalty

    torch.manual_seed(0)
    w = torch.randn(4, dtype=torch.float64) / 4
    D = RecenteringLinearD(w) if data_range == "unit" else nn.Linear(4, 1, bias=False).double()
    if data_range == "symmetric":
        D.weight.data = w[None]
    optim = {"n_disc": 1, "z_dim": 4, "prior": "normal", "batch_size": 8, "lr_g": 0.1, "lr_d": 0.1}
    module = GAN(nn.Identity(), D, NonSaturating(), {"gp": GradientPenalty(), "dragan": DRAGAN()}, nn.Identity(),
                 optim, ema_decay=0)
    module.set_data_range(data_range)
    real = torch.rand(8, 4, dtype=torch.float64) * 2 - 1
    fake = torch.rand(8, 4, dtype=torch.float64) * 2 - 1
    critic = module.penalty_critic({}, {})
    value = module.regularizers["gp"].penalty(lambda x: critic(x).flatten(), module.d_inputs(real),
                                              module.d_inputs(fake))
    norm = grad_scale * w.norm().item()
    assert value.item() == pytest.approx(10 * (math.sqrt(norm ** 2 + 1e-4) - 1) ** 2, rel=1e-9)
    lo, hi = (0.0, 1.0) if data_range == "unit" else (-1.0, 1.0)
    assert module.regularizers["dragan"].data_range == (lo, hi)
    x = module.d_inputs(real)
    assert lo <= x.min() and x.max() <= hi
    images = torch.rand(8, 1, 2, 2, dtype=torch.float64) * (hi - lo) + lo  # images in D's range
    perturbed = module.regularizers["dragan"].perturb(images)  # compare_gan clips x_noisy to its [0, 1] range
    assert perturbed.max() <= hi and perturbed.min() >= lo and not torch.equal(perturbed, images)


def test_unit_range_trains_and_is_refused_for_vectors(run, tmp_path):
    code, out = run("model=sndcgan", "data=polygons", "data.resolution=8", "model.generator.width=4",
                    "model.discriminator.width=4", "+data.range=unit", "model.discriminator.recenter=true",
                    "reg=dragan", "logger=[csv]", "metrics=none", "optim.g_steps=2", "optim.batch_size=8")
    assert code == 0, out[-2000:]
    assert result(tmp_path / "run")["config"]["data"]["range"] == "unit"
    code, out = run(*TOY, "+data.range=unit", "optim.g_steps=1", run_dir=tmp_path / "toy")
    assert code == 2 and "data.range=unit applies to images" in out
    code, out = run(*TOY, "+data.range=half", "optim.g_steps=1", run_dir=tmp_path / "bad")
    assert code == 2 and "data.range must be one of symmetric, unit" in out
