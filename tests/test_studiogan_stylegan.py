"""StudioGAN's CIFAR-10 StyleGAN2 presets (conf/experiment/studiogan/stylegan2*_cifar10.yaml, mini_stylegan.yaml)
against PyTorch-StudioGAN@947b35e's configs, and their rows of its published table (ganbench/published/studiogan.yaml).

Every expected value below is read from StudioGAN's files, not from the presets: src/configs/CIFAR10/StyleGAN2.yaml,
StyleGAN2-ADA.yaml, StyleGAN2-DiffAug.yaml, src/config.py (defaults, define_optimizer), src/models/model.py L26-85
and src/models/stylegan2.py (the nets), README's benchmark table (docs/figures/StudioGAN_Benchmark_.png).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from conftest import read_csv, result
from ganbench.analyze import published
from ganbench.analyze.table import row
from ganbench.config import CONF_DIR
from ganbench.families.optimizers import NETS, lazy_ratio, make_optimizer, optimizer_factory

# StudioGAN key -> the ganbench key that holds it
SG_TO_GANBENCH = {
    "MODEL.z_dim": "optim.z_dim",
    "MODEL.w_dim": "model.generator.w_dim",
    "LOSS.r1_lambda": "reg.r1.gamma",                       # sum(grad^2) / 2 * r1_lambda = gamma / 2 * sum(grad^2)
    "OPTIMIZATION.g_lr": "optim.lr_g",
    "OPTIMIZATION.d_lr": "optim.lr_d",
    "OPTIMIZATION.beta1": "optim.beta1",
    "OPTIMIZATION.beta2": "optim.beta2",
    "OPTIMIZATION.d_updates_per_step": "optim.n_disc",
    "OPTIMIZATION.total_steps": "optim.g_steps",
    "OPTIMIZATION.batch_size": "optim.batch_size",          # config.py default (the YAMLs do not set it)
    "STYLEGAN.g_reg_interval": "reg.pl.interval",           # G's lazy optimizer correction (pl with weight 0)
    "STYLEGAN.d_reg_interval": "reg.r1.interval",
    "STYLEGAN.mapping_network": "model.generator.mapping_layers",
    "STYLEGAN.style_mixing_p": "model.generator.style_mixing",
    "STYLEGAN.g_ema_kimg": "ema.half_life_kimg",
    "STYLEGAN.g_ema_rampup": "ema.rampup",
    "STYLEGAN.pl_weight": "reg.pl.weight",
    "STYLEGAN.d_architecture": "model.discriminator.architecture",
    "STYLEGAN.d_epilogue_mbstd_group_size": "model.discriminator.mbstd_group_size",
}
# StyleGAN2.yaml (the same values in StyleGAN2-ADA.yaml and StyleGAN2-DiffAug.yaml but total_steps) + config.py
STYLEGAN2_YAML = {"MODEL.z_dim": 512, "MODEL.w_dim": 512, "LOSS.r1_lambda": 0.01, "OPTIMIZATION.g_lr": 0.0025,
                  "OPTIMIZATION.d_lr": 0.0025, "OPTIMIZATION.beta1": 0, "OPTIMIZATION.beta2": 0.99,
                  "OPTIMIZATION.d_updates_per_step": 1, "OPTIMIZATION.total_steps": 200_000,
                  "OPTIMIZATION.batch_size": 64, "STYLEGAN.g_reg_interval": 4, "STYLEGAN.d_reg_interval": 16,
                  "STYLEGAN.mapping_network": 2, "STYLEGAN.style_mixing_p": 0.0, "STYLEGAN.g_ema_kimg": 500,
                  "STYLEGAN.g_ema_rampup": 0.05, "STYLEGAN.pl_weight": 0, "STYLEGAN.d_architecture": "orig",
                  "STYLEGAN.d_epilogue_mbstd_group_size": 32}
# preset -> (its StudioGAN values, the augmentation: ganbench _target_ and its StudioGAN keys in ganbench terms)
SG = {
    "stylegan2_cifar10": (STYLEGAN2_YAML, "ganbench.augment.NoAugment", {}),
    "stylegan2_ada_cifar10": ({**STYLEGAN2_YAML, "OPTIMIZATION.total_steps": 1_000_000}, "ganbench.ada.ADA",
                              # AUG.ada_initial_augment_p 0, ada_target 0.6, ada_interval 4, ada_kimg 500
                              {"p": 0, "target": 0.6, "interval": 4, "kimg": 500, "adaptive": True}),
    "stylegan2_diffaug_cifar10": ({**STYLEGAN2_YAML, "OPTIMIZATION.total_steps": 1_000_000},
                                  "ganbench.augment.DiffAugment",
                                  # AUG.diffaug_type "diffaug": utils/diffaug.py's default policy
                                  {"policy": ["color", "translation", "cutout"]}),
}
# parameters of StudioGAN's nets for these configs: src/models/stylegan2.py built as src/models/model.py L26-85 does
# for CIFAR10 (channel_base 32768, channel_max 512, z/w 512, mapping 2, cAdaIN c_dim 10, D orig with SPD: cmap_dim
# 512 and an 8-layer label mapping, fp32), counted with PyTorch-StudioGAN@947b35e's own code
SG_PARAMETERS = (20_215_315, 23_089_664)

pytestmark = pytest.mark.usefixtures("one_cpu_thread")  # the CLI runs below are many times faster on a shared machine


def composed(preset: str, *overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=[f"experiment=studiogan/{preset}", *overrides],
                       return_hydra_config=True)


@pytest.fixture(scope="module")
def configs():
    return {preset: composed(preset) for preset in SG}


@pytest.mark.parametrize("preset", list(SG))
def test_each_preset_holds_its_studiogan_values(configs, preset):
    cfg = configs[preset]
    values, augment, augment_values = SG[preset]
    assert {SG_TO_GANBENCH[k]: OmegaConf.select(cfg, SG_TO_GANBENCH[k]) for k in values} == \
        {SG_TO_GANBENCH[k]: v for k, v in values.items()}
    choices = cfg.hydra.runtime.choices
    assert (choices.model, choices.loss, choices.data) == ("stylegan2", "ns", "cifar10")  # backbone, logistic
    assert cfg.family._target_ == "ganbench.families.conditional.Conditional"  # g_cond_mtd cAdaIN, d_cond_mtd SPD
    assert (cfg.family.g_cond, cfg.family.d_cond, cfg.family.fake_labels, cfg.family.d_calls) == \
        ("cbn", "projection", "uniform", "separate")
    assert cfg.model.conditional == "optional" and cfg.model.native_d  # SG2A's own label paths, not ganbench's cBN
    assert set(cfg.reg) == {"r1", "pl"} and cfg.optim.prior == "normal" and cfg.optim.optimizer.eps == 1e-8
    assert cfg.augment._target_ == augment
    assert {k: OmegaConf.to_container(cfg.augment)[k] for k in augment_values} == augment_values
    assert cfg.samples.truncation is None and cfg.model.generator.truncation_psi == 1.0
    m = cfg.metrics  # README: 50k fakes vs the 50k train images, TF Inception; worker.py: IS 1 split, k 5; every 2000
    assert (m.extractor, m.split, m.num_real, m.num_fake, m.is_splits, m.pr_k, m.every) == \
        ("inception", "train", 50_000, 50_000, 1, 5, 2000)
    assert cfg.name == f"studiogan_{preset}"


def test_the_three_presets_share_the_nets(configs):
    models = [OmegaConf.to_container(c.model) for c in configs.values()]
    assert models[0] == models[1] == models[2]


def test_the_lazy_corrections_are_studiogans(configs):
    """config.py define_optimizer L542-556: lr * k/(k+1), betas ** (k/(k+1)) for G (k 4) and D (k 16), eps 1e-8."""
    cfg = configs["stylegan2_cifar10"]
    regs = {name: instantiate(node) for name, node in cfg.reg.items()}
    make = optimizer_factory(OmegaConf.to_container(cfg.optim, resolve=True))
    for net, lr, k in zip(NETS, (cfg.optim.lr_g, cfg.optim.lr_d), (4, 16)):
        c = k / (k + 1)
        assert lazy_ratio(regs, net) == pytest.approx(c)
        group = make_optimizer(make, [torch.zeros(1, requires_grad=True)], lr, c).param_groups[0]
        assert group["lr"] == pytest.approx(0.0025 * c)
        assert group["betas"] == pytest.approx((0.0 ** c, 0.99 ** c)) and group["eps"] == 1e-8


class CIFARShape:  # what build_networks needs of the datamodule
    shape, num_classes, name = (3, 32, 32), 10, "cifar10"


def test_the_nets_have_studiogans_parameter_counts(configs):
    from ganbench.build import network_inits
    from ganbench.families.conditional import Conditional

    cfg = configs["stylegan2_cifar10"]
    _, net_cfg = network_inits(cfg)
    options = {k: v for k, v in OmegaConf.to_container(cfg.family, resolve=True).items() if not k.startswith("_")}
    with torch.device("meta"):  # shapes only: no 43M random draws
        G, D, extra = Conditional.build_networks(net_cfg, CIFARShape(), {}, options)
    assert (sum(p.numel() for p in G.parameters()), sum(p.numel() for p in D.parameters())) == SG_PARAMETERS
    assert extra["num_classes"] == 10


# README benchmark table (TensorFlow-InceptionV3, CIFAR10), the StyleGAN2 block: label -> (IS, FID, IFID, preset)
SG_TABLE = {"StyleGAN2": (10.17, 3.78, 14.04, "stylegan2_cifar10"),
            "StyleGAN2 + DiffAug": (10.55, 2.39, 11.56, "stylegan2_diffaug_cifar10"),
            "StyleGAN2 + ADA": (10.53, 2.31, 11.82, "stylegan2_ada_cifar10")}


def test_the_published_rows_load_with_their_configs():
    pub = published.load("studiogan")
    rows = {r.label: r for r in pub.rows if r.label in SG_TABLE}
    assert {label: (r.values["is"][0], r.values["fid"][0], r.values["intra_fid"][0], r.where["cfg.name"])
            for label, r in rows.items()} == \
        {label: (i, f, ifid, f"studiogan_{p}") for label, (i, f, ifid, p) in SG_TABLE.items()}
    # each row's protocol overrides the study's hinge-GAN optimizer keys with its own config's
    for label, r in rows.items():
        protocol = {**pub.protocol, **r.protocol}
        assert (protocol["cfg.optim.n_disc"], protocol["cfg.optim.lr_g"], protocol["cfg.optim.beta1"],
                protocol["cfg.optim.beta2"], protocol["loss"]) == (1, 0.0025, 0, 0.99, "ns")


def selecting_by_name(pub: published.Published) -> published.Published:
    """The study with ``loss`` checked as protocol instead of selected on (the change this file's rows need in
    studiogan.yaml: its ``select: loss: hinge`` keeps the logistic StyleGAN2 runs out); a no-op once made."""
    if "loss" not in pub.select:
        return pub
    select = {k: v for k, v in pub.select.items() if k != "loss"}
    return dataclasses.replace(pub, select=select, protocol={**pub.protocol, "loss": pub.select["loss"]})


def run_row(cfg, name: str, fid: float) -> dict:
    """The run-table row of a completed run of ``cfg`` whose best evaluation scored ``fid`` (IS fid / 2)."""
    m = cfg.metrics
    record = {"status": "completed", "seed": 0,
              "choices": {k: v for k, v in cfg.hydra.runtime.choices.items() if not k.startswith("hydra")},
              "config": {k: v for k, v in OmegaConf.to_container(cfg).items() if k != "hydra"},
              "metrics": {"primary": "fid/inception_train50k",
                          "best": {"fid/inception_train50k": fid, "is_mean/inception_train50k": fid / 2},
                          "protocol": {"extractor": m.extractor, "reference_split": m.split, "num_real": m.num_real,
                                       "num_fake": m.num_fake, "is_splits": m.is_splits}}}
    return row(Path(name), record, {"ckpt": 0, "log": 0})


def test_a_run_of_each_preset_lands_on_its_row_with_studiogans_protocol(configs):
    short = composed("stylegan2_cifar10", "optim.g_steps=5000")
    runs = pd.DataFrame([run_row(configs[p], p, 10.0 + i) for i, p in enumerate(SG)]
                        + [run_row(short, "short", 20.0)])
    table = published.compare_study(runs, selecting_by_name(published.load("studiogan"))).set_index("label")
    assert table.loc[list(SG_TABLE), "runs"].tolist() == [2, 1, 1]
    assert table.loc["StyleGAN2 + ADA", "fid_mean"] == 11.0 and table.loc["StyleGAN2 + ADA", "fid_paper"] == 2.31
    assert table.loc["StyleGAN2 + DiffAug", "is_mean"] == pytest.approx(12.0 / 2)
    differences = table["protocol_differences"].to_dict()
    assert differences["StyleGAN2"] == "optim.g_steps 200000/5000 (paper 200000)"  # the shortened run is named
    assert differences["StyleGAN2 + ADA"] == differences["StyleGAN2 + DiffAug"] == ""


# a few channels at 16 px: 2 G steps of each preset (R1 at D step 0, so the lazy term runs)
TINY = ["data=digits", "optim.batch_size=4", "optim.z_dim=8", "optim.g_steps=2", "metrics=none", "logger=[csv]",
        "samples.every=0", "samples.num=8", "checkpoint.every=0", "log_every=1", "model.generator.w_dim=8",
        "model.generator.channel_base=64", "model.generator.channel_max=8", "model.discriminator.channel_base=64",
        "model.discriminator.channel_max=8", "model.discriminator.mapping_layers=2"]


@pytest.mark.parametrize("preset", list(SG))
def test_each_preset_trains_two_tiny_steps(run, tmp_path, preset):
    code, out = run(f"experiment=studiogan/{preset}", *TINY)
    assert code == 0, out[-3000:]
    rec = result(tmp_path / "run")
    assert rec["status"] == "completed" and rec["g_steps"] == 2
    assert (rec["choices"]["model"], rec["choices"]["loss"], rec["choices"]["family"]) == \
        ("stylegan2", "ns", "conditional")
    columns = set(read_csv(tmp_path / "run" / "metrics.csv").columns)
    assert "reg/r1" in columns and "reg/pl" not in columns  # lazy R1 at D step 0; pl has weight 0: never computed
    assert ("ada/p" in columns) == (preset == "stylegan2_ada_cifar10")


def test_the_mini_trains_two_steps_with_the_whole_recipe(run, tmp_path):
    code, out = run("experiment=studiogan/mini_stylegan", "optim.g_steps=2", "metrics.every=2", "metrics.num_fake=200",
                    "metrics.kid_subsets=2", "family.class_kid_subsets=2")
    assert code == 0, out[-3000:]
    rec = result(tmp_path / "run")
    assert rec["status"] == "completed" and rec["g_steps"] == 2
    assert {"fid/domain_test360", "is_mean/domain_test360", "intra_fid/domain_test360"} <= set(rec["metrics"]["final"])
    assert (rec["choices"]["model"], rec["choices"]["augment"], rec["choices"]["data"]) == ("stylegan2", "ada", "digits")
    config = rec["config"]
    assert (config["reg"]["r1"]["gamma"], config["reg"]["r1"]["interval"], config["reg"]["pl"]["weight"]) == (0.01, 16, 0)
    assert (config["optim"]["lr_g"], config["optim"]["beta2"], config["optim"]["n_disc"]) == (0.0025, 0.99, 1)
