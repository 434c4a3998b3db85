"""family=vae: compare_gan v1's ELBO on fixed numbers, the encoder and sampling, a short run scored by the
evaluator (n_disc = VAE updates per generator step), and bad input."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir

from conftest import TOY, result
from ganbench.build import build
from ganbench.config import CONF_DIR
from ganbench.families.vae import bernoulli_nll, gaussian_kl, negative_elbo

DIGITS = ["family=vae", "optim.prior=normal", "model=infogan", "data.resolution=8", "model.generator.width=8",
          "model.discriminator.width=8", "optim.batch_size=32", "logger=[csv]", "metrics=none", "samples.every=0",
          "checkpoint.every=0", "log_every=1"]


def composed(*overrides):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


def test_the_elbo_on_a_fixed_batch_against_a_hand_computation():
    # 2 images, 2 channels, 1x2 pixels; p = 1 where x = 1 and p = 0 where x = 0: clipped to [1e-8, 1 - 1e-8]
    x = torch.tensor([[[[1.0, 0.0]], [[0.5, 0.25]]], [[[1.0, 1.0]], [[0.0, 0.75]]]])
    p = torch.tensor([[[[1.0, 0.0]], [[0.5, 0.9]]], [[[0.8, 0.6]], [[0.1, 0.5]]]])

    def loglik(xi, pi):
        pi = min(max(pi, 1e-8), 1 - 1e-8)
        return xi * math.log(pi) + (1 - xi) * math.log(1 - pi)

    per_image_channel = [sum(loglik(a, b) for a, b in zip(xs, ps)) for xs, ps in
                         [([1, 0], [1, 0]), ([0.5, 0.25], [0.5, 0.9]), ([1, 1], [0.8, 0.6]), ([0, 0.75], [0.1, 0.5])]]
    nll = -sum(per_image_channel) / 4  # v1: sum over H and W, mean over batch and channels
    assert float(bernoulli_nll(x, p)) == pytest.approx(nll, rel=1e-6)
    mean, std = torch.tensor([[0.0, 1.0], [0.5, -0.5]]), torch.tensor([[1.0, 0.5], [2.0, 0.1]])

    def kl(ms, ss):
        return 0.5 * sum(m * m + s * s - math.log(1e-8 + s * s) - 1 for m, s in zip(ms, ss))

    assert float(gaussian_kl(mean, std)) == pytest.approx((kl([0, 1], [1, 0.5]) + kl([0.5, -0.5], [2, 0.1])) / 2,
                                                          rel=1e-6)
    total = sum(negative_elbo(x, p, mean, std))
    assert math.isfinite(float(total)) and float(total) == pytest.approx(float(bernoulli_nll(x, p) + gaussian_kl(
        mean, std)))


def test_the_encoder_is_ds_body_with_a_gaussian_head_and_samples_are_the_decoder_on_the_prior():
    module, _, _ = build(composed(*DIGITS, "model.discriminator.batch_norm=true"))
    assert module.D.head.out_features == 2 * module.z_dim and isinstance(module.D.body.head, torch.nn.Identity)
    mean, std = module.D(torch.randn(4, 1, 8, 8))
    assert mean.shape == std.shape == (4, module.z_dim) and bool((std > 1e-6).all())
    assert sum(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in module.D.modules()) == 2  # v1's BN
    z = torch.randn(5, module.z_dim)
    G = module.sampler.eval()
    assert torch.equal(module.sample(z=z), G(z))
    assert module.fixed_z.std() > 0.5 and (module.fixed_z < 0).any()  # N(0, I), not U[-1, 1]
    opt = module.configure_optimizers()  # one optimizer: the decoder's and the encoder's parameters
    assert [len(g["params"]) for g in opt.param_groups] == [len(list(module.G.parameters())),
                                                           len(list(module.D.parameters()))]


def test_vae_trains_with_n_disc_updates_per_generator_step_and_is_scored(run, tmp_path):
    code, out = run(*DIGITS, "optim.n_disc=2", "optim.g_steps=3", "metrics=quick", "metrics.num_fake=256")
    assert code == 0, out[-3000:]
    record = result(tmp_path / "run")
    assert record["status"] == "completed" and record["g_steps"] == 3
    assert math.isfinite(record["metrics"]["final"]["fid/domain_test360"])  # the evaluator on decoder samples
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["ganbench"]["d_step"] == 6 and ckpt["global_step"] == 6  # 2 updates (batches) per step
    rows = pd.read_csv(tmp_path / "run" / "metrics.csv").dropna(subset=["loss/vae"])
    assert rows["g_step"].tolist() == [1, 2, 3]
    assert (rows["loss/vae"] - rows["vae/nll"] - rows["vae/kl"]).abs().max() < 1e-3


def test_lucics_vae_preset():
    cfg = composed("experiment=lucic2018/mnist", "gan=vae")
    assert cfg.family._target_.endswith("vae.VAE") and list(cfg.reg) == ["none"]
    assert (cfg.optim.lr, cfg.optim.beta1, cfg.optim.prior, cfg.data.range) == (5e-5, 0.5, "normal", "unit")


@pytest.mark.parametrize("overrides, words", [
    (["family.pack=2"], ["family.pack=2", "family=vae"]),
    (["optim.prior=uniform"], ["optim.prior must be normal"]),
    (["reg=gp"], ["reg=gp", "family=vae", "reg=none"]),
    (["augment=diffaug"], ["augment", "augment=none"]),
    (["optim.simultaneous=true"], ["optim.simultaneous", "family=vae"]),
    (["model=mlp", "data=ring8"], ["family=vae", "images"]),
])
def test_bad_vae_settings_get_one_line(run, overrides, words):
    base = [*TOY, "family=vae", "optim.prior=normal"] if "model=mlp" in overrides else DIGITS
    code, out = run(*base, *overrides, "optim.g_steps=1")
    assert code == 2, out[-2000:]
    line = out.strip().splitlines()[-1]
    assert line.startswith("ganbench: error:") and all(w in line for w in words), line
