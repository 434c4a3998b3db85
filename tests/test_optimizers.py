"""StyleGAN2's lazy-regularization optimizer correction, optim.lr_decay, and the half-life EMA."""

from __future__ import annotations

import os

import pytest
import torch
from hydra import compose, initialize_config_dir

from conftest import TOY, result
from ganbench.build import build
from ganbench.config import CONF_DIR
from ganbench.errors import ConfigError
from ganbench.families.optimizers import lazy_ratio, linear_decay, lr_schedule
from ganbench.regularizers import R1, Regularizer


def composed(*overrides):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=["metrics=none", "model=mlp", "data=ring8", *overrides])


@pytest.mark.parametrize("interval", [1, 4, 16])
def test_lazy_r1_corrects_ds_lr_and_betas_and_leaves_g_alone(interval):
    module, _, _ = build(composed("reg=r1", f"reg.r1.interval={interval}", "optim.lr_g=0.001", "optim.lr_d=0.002",
                                  "optim.beta1=0.5", "optim.beta2=0.99"))
    opt_g, opt_d = module.configure_optimizers()
    c = interval / (interval + 1) if interval > 1 else 1.0  # StyleGAN2's mb_ratio
    assert opt_d.param_groups[0]["lr"] == pytest.approx(0.002 * c)
    assert opt_d.param_groups[0]["betas"] == pytest.approx((0.5 ** c, 0.99 ** c))
    assert opt_g.param_groups[0]["lr"] == pytest.approx(0.001)
    assert opt_g.param_groups[0]["betas"] == pytest.approx((0.5, 0.99))


def test_a_generator_side_lazy_regularizer_corrects_gs_optimizer_and_sgd_gets_the_lr_only():
    class LazyG(Regularizer):
        interval, lazy_net = 4, "generator"

    assert lazy_ratio({"pl": LazyG()}, "generator") == 0.8 and lazy_ratio({"pl": LazyG()}, "discriminator") == 1.0
    module, _, _ = build(composed("optim=sgd", "optim.lr=0.01"))
    module.regularizers["pl"] = LazyG()
    opt_g, _ = module.configure_optimizers()
    assert opt_g.param_groups[0]["lr"] == pytest.approx(0.008) and "betas" not in opt_g.param_groups[0]


def test_two_lazy_intervals_on_one_net_are_refused():
    with pytest.raises(ConfigError, match="one interval"):
        lazy_ratio({"r1": R1(interval=4), "r2": R1(interval=16)}, "discriminator")


def test_linear_decay_is_constant_then_falls_to_zero():
    f = linear_decay(0.5, 100)
    assert [f(t) for t in (0, 49, 50, 75, 100)] == pytest.approx([1, 1, 1, 0.5, 0])
    assert lr_schedule({"lr_decay": "none"}) is None
    with pytest.raises(ConfigError, match="optim.lr_decay must be one of none, linear"):
        lr_schedule({"lr_decay": "cosine"})
    with pytest.raises(ConfigError, match="lr_decay_start"):
        lr_schedule({"lr_decay": "linear", "lr_decay_start": 1.5, "g_steps": 10})


def test_linear_decay_sets_both_rates_during_training(run, tmp_path):
    code, out = run(*TOY, "metrics=none", "logger=[csv]", "optim.g_steps=8", "optim.lr=0.01", "optim.lr_decay=linear",
                    "optim.lr_decay_start=0.5", "log_every=1", "samples.every=0")
    assert code == 0, out[-3000:]
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    # the last step (g_step 7 of 8) ran at 0.01 * (1 - (7 - 4) / 4)
    assert [opt["param_groups"][0]["lr"] for opt in ckpt["optimizer_states"]] == pytest.approx([0.0025, 0.0025])
    assert result(tmp_path / "run")["status"] == "completed"


def test_half_life_ema_follows_stylegan2s_beta_with_rampup():
    module, _, _ = build(composed("ema.half_life_kimg=0.064", "ema.rampup=0.5", "optim.batch_size=16"))
    params = lambda net: torch.cat([p.detach().flatten() for p in net.parameters()])  # noqa: E731
    for step in range(3):
        with torch.no_grad():
            for p in module.G.parameters():
                p.add_(torch.randn_like(p))
        before = params(module.sampler).clone()
        module.g_step = step
        n = min(64.0, step * 16 * 0.5)  # half_life_kimg * 1000, capped by images seen * rampup
        beta = 0.5 ** (16 / max(n, 1e-8))
        assert module.half_life_beta() == pytest.approx(beta)
        module.update_ema()
        assert torch.allclose(params(module.sampler), beta * before + (1 - beta) * params(module.G), atol=1e-6)
    with pytest.raises(ConfigError, match="ema.half_life_kimg must be a number > 0"):
        build(composed("ema.half_life_kimg=0"))


@pytest.mark.parametrize("optim", ["optim=adam", "optim=rmsprop", "optim=sgd optim.optimizer.momentum=0.9"])
def test_optimizers_take_torchs_foreach_implementation_with_the_per_tensor_loops_numbers(optim):
    """ganbench asks for foreach (torch's CPU default is a per-tensor loop); the updates are bitwise those of the
    loop; a config that names an implementation keeps it."""
    import copy

    module, _, _ = build(composed(*optim.split()))
    opt_g, _ = module.configure_optimizers()
    assert opt_g.param_groups[0]["foreach"] is True
    start, loop_g = copy.deepcopy(module.G), copy.deepcopy(module.G)
    hyper = {k: v for k, v in opt_g.param_groups[0].items() if k not in ("params", "foreach")}
    opt_loop = type(opt_g)(loop_g.parameters(), **hyper, foreach=False)
    torch.manual_seed(0)
    for _ in range(4):
        z = torch.randn(16, module.z_dim)
        for net, opt in ((module.G, opt_g), (loop_g, opt_loop)):
            opt.zero_grad()
            net(z).square().mean().backward()
            opt.step()
    pairs = list(zip(module.G.parameters(), loop_g.parameters(), start.parameters()))
    assert all(torch.equal(ours, loop) for ours, loop, _ in pairs)
    assert not all(torch.equal(ours, before) for ours, _, before in pairs)  # the steps moved the weights
    chosen, _, _ = build(composed(*optim.split(), "+optim.optimizer.foreach=false"))
    assert chosen.configure_optimizers()[0].param_groups[0]["foreach"] is False


@pytest.mark.parametrize("gpu", [False, True])
def test_lightnings_nvml_cuda_check_goes_only_without_a_gpu(monkeypatch, gpu):
    """Without a GPU, Lightning's PYTORCH_NVML_BASED_CUDA_CHECK=1 makes every Adam step load NVML: building the
    optimizers drops it; with a GPU it stays."""
    from ganbench.families.optimizers import NVML_CHECK

    monkeypatch.setenv(NVML_CHECK, "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    module, _, _ = build(composed())
    module.configure_optimizers()
    assert (NVML_CHECK in os.environ) == gpu
