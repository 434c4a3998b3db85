"""`python -m ganbench.evaluate`: score a checkpoint or a folder of images, write the record, explain bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import call_main

RUN = ["model=dcgan", "model.generator.width=16", "model.discriminator.width=16", "optim.g_steps=20",
       "optim.batch_size=32", "logger=[csv]", "metrics=none", "samples.every=0", "checkpoint.every=0"]


@pytest.fixture
def evaluate(cache_dir, monkeypatch, capfd, tmp_path):
    """evaluate(*overrides) -> (exit code, output): ganbench.evaluate.main in-process, as the console script."""
    import ganbench.evaluate

    def go(*overrides: str):
        monkeypatch.setenv("GANBENCH_CACHE", str(cache_dir))
        monkeypatch.setenv("TORCH_HOME", str(cache_dir / "torch"))
        monkeypatch.chdir(tmp_path)
        return call_main(ganbench.evaluate.main, "ganbench-evaluate", list(overrides), monkeypatch, capfd)

    return go


@pytest.fixture
def trained(run, tmp_path) -> Path:
    code, out = run(*RUN, run_dir=tmp_path / "run")
    assert code == 0, out
    return tmp_path / "run"


def digits_pngs(folder: Path, split: str = "test") -> int:
    """Write a digits split as PNG files; returns how many."""
    from torchvision.utils import save_image

    from ganbench.data.digits import Digits

    x = Digits().real_samples(10_000, split)
    folder.mkdir(parents=True)
    for i, image in enumerate(x):
        save_image(image, folder / f"{i:04d}.png", normalize=True, value_range=(-1, 1))
    return len(x)


def test_checkpoint_is_scored_reproducibly_and_recorded(evaluate, trained):
    ckpt = trained / "checkpoints" / "last.ckpt"
    code, out = evaluate(f"checkpoint={ckpt}", "metrics.num_fake=500")
    assert code == 0, out
    record = json.loads((trained / "evaluations" / "last-domain_test360.json").read_text())
    assert record["source"]["g_step"] == 20 and record["source"]["generator"] == "ema"
    metrics = record["metrics"]
    assert metrics["primary"] == "fid/domain_test360" and metrics["final_step"] == 20
    assert metrics["protocol"]["num_fake"] == 500 and metrics["protocol"]["extractor"] == "domain"
    assert metrics["protocol"]["domain_accuracy"] >= 0.97
    fid = metrics["final"]["fid/domain_test360"]
    assert fid > 0 and "fid/domain_test360" in out
    code, _ = evaluate(f"checkpoint={ckpt}", "metrics.num_fake=500", f"out={trained / 'again.json'}")
    again = json.loads((trained / "again.json").read_text())
    assert code == 0 and again["metrics"]["final"] == metrics["final"]  # seeded latents: the same numbers


def test_an_image_folder_of_the_reference_itself_scores_near_zero(evaluate, tmp_path):
    n = digits_pngs(tmp_path / "test_pngs")
    out_file = tmp_path / "self.json"
    code, out = evaluate(f"images={tmp_path / 'test_pngs'}", "data=digits", f"metrics.num_fake={n}",
                         f"out={out_file}")
    assert code == 0, out
    same = json.loads(out_file.read_text())["metrics"]["final"]
    assert same["fid/domain_test360"] < 0.05  # only the uint8 PNG rounding differs
    assert same["precision/domain_test360"] == 1.0 and same["recall/domain_test360"] == 1.0
    # the training split is a different sample of the same digits: small but clearly non-zero FID
    digits_pngs(tmp_path / "train_pngs", "train")
    code, out = evaluate(f"images={tmp_path / 'train_pngs'}", "data=digits", f"metrics.num_fake={n}",
                         f"out={tmp_path / 'train.json'}")
    other = json.loads((tmp_path / "train.json").read_text())["metrics"]["final"]
    assert code == 0 and same["fid/domain_test360"] < other["fid/domain_test360"] < 10


@pytest.mark.parametrize("case, words", [
    ("neither", ["exactly one of checkpoint=PATH", "images=DIR"]),
    ("both", ["exactly one of"]),
    ("missing_dir", ["images=", "no such directory"]),
    ("too_few", ["holds 3 images", "metrics.num_fake=1000"]),
    ("missing_ckpt", ["does not exist"]),
    ("corrupt_ckpt", ["unreadable", "truncated"]),
    ("bad_metrics", ["metrics=nope", "kurach"]),
])
def test_bad_input_is_one_line(evaluate, tmp_path, case, words):
    from PIL import Image

    few = tmp_path / "few"
    few.mkdir()
    for i in range(3):
        Image.new("L", (16, 16)).save(few / f"{i}.png")
    corrupt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    corrupt.parent.mkdir(parents=True)
    corrupt.write_bytes(b"PK\x03\x04 truncated")
    args = {"neither": [], "both": [f"checkpoint={corrupt}", f"images={few}"],
            "missing_dir": [f"images={tmp_path / 'nope'}"], "too_few": [f"images={few}"],
            "missing_ckpt": [f"checkpoint={tmp_path / 'nope.ckpt'}"], "corrupt_ckpt": [f"checkpoint={corrupt}"],
            "bad_metrics": ["metrics=nope"]}[case]
    assert_one_line_error(*evaluate(*args), words)


def test_a_checkpoint_moved_out_of_its_run_directory_is_explained(evaluate, trained, tmp_path):
    lonely = tmp_path / "elsewhere" / "x.ckpt"
    lonely.parent.mkdir()
    shutil.copy(trained / "checkpoints" / "last.ckpt", lonely)
    assert_one_line_error(*evaluate(f"checkpoint={lonely}"), ["no config.yaml", "copy the run's config.yaml"])


def assert_one_line_error(code: int, out: str, words: list[str]) -> None:
    lines = [line for line in out.splitlines() if line.strip()]
    assert code == 2, out
    assert len(lines) == 1 and lines[0].startswith("ganbench: error:"), out
    for word in words:
        assert word in lines[0], out
