"""model=sagan and model=biggan through the CLI: 3 steps alone and with diffaug, cr, bcr, zcr, ortho, r1; the bad
inputs; exact resume with ema.start and CR."""

from __future__ import annotations

import pytest
import torch

from conftest import assert_same_last_checkpoint, result

pytestmark = pytest.mark.usefixtures("one_cpu_thread")

# labelled synthetic 32 px polygons (the vertex count is the class), tiny widths
COMMON = ["optim.batch_size=4", "metrics=none", "logger=[csv]", "samples.every=0", "samples.num=8",
          "optim.g_steps=3", "checkpoint.every=0", "loss=hinge"]
DATA = ["data=polygons", "data.resolution=32", "data.n_train=64", *COMMON]
SAGAN = ["model=sagan", "model.generator.width=2", "model.discriminator.width=4"]  # attention needs >= 8 channels
BIGGAN = ["model=biggan", "family=conditional", "model.generator.ch=2", "model.discriminator.ch=2"]


@pytest.mark.parametrize("model, extra", [
    (SAGAN, []),
    (SAGAN, ["augment=diffaug", "reg=[cr,ortho]"]),
    (SAGAN + ["family=conditional"], ["reg=[bcr,zcr,r1]", "ema.start=2"]),
    (BIGGAN, []),
    (BIGGAN, ["augment=diffaug", "reg=[bcr,ortho]", "model.generator.hier=true", "optim.z_dim=20"]),
    (BIGGAN, ["reg=[cr,zcr,r1]", "samples.truncation=0.5", "samples.truncation_mode=reduced_std"]),
], ids=["sagan", "sagan-diffaug-cr-ortho", "sagan-cond-bcr-zcr-r1", "biggan", "biggan-hier-diffaug-bcr-ortho",
        "biggan-cr-zcr-r1-trunc"])
def test_trains_three_steps(run, tmp_path, model, extra):
    code, out = run(*DATA, *model, *extra)
    assert code == 0, out[-3000:]
    rec = result(tmp_path / "run")
    assert rec["status"] == "completed" and rec["g_steps"] == 3


@pytest.mark.parametrize("overrides, message", [
    (SAGAN + ["model.generator.attention=[12]"], "model.generator.attention"),
    (BIGGAN + ["model.generator.hier=true", "optim.z_dim=21"], "optim.z_dim"),
    (BIGGAN + ["family=gan"], "family=conditional"),
    (BIGGAN + ["data=swissroll"], "class labels"),
    (SAGAN + ["reg=ortho", "reg.ortho.beta=-1"], "beta"),
    (SAGAN + ["+model.spectral_norm=[mapping]"], "model.spectral_norm"),
    (["model=mlp", "data=ring8", "reg=cr"], "reg=cr"),
    (SAGAN + ["samples.truncation=0"], "samples.truncation"),
])
def test_bad_input_is_one_line(run, overrides, message):
    images = not any(o in overrides for o in ("data=swissroll", "data=ring8"))
    code, out = run(*(DATA if images else COMMON), *overrides)
    assert code == 2, out[-2000:]
    errors = [line for line in out.splitlines() if line.startswith("ganbench: error:")]
    assert len(errors) == 1 and message in errors[0], out[-2000:]


RESUME = [*DATA, *BIGGAN, "optim.g_steps=8", "optim.n_disc=2", "loss._target_=kill_loss.KillAt", "reg=[cr]",
          "ema.start=4", "ema.decay=0.9", "checkpoint.every=3", "log_every=1"]


def test_sigkill_then_rerun_ends_bitwise_with_ema_start_and_cr(cli, run, tmp_path):
    """Killed in the D step of generator step 5 (after the checkpoint at 3, before EMA averaging starts at 4)."""
    code, out = run(*RESUME, run_dir=tmp_path / "reference")
    assert code == 0, out[-3000:]
    killed = cli(*RESUME, env={"GANBENCH_TEST_KILL_AT": "9", "OMP_NUM_THREADS": "1"})
    assert killed.returncode == -9, killed.stderr[-2000:]
    code, out = run(*RESUME)
    assert code == 0, out[-3000:]
    ours, theirs = assert_same_last_checkpoint(tmp_path / "run", tmp_path / "reference")
    g = {k: v for k, v in ours["state_dict"].items() if k.startswith("G.")}
    ema = {k[len("G_ema.module."):]: v for k, v in ours["state_dict"].items() if k.startswith("G_ema.module.")}
    assert any(not torch.equal(v, ema[k[2:]]) for k, v in g.items() if v.is_floating_point())  # averaging began


# BigGAN-PyTorch's launch scripts (ajbrock/BigGAN-PyTorch@9845943 scripts/): name -> the values they set
SCRIPTS = {
    "sagan_imagenet128": {"optim.lr_g": 1e-4, "optim.lr_d": 4e-4, "optim.beta1": 0.0, "optim.n_disc": 1,
                          "optim.batch_size": 256, "ema.start": 2000, "model.generator.attention": [64],
                          "model.generator.shared": False, "model.generator.init": "xavier", "data.resolution": 128},
    "biggan_imagenet128": {"optim.lr_g": 1e-4, "optim.lr_d": 4e-4, "optim.batch_size": 2048, "optim.z_dim": 120,
                           "model.generator.hier": True, "model.generator.shared_dim": 128, "model.generator.ch": 96,
                           "ema.start": 20000, "optim.optimizer.eps": 1e-6, "data.resolution": 128},
    "cifar10": {"optim.lr_g": 2e-4, "optim.lr_d": 2e-4, "optim.n_disc": 4, "optim.batch_size": 50,
                "model.generator.attention": [], "model.generator.init": "normal_0.02", "ema.start": 1000,
                "optim.g_steps": 125000},
}


@pytest.mark.parametrize("preset", sorted(SCRIPTS))
def test_biggan_pytorch_presets_are_its_launch_scripts(preset):
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from ganbench.config import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"experiment=biggan_pytorch/{preset}", "data.root=/nowhere"])
    for key, value in SCRIPTS[preset].items():
        assert OmegaConf.select(cfg, key) == value, key
    assert cfg.family._target_.endswith("Conditional") and cfg.loss._target_.endswith("Hinge")
    # the nets build at the preset's resolution (tiny widths): hierarchical z splits exactly
    side = cfg.data.get("resolution", 32)
    node = {k: v for k, v in OmegaConf.to_container(cfg.model.generator).items() if k != "init"}  # build() applies it
    g = instantiate({**node, "ch": 4}, z_dim=cfg.optim.z_dim, data_shape=(3, side, side), num_classes=3)
    assert g(torch.randn(2, cfg.optim.z_dim), torch.tensor([0, 2])).shape == (2, 3, side, side)


def test_the_official_sagan_preset_is_its_codes_settings():
    """brain-research/self-attention-gan@ad9612e: model.py flags, train_imagenet.py, generator_test/discriminator_test."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from ganbench.config import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["experiment=sagan_official/imagenet128", "data.root=/nowhere"])
    expected = {"optim.lr_g": 1e-4, "optim.lr_d": 4e-4, "optim.beta1": 0.0, "optim.beta2": 0.999, "optim.n_disc": 1,
                "optim.batch_size": 256, "optim.z_dim": 128, "model.generator.attention": [32],
                "model.discriminator.attention": [32], "model.generator.width": 64, "data.resolution": 128,
                "family.d_cond": "projection", "ema.decay": 0}
    assert {k: OmegaConf.select(cfg, k) for k in expected} == expected
    assert cfg.loss._target_.endswith("Hinge")
    node = {k: v for k, v in OmegaConf.to_container(cfg.model.generator).items() if k != "init"}
    g = instantiate({**node, "width": 2}, z_dim=128, data_shape=(3, 128, 128))  # tiny widths, the preset's layout
    seen = []
    for m in g.modules():
        if type(m).__name__ == "SelfAttention":
            m.register_forward_hook(lambda mod, inp, out: seen.append(out.shape[-1]))
    assert g(torch.randn(1, 128)).shape == (1, 3, 128, 128) and seen == [32]
