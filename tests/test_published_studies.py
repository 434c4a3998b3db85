"""The published numbers of Kurach et al. 2019 and Lucic et al. 2018 (ganbench/published/{kurach2019,lucic2018}.yaml)
against the study presets (conf/experiment/{kurach2019,lucic2018}/): every row a preset can produce is reached by
a run of that preset, with no protocol difference beyond the ones named here.

The expected values are read from their sources, not from the files: Kurach: google/compare_gan@766edb2 (branch
v2) compare_gan/src/generate_tasks_lib.py, the "# Line N: FID score" comments of BestModelSNDCGan,
BestModelResnet19 and BestModelResnetCifar; Lucic: the secondary copies listed in shared/reference/studies.md.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.utils import get_class
from omegaconf import OmegaConf

from ganbench.analyze import published
from ganbench.analyze.table import row
from ganbench.config import CONF_DIR
from ganbench.metrics.evaluator import count_label

# (data, label) -> FID, from the code comments (the first line of each section; Line 14 = best run with a penalty)
KURACH = {
    ("CIFAR-10", "SNDCGAN: none"): 28.66,
    ("CIFAR-10", "SNDCGAN: best norm (SN)"): 25.27,
    ("CIFAR-10", "SNDCGAN: best norm+penalty (SN, no penalty)"): 25.27,
    ("CIFAR-10", "SNDCGAN: best with a penalty (SN+GP, lambda 10)"): 26.00,
    ("CelebA-HQ-128", "SNDCGAN: none"): 61.15,
    ("CelebA-HQ-128", "SNDCGAN: best norm (SN)"): 28.21,
    ("CelebA-HQ-128", "SNDCGAN: best norm+penalty (SN+GP, lambda 1)"): 24.67,
    ("LSUN-bedroom", "SNDCGAN: none"): 163.51,
    ("LSUN-bedroom", "SNDCGAN: best norm (SN)"): 53.59,
    ("LSUN-bedroom", "SNDCGAN: best norm+penalty (SN, no penalty)"): 53.59,
    ("CelebA-HQ-128", "ResNet19: none"): 34.29,
    ("CelebA-HQ-128", "ResNet19: best norm (LN)"): 30.02,
    ("CelebA-HQ-128", "ResNet19: best norm+penalty (SN+GP, lambda 1)"): 29.04,
    ("LSUN-bedroom", "ResNet19: none (LS)"): 102.74,
    ("LSUN-bedroom", "ResNet19: best norm (LS, SN)"): 41.60,
    ("LSUN-bedroom", "ResNet19: best norm+penalty (LN+GP, lambda 0.145)"): 40.36,
    ("CIFAR-10", "ResNet-CIFAR: none"): 28.12,
    ("CIFAR-10", "ResNet-CIFAR: best norm (SN)"): 22.91,
    ("CIFAR-10", "ResNet-CIFAR: best norm+penalty (SN+GP, lambda 1)"): 22.73,
}
# model -> MNIST, Fashion-MNIST, CIFAR-10, CelebA (studies.md; WGAN-GP/CelebA 30.0 in one copy, 30.3 in the other)
LUCIC = {"MM GAN": (9.8, 29.6, 72.7, 65.6), "NS GAN": (6.8, 26.5, 58.5, 55.0), "LSGAN": (7.8, 30.7, 87.1, 53.9),
         "WGAN": (6.7, 21.5, 55.2, 41.3), "WGAN-GP": (20.3, 24.5, 55.8, 30.0), "DRAGAN": (7.6, 27.7, 69.8, 42.3),
         "BEGAN": (13.1, 22.9, 71.4, 38.9)}
LUCIC_DATA = {"MNIST": "mnist", "Fashion-MNIST": "fashion_mnist", "CIFAR-10": "cifar10", "CelebA": "celeba"}
# the gan= presets (conf/gan/*.yaml) -> the loss x reg they set (the run table's loss/reg columns)
GAN = {"MM GAN": "mm", "NS GAN": "ns", "LSGAN": "ls", "WGAN": "wgan", "WGAN-GP": "wgan_gp", "DRAGAN": "dragan",
       "BEGAN": "began"}
# Kurach's reg labels (the run table joins the sorted names with '+') -> the override
REG = {"none": "reg=[none]", "sn": "reg=[sn]", "gp+sn": "reg=[sn,gp]", "gp+ln": "reg=[ln,gp]"}
# the one protocol difference a preset's own run shows: compare_gan's BestModelResnet19 runs train 200k D steps,
# the resnet19_lsun_bedroom preset 100k (the paper's text)
RESNET19_BUDGET = "optim.g_steps 100000 (paper 200000)"


@functools.lru_cache(maxsize=None)
def run_row(preset: str, *overrides: str, fid: float = 50.0, status: str = "completed") -> dict:
    """The run-table row of a run of ``experiment=preset`` (with ``overrides``) whose evaluation scored ``fid``,
    built from a result record as ganbench.train writes it (choices, resolved config, metric protocol)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={preset}", *overrides], return_hydra_config=True)
    choices = {k: v for k, v in cfg.hydra.runtime.choices.items() if not k.startswith("hydra")}
    plain = OmegaConf.to_container(cfg, resolve=False)
    plain.pop("hydra")
    config = OmegaConf.to_container(OmegaConf.create(plain), resolve=True)
    m = config["metrics"]
    kind = get_class(config["data"]["_target_"]).default_extractor if m["extractor"] == "auto" else m["extractor"]
    name = f"fid/{kind}_{m['split']}{count_label(m['num_real'])}"
    record = {"status": status, "seed": 0, "choices": choices, "config": config,
              "metrics": {"primary": name, "best": {name: fid}, "final": {name: fid},
                          "protocol": {"extractor": kind, "reference_split": m["split"], "num_real": m["num_real"],
                                       "num_fake": m["num_fake"]}}}
    return row(Path(preset), record, {"ckpt": 0, "log": 0})


def kurach_run(where: dict, *extra: str, **kw) -> dict:
    """A run of the kurach2019 preset of a row's cell: its model x data preset, loss, reg and n_disc."""
    n_disc = where["cfg.optim.n_disc"]
    return run_row(f"kurach2019/{where['model']}_{where['data']}", f"loss={where['loss']}", REG[where["reg"]],
                   f"optim=adam_0.5_0.999_n{n_disc}", *extra, **kw)


def lucic_run(label: str, data: str, *extra: str, **kw) -> dict:
    return run_row(f"lucic2018/{LUCIC_DATA[data]}", f"gan={GAN[label]}", *extra, **kw)


def by_cell(table: pd.DataFrame) -> pd.DataFrame:
    return table.set_index(["data", "label"])


# ---------------------------------------------------------------------------------------------- the files


def test_both_files_load_with_their_source_and_every_value():
    assert {"kurach2019", "lucic2018"} <= set(published.available())
    kurach, lucic = published.load("kurach2019"), published.load("lucic2018")
    assert "google/compare_gan@766edb2" in kurach.source and "generate_tasks_lib.py" in kurach.source
    assert "SECONDARY" in lucic.source and "Dai & Wipf" in lucic.source and "PA-GAN" in lucic.source
    assert (kurach.aggregate, lucic.aggregate) == ("min", "min")
    assert {(r.data, r.label): r.values["fid"] for r in kurach.rows} == {k: (v, None) for k, v in KURACH.items()}
    assert len(kurach.rows) == len(KURACH)  # no duplicate (data, label)
    assert {(r.data, r.label): r.values["fid"] for r in lucic.rows} == {
        (data, label): (values[i], None) for label, values in LUCIC.items() for i, data in enumerate(LUCIC_DATA)}
    # no preset trains CelebA-HQ: those rows are listed for reference only, with their 3k vs 3k protocol
    assert all((r.where is None) == (r.data == "CelebA-HQ-128") for r in kurach.rows)
    assert all(r.protocol["protocol.num_fake"] == 3000 for r in kurach.rows if r.where is None)
    assert all(r.where is not None for r in lucic.rows)


def test_the_two_cells_where_the_lucic_copies_disagree_name_both_values():
    text = (Path(published.__file__).parent.parent / "published" / "lucic2018.yaml").read_text()
    rows = {(r["label"], r["data"]): r for r in yaml.safe_load(text)["rows"]}
    wgan_gp, ls = rows[("WGAN-GP", "CelebA")], rows[("LSGAN", "CIFAR-10")]
    assert wgan_gp["values"]["fid"] == [30.0, None] and wgan_gp["other_copy"]["fid"] == [30.3, None]
    assert "30.3" in wgan_gp["disagreement"] and "47.5" in ls["disagreement"] and "0.9" in ls["disagreement"]
    assert sum("disagreement" in r for r in rows.values()) == 2


# ----------------------------------------------------------------------------------- the presets' runs


@pytest.fixture(scope="module")
def preset_runs() -> pd.DataFrame:
    """One run per row with a `where`: the preset of its cell (Kurach) or its gan= preset on its data (Lucic: the
    seven models on MNIST and NS GAN on the other three), each scored FID 50."""
    kurach = [kurach_run(r.where) for r in published.load("kurach2019").rows if r.where is not None]
    lucic = [lucic_run(label, "MNIST") for label in LUCIC] + [lucic_run("NS GAN", d) for d in list(LUCIC_DATA)[1:]]
    return pd.DataFrame(kurach + lucic)


def test_every_select_where_and_protocol_column_is_in_the_run_table(preset_runs):
    for study in ("kurach2019", "lucic2018"):
        pub = published.load(study)
        columns = {*pub.select, *pub.protocol, *(m.column for m in pub.metrics)}
        for r in pub.rows:
            columns |= {*(r.where or {}), *(r.protocol if r.where is not None else {})}
        assert columns - set(preset_runs.columns) == set(), study


def test_each_presets_run_lands_on_its_row_with_the_papers_protocol(preset_runs):
    table = by_cell(published.compare(preset_runs)["kurach2019"])
    for (data, label), rec in table.iterrows():
        if data == "CelebA-HQ-128":
            assert rec["runs"] == 0 and rec["fid_paper"] == KURACH[(data, label)]
            continue
        # the SN row and the norm+penalty row of SNDCGAN pick the same cell, so both see its run
        assert rec["runs"] == (2 if label.startswith("SNDCGAN: best norm") else 1), (data, label)
        assert (rec["fid_mean"], rec["fid_n"], rec["fid_paper"]) == (50.0, rec["runs"], KURACH[(data, label)])
        expected = RESNET19_BUDGET if label.startswith("ResNet19") else ""
        assert rec["protocol_differences"] == expected, (data, label)
    table = by_cell(published.compare(preset_runs)["lucic2018"])
    reached = table[table["runs"] > 0]
    assert set(reached.index) == {("MNIST", label) for label in LUCIC} | {(d, "NS GAN") for d in LUCIC_DATA}
    assert (reached["runs"] == 1).all() and (reached["fid_mean"] == 50.0).all()
    assert (reached["protocol_differences"] == "").all(), reached["protocol_differences"].to_dict()
    assert table.loc[("CelebA", "WGAN-GP"), "runs"] == 0 and table.loc[("CelebA", "WGAN-GP"), "fid_paper"] == 30.0


def test_other_runs_are_not_taken_for_either_study():
    default = run_row("quickstart")  # a DCGAN on the digits
    lucic = lucic_run("NS GAN", "MNIST")  # a Lucic preset's run, for contrast
    lucic_mini = run_row("lucic2018/mini")  # scored in the digit classifier's features
    kurach_mini = run_row("kurach2019/mini")  # the toy on the ring
    found = published.compare(pd.DataFrame([default, lucic_mini, kurach_mini]))
    assert "kurach2019" not in found and "lucic2018" not in found
    assert set(published.compare(pd.DataFrame([lucic]))) == {"lucic2018"}


# ----------------------------------------------------------------------------- a shortened run of one cell


def test_a_shortened_run_of_one_cell_lands_on_its_row_with_the_differences_listed():
    where = {"model": "sndcgan", "data": "cifar10", "loss": "ns", "reg": "sn", "cfg.optim.n_disc": 1}
    runs = pd.DataFrame([kurach_run(where, fid=30.0),
                         kurach_run(where, "optim.g_steps=1000", "metrics.num_fake=5000", fid=20.0),
                         kurach_run(where, "seed=1", fid=10.0, status="diverged"),
                         kurach_run({**where, "cfg.optim.n_disc": 5}, fid=5.0)])  # another n_disc: not this row
    table = by_cell(published.compare(runs)["kurach2019"])
    sn = table.loc[("CIFAR-10", "SNDCGAN: best norm (SN)")]
    assert (sn["runs"], sn["fid_n"], sn["fid_mean"], sn["fid_paper"]) == (3, 2, 20.0, 25.27)  # min of 30, 20
    assert math.isnan(sn["fid_se"]) and math.isnan(sn["fid_paper_se"])
    assert sn["protocol_differences"] == ("protocol.num_fake 10000/5000 (paper 10000); "
                                          "optim.g_steps 1000/200000 (paper 200000)")
    assert table.loc[("CIFAR-10", "SNDCGAN: none"), "runs"] == 0
    report = published.markdown("kurach2019", table.reset_index())
    assert ("| CIFAR-10 | SNDCGAN: best norm (SN) | 3 | 20.00 ± - (n=2) | 25.27 ± - | protocol.num_fake 10000/5000 "
            "(paper 10000); optim.g_steps 1000/200000 (paper 200000) |") in report
    assert "LSUN-bedroom" not in report and "compare those numbers as a shortened protocol" in report

    lucic = pd.DataFrame([lucic_run("WGAN-GP", "CelebA", "metrics.num_fake=1000", "data.resolution=32", fid=40.0)])
    gp = by_cell(published.compare(lucic)["lucic2018"]).loc[("CelebA", "WGAN-GP")]
    assert (gp["runs"], gp["fid_mean"], gp["fid_paper"]) == (1, 40.0, 30.0)
    assert gp["protocol_differences"] == "protocol.num_fake 1000 (paper 10000); data.resolution 32 (paper 64)"
