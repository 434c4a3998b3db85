"""`python -m ganbench.evaluate` on image-to-image checkpoints: the family's primary metric first, test folders in
each family's layout, one line for a folder of the wrong layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from conftest import call_main

# test_dir is not in conf/evaluate.yaml yet: ++ adds it (and still works once it is there)
TEST_DIR = "++test_dir="
P2P = ["family=pix2pix", "data=edges2digits", "data.resolution=16", "model.generator.ngf=4",
       "model.discriminator.ndf=4", "optim.batch_size=4", "optim.g_steps=1", "logger=[csv]", "metrics=none",
       "samples.every=0", "checkpoint.every=0", "family.metric_pairs=12"]
SR = ["family=srgan", "data.resolution=16", "data.scale=2", "data.train_crops=8", "data.test_crops=6",
      "model.generator.channels=4", "model.generator.num_blocks=1", "model.discriminator.channels=4",
      "model.discriminator.hidden=8", "optim.batch_size=4", "optim.g_steps=1", "logger=[csv]", "metrics=none",
      "samples.every=0", "checkpoint.every=0"]


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


def save(x: torch.Tensor, path: Path) -> None:
    """One image in [-1, 1] (C, H, W) as an 8-bit PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    array = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(path)


def one_line_error(code: int, out: str, words: list[str]) -> None:
    lines = [ln for ln in out.splitlines() if ln.startswith("ganbench: error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in out, out[-2000:]
    for word in words:
        assert word in lines[0], (word, lines[0])


def test_pix2pix_checkpoint_scores_psnr_first_and_a_side_by_side_folder_alike(run, evaluate, tmp_path):
    code, out = run(*P2P, run_dir=tmp_path / "run")
    assert code == 0, out[-3000:]
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    from ganbench.data.paired import Edges2Digits
    from ganbench.evaluate import checkpoint_sampler
    from ganbench.metrics.paired import l1, psnr

    # the first 12 test pairs written as A|B images; by hand: the checkpoint's G on the tensors themselves
    a, b = Edges2Digits(resolution=16).pairs("test").tensors[:2]
    a, b = a[:12], b[:12]
    for i in range(12):
        save(torch.cat([a[i], b[i]], -1), tmp_path / "pairs" / f"{i:02d}.png")
    _, module, _, _ = checkpoint_sampler(ckpt, None)
    fake = module.sample(inputs={"a": a})
    code, out = evaluate(f"checkpoint={ckpt}", "metrics=none", f"{TEST_DIR}{tmp_path / 'pairs'}")
    assert code == 0, out[-3000:]
    record = json.loads((tmp_path / "run" / "evaluations" / "last-pairs-test12.json").read_text())
    metrics = record["metrics"]
    assert metrics["primary"] == "psnr/test12" and metrics["higher_is_better"] is True
    assert list(metrics["final"])[0] == "psnr/test12" and "ssim/test12" in metrics["final"]
    assert record["source"]["test_dir"] == str(tmp_path / "pairs") and record["data"] == "paired_test"
    # the same scores up to the 8-bit rounding of the PNGs
    assert metrics["final"]["psnr/test12"] == pytest.approx(float(psnr(fake, b).mean()), abs=0.05)
    assert metrics["final"]["l1/test12"] == pytest.approx(float(l1(fake, b).mean()), abs=0.01)
    # a folder in another layout: one line naming the layout pix2pix needs
    for i in range(2):
        save(b[i], tmp_path / "unpaired" / "testA" / f"{i}.png")
        save(b[i], tmp_path / "square" / f"{i}.png")
    one_line_error(*evaluate(f"checkpoint={ckpt}", "metrics=none", f"{TEST_DIR}{tmp_path / 'unpaired'}"),
                   ["CycleGAN's unpaired layout", "family=pix2pix", "side-by-side"])
    one_line_error(*evaluate(f"checkpoint={ckpt}", "metrics=none", f"{TEST_DIR}{tmp_path / 'square'}"),
                   ["16x16", "not two squares side by side"])
    one_line_error(*evaluate(f"checkpoint={ckpt}", f"{TEST_DIR}{tmp_path / 'pairs'}", "data=digits"),
                   ["test_dir=", "not both"])


def test_srgan_checkpoint_on_an_image_folder_scores_bicubic_by_hand(run, evaluate, tmp_path):
    from ganbench.data.sr import SRPatches, bicubic_down, bicubic_up
    from ganbench.families.srgan import sr_psnr

    code, out = run(*SR, run_dir=tmp_path / "run")
    assert code == 0, out[-3000:]
    hr = SRPatches(resolution=16, scale=2, train_crops=2, test_crops=5).pairs("test").tensors[1]
    for i, x in enumerate(hr):
        save(x, tmp_path / "photos" / f"{i}.png")
    code, out = evaluate(f"checkpoint={tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}", "metrics=none",
                         f"{TEST_DIR}{tmp_path / 'photos'}")
    assert code == 0, out[-3000:]
    metrics = json.loads((tmp_path / "run" / "evaluations" / "last-photos-test5.json").read_text())["metrics"]
    assert metrics["primary"] == "psnr_y/test5" and list(metrics["final"])[0] == "psnr_y/test5"
    png = torch.stack([torch.from_numpy(__import__("numpy").array(Image.open(tmp_path / "photos" / f"{i}.png")))
                       .permute(2, 0, 1).float() / 127.5 - 1 for i in range(5)])
    bicubic = sr_psnr(bicubic_up(bicubic_down(png, 2), 2), png, "y", 2).mean()
    assert metrics["final"]["psnr_y_bicubic/test5"] == pytest.approx(float(bicubic), abs=1e-3)
    # no AlexNet weights in TORCH_HOME: LPIPS is skipped with one log line and a note in the protocol
    assert metrics["protocol"]["family"]["sr_metrics"]["lpips"].startswith("skipped")
    assert sum("LPIPS skipped" in line for line in out.splitlines()) == 1 and "lpips/test5" not in metrics["final"]
    one_line_error(*evaluate(f"checkpoint={tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}", "metrics=none",
                             f"{TEST_DIR}{tmp_path / 'nowhere'}"), ["test_dir=", "no such directory"])


def test_cyclegan_test_folder_reads_testa_testb_without_train_folders(tmp_path):
    from omegaconf import OmegaConf

    from ganbench.build import instantiate_or_explain
    from ganbench.errors import ConfigError
    from ganbench.evaluate_translation import unpaired_data

    run_data = OmegaConf.create({"range": "symmetric"})
    for d, n in (("A", 3), ("B", 2)):
        for i in range(n):
            save(torch.full((3, 12, 12), 0.5 * i), tmp_path / f"test{d}" / f"{i}.png")
    dm = instantiate_or_explain(OmegaConf.create(unpaired_data(tmp_path, run_data, (3, 8, 8), (3, 8, 8))),
                                batch_size=1, seed=0)
    assert len(dm.domain("A", "test")) == 3 and len(dm.domain("B", "test")) == 2
    assert dm.domain("A", "test")[1][0].shape == (3, 8, 8)  # cropped and resized to the run's resolution
    (tmp_path / "testB" / "0.png").unlink()
    (tmp_path / "testB" / "1.png").unlink()
    (tmp_path / "testB").rmdir()
    with pytest.raises(ConfigError, match="has no testB"):
        unpaired_data(tmp_path, run_data, (3, 8, 8), (3, 8, 8))


def test_test_dir_needs_a_checkpoint(evaluate, tmp_path):
    one_line_error(*evaluate(f"{TEST_DIR}{tmp_path}", f"images={tmp_path}"), ["test_dir=", "checkpoint=PATH"])


# -- bad inputs of the image-to-image families not tested in their own files ------------------------------------------
@pytest.mark.parametrize("family", ["pix2pix", "cyclegan"])
def test_infogan_options_are_one_line(run, family):
    """InfoGAN's codes act on G's z; these Gs take an image (family=srgan's case: tests/test_srgan.py)."""
    code, out = run(f"family={family}", "data.resolution=8", "model.discriminator.n_layers=1", "logger=[csv]",
                    "metrics=none", "optim.batch_size=2", "optim.g_steps=1", "+family.codes.continuous=2")
    one_line_error(code, out, ["family.codes", f"family={family}", "no z", "family=infogan"])
