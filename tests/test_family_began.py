"""family=began: BEGAN's formulas on fixed numbers, its networks, training runs, bad input, a learning test with a
frozen-G control, and exact resume of k."""

from __future__ import annotations

import os
import signal

import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir

from conftest import TOY as GAN_TOY
from conftest import result
from ganbench.build import build
from ganbench.config import CONF_DIR
from ganbench.errors import ConfigError
from ganbench.families.began import BoundaryEquilibrium, k_next, m_global, reconstruction_error

# digits at 8x8, InfoGAN-style G and compare_gan v1's autoencoder at width 8
DIGITS = ["family=began", "loss=began", "model=infogan", "data.resolution=8", "model.generator.width=8",
          "model.discriminator.width=8", "optim.batch_size=32", "logger=[csv]", "metrics=none", "samples.every=0",
          "checkpoint.every=0", "log_every=1"]
TOY = ["family=began", "loss=began", "family.autoencoder=mlp", "family.autoencoders.mlp.hidden=16", "model=mlp",
       "data=ring8", "model.generator.hidden=16", "optim.batch_size=32", "logger=[csv]", "metrics=none",
       "samples.every=0", "checkpoint.every=0"]


class KillAtBEGAN(BoundaryEquilibrium):
    """BEGAN's game that SIGKILLs its process at the D step named by $GANBENCH_TEST_KILL_AT (as kill_loss.KillAt);
    imported by the training subprocess through PYTHONPATH=tests."""

    def __init__(self):
        self.calls = 0

    def discriminator(self, real_error, fake_error, k=None):
        self.calls += 1
        if self.calls == int(os.environ.get("GANBENCH_TEST_KILL_AT", "0")):
            os.kill(os.getpid(), signal.SIGKILL)
        return super().discriminator(real_error, fake_error, k)


def composed(*overrides):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


# -- formulas on fixed numbers -------------------------------------------------------------------------------------
def test_k_update_and_m_global_on_fixed_numbers_with_and_without_clipping():
    t = torch.tensor
    # L(x) = 0.4, L(G(z)) = 0.1, gamma = 0.5: balance gamma L(x) - L(G) = 0.1; M = 0.4 + 0.1
    assert float(k_next(t(0.2), t(0.4), t(0.1), 0.5, 0.1, clip=True)) == pytest.approx(0.21)
    assert float(k_next(t(0.2), t(0.4), t(0.1), 0.5, 0.1, clip=False)) == pytest.approx(0.21)
    assert float(m_global(t(0.4), t(0.1), 0.5)) == pytest.approx(0.5)
    # above 1: clipped to 1 (paper, carpedm20), not clipped (compare_gan v1): 0.995 + 0.1 * 0.1 = 1.005
    assert float(k_next(t(0.995), t(0.4), t(0.1), 0.5, 0.1, clip=True)) == 1.0
    assert float(k_next(t(0.995), t(0.4), t(0.1), 0.5, 0.1, clip=False)) == pytest.approx(1.005)
    # below 0: balance 0.75 * 0.2 - 0.9 = -0.75, 0.01 - 0.1 * 0.75 = -0.065; M = 0.2 + 0.75
    assert float(k_next(t(0.01), t(0.2), t(0.9), 0.75, 0.1, clip=True)) == 0.0
    assert float(k_next(t(0.01), t(0.2), t(0.9), 0.75, 0.1, clip=False)) == pytest.approx(-0.065)
    assert float(m_global(t(0.2), t(0.9), 0.75)) == pytest.approx(0.95)


def test_the_game_and_the_reconstruction_error_on_fixed_numbers():
    v = torch.tensor([[1.0, -1.0, 0.5, 0.0], [0.0, 0.0, 0.0, 0.0]])
    recon = torch.tensor([[0.5, -1.0, 0.0, 1.0], [0.2, -0.2, 0.2, -0.2]])
    assert torch.allclose(reconstruction_error(v, recon), torch.tensor([2.0 / 4, 0.2]))
    game = BoundaryEquilibrium()
    assert float(game.discriminator(torch.tensor(0.4), torch.tensor(0.1), torch.tensor(0.3))) == pytest.approx(0.37)
    assert float(game.generator(torch.tensor(0.1))) == pytest.approx(0.1)
    with pytest.raises(ConfigError, match="family=began"):  # another family calls it with logits
        game.discriminator(torch.zeros(4), torch.zeros(4))


def test_a_d_step_backpropagates_the_game_only_and_updates_k_from_that_steps_errors():
    """k and M_global are logged with the step's terms but never enter D's loss; k moves by lambda_k times the
    balance of the very errors the step used."""
    module, dm, _ = build(composed(*TOY, "family.lambda_k=0.5", "family.gamma=0.7", "family.clip_k=false"))
    module.k.fill_(0.3)
    opt_g, opt_d = module.configure_optimizers()
    grads = {}
    module.optimizers = lambda: (opt_g, opt_d)
    module.manual_backward = lambda loss: grads.update(total=float(loss.detach())) or loss.backward()
    torch.manual_seed(0)
    terms = module.discriminator_step((torch.randn(32, 2), torch.zeros(32, dtype=torch.long)))
    l_real, l_fake = float(terms["d_real"]), float(terms["d_fake"])
    assert grads["total"] == pytest.approx(l_real - 0.3 * l_fake, rel=1e-6)  # only L(x) - k L(G(z))
    assert float(terms["loss/d"]) == pytest.approx(l_real - 0.3 * l_fake, rel=1e-6)
    assert float(module.k) == pytest.approx(0.3 + 0.5 * (0.7 * l_real - l_fake), rel=1e-6)
    assert float(terms["began/k"]) == float(module.k)
    assert float(terms["began/m_global"]) == pytest.approx(l_real + abs(0.7 * l_real - l_fake), rel=1e-6)
    assert "k" in module.state_dict()  # a buffer: checkpointed with the weights


def test_the_autoencoders_reconstruct_the_datas_shape():
    from ganbench.nets.began import LucicAutoencoder, MLPAutoencoder, PaperAutoencoder

    for net, shape in ((LucicAutoencoder((1, 28, 28), width=4, batch_norm=True), (1, 28, 28)),
                       (PaperAutoencoder((3, 64, 64), width=4, code_dim=8), (3, 64, 64)),
                       (PaperAutoencoder((1, 8, 8), width=4), (1, 8, 8)), (MLPAutoencoder((2,)), (2,))):
        assert net(torch.randn(2, *shape)).shape == (2, *shape)
    paper = PaperAutoencoder((3, 64, 64), width=4, code_dim=8)  # carpedm20 at 64 px: 4 blocks, 3 downsamplings
    assert sum(isinstance(m, torch.nn.Upsample) for m in paper.modules()) == 3
    assert paper.encoder[-1].in_features == 8 * 8 * 4 * 4  # the 8x8 map of the last block's n * 4 channels


# -- training runs --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("autoencoder", ["lucic", "paper"])
def test_began_trains_three_steps_on_digits_and_logs_k_and_m_global(run, tmp_path, autoencoder):
    extra = ["data.resolution=16", "family.autoencoders.paper.width=8"] if autoencoder == "paper" else []
    code, out = run(*DIGITS, f"family.autoencoder={autoencoder}", *extra, "optim.g_steps=3")
    assert code == 0, out[-3000:]
    assert result(tmp_path / "run")["status"] == "completed"
    rows = pd.read_csv(tmp_path / "run" / "metrics.csv").dropna(subset=["loss/d"])
    assert rows["g_step"].tolist() == [1, 2, 3]
    assert rows["began/k"].notna().all() and rows["began/m_global"].notna().all()
    assert (rows["began/k"] > 0).all()  # gamma L(x) > L(G(z)) at the start: k rises from 0


def test_began_with_weight_regularizers_separate_d_calls_and_simultaneous_updates(run, tmp_path):
    """sn and l2 act on the autoencoder's weights; optim.simultaneous is carpedm20's one-forward schedule."""
    code, out = run(*TOY, "reg=[sn,l2]", "family.d_calls=separate", "optim.simultaneous=true", "optim.g_steps=3",
                    "log_every=1")
    assert code == 0, out[-3000:]
    rows = pd.read_csv(tmp_path / "run" / "metrics.csv").dropna(subset=["began/k"])
    assert rows["g_step"].tolist() == [1, 2, 3] and rows["reg/l2"].notna().all()


def test_lucics_began_preset_is_compare_gan_v1s_model():
    cfg = composed("+gan=began", "model=infogan", "model.discriminator.batch_norm=true")
    assert cfg.family._target_.endswith("began.BEGAN") and cfg.loss._target_.endswith("BoundaryEquilibrium")
    assert (cfg.family.gamma, cfg.family.lambda_k, cfg.family.clip_k) == (0.75, 1e-3, False)
    assert (cfg.optim.lr, cfg.optim.beta1, cfg.optim.n_disc, cfg.data.range) == (1e-4, 0.5, 5, "unit")
    assert cfg.family.autoencoders.lucic.batch_norm is True  # follows Lucic's "batch norm in D" switch
    module, _, _ = build(cfg)
    norms = [m for m in module.D.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert module.clip_k is False and len(norms) == 3 and norms[0].eps == 1e-3  # v1's batch norm
    assert isinstance(module.D.decoder[-1], torch.nn.Sigmoid)  # v1's AE output, for its [0, 1] images


def test_l_is_measured_on_the_images_as_d_sees_them():
    """data.range=unit: the AE reconstructs (x + 1) / 2 and L is the L1 error there (compare_gan v1's values)."""
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    for data_range, seen in (("symmetric", x), ("unit", (x + 1) / 2)):
        module, _, _ = build(composed(*DIGITS, f"data.range={data_range}"))
        module.eval()
        expected = (seen - module.D(seen)).abs().mean((1, 2, 3))
        assert torch.allclose(module.discriminate(x, {}), expected)
        assert isinstance(module.D.decoder[-1], torch.nn.Sigmoid if data_range == "unit" else torch.nn.Tanh)


def test_began_keys_of_a_random_search_apply_to_began_runs_only():
    from ganbench.search import apply_search

    began = composed("experiment=lucic2018/mini", "gan=began", "search.sample=2")
    drawn = apply_search(began)
    assert began.family.gamma == drawn["family.gamma"] and began.family.lambda_k == drawn["family.lambda_k"]
    assert "family.gamma" not in apply_search(composed("experiment=lucic2018/mini", "gan=ns", "search.sample=2"))
    typo = composed("experiment=lucic2018/mini", "gan=began", "search.sample=2", "+search.space.family.gama=0.5")
    with pytest.raises(ConfigError, match="family has no key 'gama'"):
        apply_search(typo)


# -- bad input ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("overrides, words", [
    (["loss=ns"], ["family=began", "loss=began"]),
    (["family.pack=2"], ["family.pack=2", "family=began"]),
    (["family.gamma=1.5"], ["family.gamma", "[0, 1]", "1.5"]),
    (["family.lambda_k=-0.001"], ["family.lambda_k", ">= 0"]),
    (["reg=gp"], ["reg=gp", "autoencoder", "sn, wclip or l2"]),
    (["reg=bn"], ["reg=bn", "batch_norm"]),
    (["family.autoencoder=lucic"], ["family.autoencoder=lucic", "square images"]),
    (["family.autoencoder=nope"], ["family.autoencoder='nope'", "lucic", "paper", "mlp"]),
])
def test_bad_began_settings_get_one_line(run, overrides, words):
    code, out = run(*TOY, *overrides, "optim.g_steps=1")
    assert code == 2, out[-2000:]
    line = out.strip().splitlines()[-1]
    assert line.startswith("ganbench: error:") and all(w in line for w in words), line


def test_loss_began_outside_family_began_gets_one_line(run):
    code, out = run(*GAN_TOY, "loss=began", "optim.g_steps=1")
    assert code == 2, out[-2000:]
    assert "loss=began" in out and "needs family=began" in out and "Traceback" not in out


# -- learning -------------------------------------------------------------------------------------------------------
LEARN = [*DIGITS, "optim.batch_size=64", "family.autoencoders.lucic.code_dim=16", "optim.lr=0.001",
         "optim.g_steps=200", "log_every=10", "ema.decay=0"]


def _m_global(run, tmp_path, name, *overrides):
    code, out = run(*LEARN, *overrides, run_dir=tmp_path / name)
    assert code == 0, out[-3000:]
    return pd.read_csv(tmp_path / name / "metrics.csv")["began/m_global"].dropna().to_numpy()


def test_m_global_falls_by_half_and_not_with_a_frozen_generator(run, tmp_path, one_cpu_thread):
    trained = _m_global(run, tmp_path, "trained")
    frozen = _m_global(run, tmp_path, "frozen", "optim.lr_g=1e-9")  # control: D learns, G does not
    end, frozen_end = trained[-3:].mean(), frozen[-3:].mean()
    assert end < 0.5 * trained[0], trained
    assert frozen_end > 0.5 * frozen[0], frozen
    assert end < 0.6 * frozen_end, (trained, frozen)


# -- exact resume ---------------------------------------------------------------------------------------------------
RESUME = [*TOY, "data.n_train=256", "optim.n_disc=2", "optim.g_steps=12", "family.clip_k=false",
          "family.lambda_k=0.01", "loss._target_=test_family_began.KillAtBEGAN", "checkpoint.every=5", "log_every=1"]


def test_sigkill_then_rerun_ends_bitwise_like_an_uninterrupted_run_k_included(cli, run, tmp_path, one_cpu_thread):
    """One torch thread in this process and in the killed one, so that both compute alike."""
    code, out = run(*RESUME, run_dir=tmp_path / "reference")
    assert code == 0, out[-3000:]
    killed = cli(*RESUME, env={"GANBENCH_TEST_KILL_AT": "15", "OMP_NUM_THREADS": "1"})  # after the step-5 checkpoint
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert result(tmp_path / "run")["status"] == "running"
    code, out = run(*RESUME)
    assert code == 0, out[-3000:]
    assert result(tmp_path / "run")["status"] == "completed"
    ours, theirs = (torch.load(d / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
                    for d in (tmp_path / "run", tmp_path / "reference"))
    assert ours["state_dict"].keys() == theirs["state_dict"].keys()
    different = [k for k in ours["state_dict"] if not torch.equal(ours["state_dict"][k], theirs["state_dict"][k])]
    assert not different, different
    assert float(ours["state_dict"]["k"]) != 0.0
    for a, b in zip(ours["optimizer_states"], theirs["optimizer_states"]):
        for p, q in zip(a["state"].values(), b["state"].values()):
            assert all(torch.equal(p[key], q[key]) for key in p)
    assert ours["ganbench"]["d_step"] == theirs["ganbench"]["d_step"] == 24
    ks = [pd.read_csv(d / "metrics.csv").dropna(subset=["began/k"]).set_index("g_step")["began/k"]
          for d in (tmp_path / "run", tmp_path / "reference")]  # the logged k of the steps after the resume
    assert ks[0].index.max() == 12 and ks[0].to_dict() == ks[1].loc[ks[0].index].to_dict()
