"""StudioGAN's CIFAR-10 presets (conf/experiment/studiogan/) against PyTorch-StudioGAN@947b35e's configs, and its
published table (ganbench/published/studiogan.yaml) against the presets.

Every expected value below is read from StudioGAN's files, not from the presets: src/config.py (the defaults),
src/configs/CIFAR10/{SNGAN,SAGAN,BigGAN,BigGAN-CR,BigGAN-DiffAug}.yaml, src/main.py, src/worker.py::evaluate.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conftest import result
from ganbench.analyze import published
from ganbench.analyze.table import row
from ganbench.build import network_inits
from ganbench.config import CONF_DIR
from ganbench.families.conditional import Conditional

# config.py defaults shared by every CIFAR-10 config here (OPTIMIZATION.*, MODEL.z_prior, define_optimizer's eps)
SG_OPTIM = {"batch_size": 64, "n_disc": 5, "lr_g": 2e-4, "lr_d": 2e-4, "beta1": 0.5, "beta2": 0.999,
            "prior": "normal"}
# preset -> (model, G steps, z_dim, EMA decay, EMA start, SN nets, augment policy, CR lambda) per StudioGAN config
SG = {
    "sngan_cifar10": ("resnet_cifar", 100_000, 128, 0, 0, ["discriminator"], None, None),
    "sagan_cifar10": ("sagan", 100_000, 128, 0, 0, ["discriminator", "generator"], None, None),
    "biggan_cifar10": ("biggan", 100_000, 80, 0.9999, 1000, ["discriminator", "generator"], None, None),
    "biggan_diffaug_cifar10": ("biggan", 200_000, 80, 0.9999, 1000, ["discriminator", "generator"],
                               ["color", "translation", "cutout"], None),
    "crgan_cifar10": ("biggan", 100_000, 80, 0.9999, 1000, ["discriminator", "generator"], None, 10.0),
}
# parameters of StudioGAN's nets for these configs, counted from PyTorch-StudioGAN@947b35e src/models/resnet.py
# (SNGAN: g/d_conv_dim 64, no attention; SAGAN: + attention G [2] D [1]) and src/models/big_resnet.py (conv dims 96,
# z 80, shared 128, attention G [2] D [1]), built with cBN + PD for 10 classes (SN adds buffers only)
SG_PARAMETERS = {"sngan_cifar10": (4_304_387, 1_055_105), "sagan_cifar10": (4_386_308, 1_075_586),
                 "biggan_cifar10": (9_416_196, 2_415_170)}


def composed(preset: str, *overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=[f"experiment=studiogan/{preset}", *overrides],
                       return_hydra_config=True)


def model_spectral_norm(cfg) -> list[str]:
    """The nets under SN: the model's own list plus reg=sn's D (and G with reg.sn.generator)."""
    nets = set(cfg.model.get("spectral_norm") or [])
    if "sn" in cfg.reg:
        nets |= {"discriminator", *(["generator"] if cfg.reg.sn.generator else [])}
    return sorted(nets)


def test_there_is_a_preset_per_studiogan_row_and_a_mini():
    from test_studiogan_stylegan import SG as SG_STYLEGAN  # the StyleGAN2 presets (tests/test_studiogan_stylegan.py)

    presets = {p.stem for p in (CONF_DIR / "experiment" / "studiogan").glob("*.yaml")}
    assert presets == {*SG, "mini", *SG_STYLEGAN, "mini_stylegan"}


@pytest.mark.parametrize("preset", list(SG))
def test_each_preset_mirrors_its_studiogan_config(preset):
    cfg = composed(preset)
    model, g_steps, z_dim, decay, start, sn, policy, cr = SG[preset]
    assert cfg.hydra.runtime.choices.model == model and cfg.data._target_.endswith("vision.CIFAR10")
    assert {k: cfg.optim[k] for k in SG_OPTIM} == SG_OPTIM
    assert cfg.optim.optimizer._target_ == "torch.optim.Adam" and cfg.optim.optimizer.eps == 1e-6
    assert (cfg.optim.g_steps, cfg.optim.z_dim) == (g_steps, z_dim)  # total_steps counts G updates
    assert cfg.loss._target_ == "ganbench.losses.Hinge"
    assert cfg.family._target_ == "ganbench.families.conditional.Conditional"
    assert (cfg.family.g_cond, cfg.family.d_cond, cfg.family.fake_labels) == ("cbn", "projection", "uniform")
    assert (cfg.ema.decay, cfg.ema.start) == (decay, start)
    assert model_spectral_norm(cfg) == sn
    assert cfg.model.generator.init == cfg.model.discriminator.init == "orthogonal"  # config.py g_init/d_init ortho
    assert cfg.samples.truncation is None
    assert cfg.augment.get("policy") == policy
    assert set(cfg.reg) == ({"cr"} if cr else {"sn"} if model == "resnet_cifar" else {"none"})
    if cr:  # BigGAN-CR.yaml cr_lambda 10; utils/cr.py: flip p 0.5, translation 1/8 with reflect padding
        assert (cfg.reg.cr.weight, cfg.reg.cr.flip_p, cfg.reg.cr.translation, cfg.reg.cr.padding) == \
            (cr, 0.5, 0.125, "reflect")
    m = cfg.metrics  # README: 50k fakes vs the 50k train images, TF Inception; worker.py: IS 1 split, k 5; every 2000
    assert (m.extractor, m.split, m.num_real, m.num_fake, m.is_splits, m.pr_k, m.every) == \
        ("inception", "train", 50_000, 50_000, 1, 5, 2000)
    assert cfg.name == f"studiogan_{preset}"


def test_the_attention_and_widths_are_studiogans():
    sagan, biggan = composed("sagan_cifar10").model, composed("biggan_cifar10").model
    # attn_g_loc [2] / attn_d_loc [1] are both after the block that outputs 16x16 at 32 px
    assert list(sagan.generator.attention) == list(sagan.discriminator.attention) == [16]
    assert (sagan.generator.width, sagan.discriminator.width, sagan.generator.bn_eps) == (64, 64, 1e-4)
    assert list(biggan.generator.attention) == list(biggan.discriminator.attention) == [16]
    assert (biggan.generator.ch, biggan.discriminator.ch, biggan.generator.shared_dim) == (96, 48, 128)
    assert biggan.generator.hier and biggan.generator.bn_eps == 1e-4


class CIFARShape:  # what build_networks needs of the datamodule
    shape, num_classes, name = (3, 32, 32), 10, "cifar10"


@pytest.mark.parametrize("preset", list(SG_PARAMETERS))
def test_the_nets_have_studiogans_parameter_counts(preset):
    cfg = composed(preset)
    _, net_cfg = network_inits(cfg)
    options = {k: v for k, v in OmegaConf.to_container(cfg.family, resolve=True).items() if not k.startswith("_")}
    G, D, extra = Conditional.build_networks(net_cfg, CIFARShape(), {}, options)
    count = (sum(p.numel() for p in G.parameters()), sum(p.numel() for p in D.parameters()))
    assert count == SG_PARAMETERS[preset] and extra["num_classes"] == 10


def test_published_numbers_load_with_their_source_for_every_preset():
    assert "studiogan" in published.available()
    pub = published.load("studiogan")
    assert "947b35e" in pub.source and pub.runs == 1
    assert {m.name: m.column for m in pub.metrics} == {"fid": "best.fid/inception_train50k",
                                                       "is": "best.is_mean/inception_train50k",
                                                       "intra_fid": "best.intra_fid/inception_train50k"}
    table = {r.label: (r.values["fid"][0], r.values["is"][0], r.where["cfg.name"]) for r in pub.rows
             if not r.label.startswith("StyleGAN2")}  # those: tests/test_studiogan_stylegan.py
    assert table == {"SNGAN": (9.01, 8.83, "studiogan_sngan_cifar10"),
                     "SAGAN": (10.35, 8.64, "studiogan_sagan_cifar10"),
                     "BigGAN": (4.16, 9.96, "studiogan_biggan_cifar10"),
                     "CRGAN (BigGAN + CR)": (3.16, 10.09, "studiogan_crgan_cifar10"),
                     "BigGAN + DiffAug": (3.35, 10.03, "studiogan_biggan_diffaug_cifar10")}
    assert {name for *_, name in table.values()} == {f"studiogan_{p}" for p in SG}


def run_row(preset: str, fid: float, *overrides: str) -> dict:
    """The run-table row of a completed run of ``preset`` whose best evaluation scored ``fid`` (IS fid / 2)."""
    cfg = composed(preset, *overrides)
    m = cfg.metrics
    record = {"status": "completed", "seed": 0,
              "choices": {k: v for k, v in cfg.hydra.runtime.choices.items() if not k.startswith("hydra")},
              "config": {k: v for k, v in OmegaConf.to_container(cfg).items() if k != "hydra"},
              "metrics": {"primary": "fid/inception_train50k",
                          "best": {"fid/inception_train50k": fid, "is_mean/inception_train50k": fid / 2},
                          "protocol": {"extractor": m.extractor, "reference_split": m.split, "num_real": m.num_real,
                                       "num_fake": m.num_fake, "is_splits": m.is_splits}}}
    return row(Path(preset), record, {"ckpt": 0, "log": 0})


def test_a_run_of_each_preset_lands_on_its_row_with_studiogans_protocol():
    runs = pd.DataFrame([run_row(p, 10.0 + i) for i, p in enumerate(SG)]
                        + [run_row("biggan_cifar10", 20.0, "optim.g_steps=5000")])
    table = published.compare_study(runs, published.load("studiogan")).set_index("label")
    assert table["runs"].tolist() == [1, 1, 2, 1, 1, 0, 0, 0]  # the StyleGAN2 rows: no run here
    assert table.loc["SNGAN", "fid_mean"] == 10.0 and table.loc["SNGAN", "fid_paper"] == 9.01
    assert table.loc["BigGAN + DiffAug", "is_mean"] == pytest.approx((10.0 + 3) / 2)
    assert math.isclose(table.loc["BigGAN", "fid_mean"], (12.0 + 20.0) / 2)
    differences = table["protocol_differences"].to_dict()
    assert differences["BigGAN"] == "optim.g_steps 100000/5000 (paper 100000)"  # the shortened run is named
    assert all(differences[label] == "" for label in differences if label != "BigGAN")


def test_the_mini_trains_two_steps_with_the_whole_recipe(run, tmp_path):
    code, out = run("experiment=studiogan/mini", "optim.g_steps=2", "metrics.every=2", "ema.start=1")
    assert code == 0, out[-3000:]
    rec = result(tmp_path / "run")
    assert rec["status"] == "completed" and rec["g_steps"] == 2
    assert {"fid/domain_test360", "is_mean/domain_test360", "intra_fid/domain_test360"} <= set(rec["metrics"]["final"])
    cr = rec["metrics"]["protocol"]["regularizers"]["cr"]
    assert (cr["weight"], cr["padding"], cr["max_shift_px"]) == (10.0, "reflect", [4, 4])
    assert rec["choices"]["model"] == "biggan"
    assert {k: rec["config"]["ema"][k] for k in ("decay", "start")} == {"decay": 0.99, "start": 1}
