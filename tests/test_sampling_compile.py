"""EMA start, truncated sampling, model-level spectral norm, the regularizer hooks, and trainer.compile."""

from __future__ import annotations

import math

import pytest
import torch
from hydra import compose, initialize_config_dir
from torch import nn

from ganbench.build import build
from ganbench.compile import CompileNetworks
from ganbench.errors import ConfigError
from ganbench.families.sampling import check_truncation, reduced_std_normal, resampled_normal
from ganbench.regularizers import Regularizer

from conftest import TOY, result
from ganbench.config import CONF_DIR


def composed(*overrides):
    toy = [] if any(o.startswith("model=") for o in overrides) else ["model=mlp", "data=ring8"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=["metrics=none", *toy, *overrides])


def test_resample_truncation_is_the_truncated_normal():
    t = 0.5
    z = resampled_normal(100_000, 4, t, generator=torch.Generator().manual_seed(0))
    assert z.abs().max() <= t
    phi, cdf = math.exp(-t * t / 2) / math.sqrt(2 * math.pi), 0.5 * (1 + math.erf(t / math.sqrt(2)))
    var = 1 - 2 * t * phi / (2 * cdf - 1)  # variance of N(0, 1) truncated to [-t, t]
    assert z.var().item() == pytest.approx(var, rel=0.01)
    assert z.mean().item() == pytest.approx(0, abs=0.005)


def test_reduced_std_truncation_scales_the_normal():
    z = reduced_std_normal(100_000, 4, 0.3, generator=torch.Generator().manual_seed(0))
    assert z.std().item() == pytest.approx(0.3, rel=0.01)
    assert z.abs().max() > 0.3  # not truncated: a smaller normal


@pytest.mark.parametrize("t, mode, prior, match", [(0, "resample", "normal", "> 0"), (-1, "resample", "normal", "> 0"),
                                                    (1, "cut", "normal", "resample, reduced_std"),
                                                    (1, "resample", "uniform", "normal prior")])
def test_bad_truncation_is_refused(t, mode, prior, match):
    with pytest.raises(ConfigError, match=match):
        check_truncation(t, mode, prior)


def test_metrics_and_grids_sample_the_truncated_prior_and_training_does_not():
    module, _, _ = build(composed("samples.truncation=0.2", "samples.truncation_mode=resample", "optim.z_dim=64"))
    assert module.fixed_z.abs().max() <= 0.2
    assert module.sample_z(256).abs().max() > 0.2  # training draws the prior itself
    seen = []
    module.generate = lambda inputs, net=None: seen.append(inputs["z"]) or torch.zeros(len(inputs["z"]), 2)
    module.sample(100)
    assert seen[0].abs().max() <= 0.2
    assert module.run_protocol()["sampling"] == {"truncation": 0.2, "truncation_mode": "resample"}


def test_ema_copies_g_until_ema_start_then_averages():
    module, _, _ = build(composed("ema.start=2", "ema.decay=0.9"))
    params = lambda net: torch.cat([p.detach().flatten() for p in net.parameters()])  # noqa: E731
    for step in range(3):
        with torch.no_grad():
            for p in module.G.parameters():
                p.add_(torch.randn_like(p))
        before = params(module.sampler).clone()
        module.g_step = step
        module.update_ema()
        if step < 2:
            assert torch.equal(params(module.sampler), params(module.G))
        else:  # the first averaged step: decay min(0.9, (1 + 1) / (10 + 1))
            d = min(0.9, 2 / 11)
            assert torch.allclose(params(module.sampler), d * before + (1 - d) * params(module.G), atol=1e-6)


def test_ema_update_equals_averaged_models_own_update_bitwise():
    """update_ema's one foreach op gives what AveragedModel.update_parameters with ema_avg_fn gives (the first call
    copies, then min(decay, (1 + t) / (10 + t))), buffers (batch norm statistics) copied; a stale or shifted t fails."""
    import copy

    module, _, _ = build(composed("model=pacgan_toy", "data=ring8", "ema.decay=0.99"))  # batch norm buffers in G
    reference = copy.deepcopy(module.G_ema)
    for step in range(5):
        with torch.no_grad():
            for t in [*module.G.parameters(), *module.G.buffers()]:
                t.add_(torch.randn_like(t)) if t.is_floating_point() else t.add_(1)
        module.g_step = step
        module.update_ema()
        reference.update_parameters(module.G)
        ours, ref = module.G_ema.state_dict(), reference.state_dict()
        assert ours.keys() == ref.keys() and all(torch.equal(ours[k], ref[k]) for k in ours), step
    assert int(module.G_ema.n_averaged) == 5


def test_ema_follows_g_after_the_module_is_cast():
    """update_ema lists the tensors once; a cast (or a device move) gives buffers new tensors, and the EMA still
    copies G's current ones afterwards (a stale list would copy the old ones)."""
    module, _, _ = build(composed("model=pacgan_toy", "data=ring8", "ema.decay=0.99"))
    module.update_ema()
    module.to(torch.float64)
    with torch.no_grad():
        for b in module.G.buffers():
            b.add_(3)
    module.update_ema()
    for (name, b_ema), (_, b) in zip(module.G_ema.module.named_buffers(), module.G.named_buffers()):
        assert b_ema.dtype == b.dtype and torch.equal(b_ema, b), name


def test_model_spectral_norm_is_applied_once_with_reg_sn():
    from torch.nn.utils import parametrize

    module, _, _ = build(composed("+model.spectral_norm=[generator,discriminator]", "reg=[sn]"))
    for net in (module.G, module.D):
        layers = [m for m in net.modules() if isinstance(m, nn.Linear)]
        assert layers and all(parametrize.is_parametrized(m, "weight") for m in layers)
        assert all(len(m.parametrizations.weight) == 1 for m in layers)
    with pytest.raises(ConfigError, match="model.spectral_norm"):
        build(composed("+model.spectral_norm=[critic]"))


class Hooks(Regularizer):
    """Records what the loop hands the new hooks."""

    def __init__(self):
        self.calls = []

    def check_data(self, shape):
        self.calls.append(("data", shape))

    def d_step_term(self, gan, inputs, fake, fake_out):
        self.calls.append(("d", fake.requires_grad))
        return fake_out.mean() * 0 + 1.5

    def g_step_term(self, gan, inputs, fake):
        self.calls.append(("g", fake.requires_grad))
        return fake.mean() * 0 + 2.5


def test_regularizer_hooks_reach_the_d_and_g_losses():
    module, _, _ = build(composed())
    hooks = Hooks()
    module.regularizers["hooks"] = hooks
    real = torch.randn(8, 2)
    inputs = module.sample_inputs(8)
    fake = module.generate(inputs).detach()
    _, _, terms = module.d_loss_terms(real, {}, fake, {}, inputs)
    assert terms["reg/hooks_d"].item() == 1.5
    g_terms = module.regularizer_g_terms(inputs, module.generate(inputs))
    assert g_terms["reg/hooks_g"].item() == 2.5
    assert hooks.calls == [("d", False), ("g", True)]
    critic = module.penalty_critic({}, {})
    assert torch.equal(critic.fake(real), critic(real))  # unconditional: one critic


def failing_backend(gm, example_inputs):
    raise RuntimeError("no compiler here")


class FakeTrainer:
    class precision_plugin:  # noqa: N801
        @staticmethod
        def forward_context():
            from contextlib import nullcontext

            return nullcontext()


@pytest.mark.parametrize("backend, compiled", [("eager", True), (failing_backend, False)])
def test_compile_trial_falls_back_and_leaves_no_trace(backend, compiled, caplog):
    torch._dynamo.reset()
    module, _, _ = build(composed("model=dcgan", "reg=[r1]"))
    state = {k: v.clone() for k, v in module.state_dict().items()}
    rng = torch.get_rng_state()
    callback = CompileNetworks(backend=backend)
    callback.on_train_start(FakeTrainer(), module)
    assert callback.compiled == {"G": compiled, "D": compiled}
    assert (module.G._compiled_call_impl is not None) == compiled
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(v, state[k]) for k, v in module.state_dict().items())
    assert all(p.grad is None for p in module.parameters())
    if not compiled:
        assert "runs uncompiled" in caplog.text and "no compiler here" in caplog.text
    module.G(module.sample_z(4))  # runs either way
    torch._dynamo.reset()


def test_compile_runs_through_the_cli(run, tmp_path):
    code, out = run("model=mlp", "data=ring8", "debug=fast", "metrics=none", "trainer.compile=true",
                    "trainer.compile_backend=eager", run_dir=tmp_path / "c")
    assert code == 0, out
    assert result(tmp_path / "c")["compiled"] == {"G": True, "D": True}
