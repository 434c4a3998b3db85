"""family=srgan: SRResNet and VGG-style D shapes, the sr_patches task and LR = bicubic(HR), PSNR/SSIM with border
crop and Y against hand computations, G's loss by hand, pretraining that leaves D alone, the perceptual loss and its
missing weights, training through the CLI, and one-line errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import read_csv, result
from ganbench.augment import NoAugment
from ganbench.data.sr import SRPatches, crop_corners, sample_photos, split_regions
from ganbench.errors import ConfigError
from ganbench.families import srgan
from ganbench.families.srgan import SRGAN
from ganbench.losses import NonSaturating
from ganbench.nets.srresnet import Discriminator, Generator, num_stages
from ganbench.perceptual import PerceptualLoss

pytestmark = pytest.mark.usefixtures("one_cpu_thread")

OPTIM = {"n_disc": 1, "z_dim": 4, "prior": "normal", "batch_size": 4, "lr_g": 1e-3, "lr_d": 1e-3, "beta1": 0.9,
         "beta2": 0.999}


@pytest.fixture(scope="module")
def patches():
    return SRPatches(resolution=16, scale=2, train_crops=16, test_crops=6, batch_size=4)


def tiny_module(dm, **kw) -> SRGAN:
    test = dm.pairs("test")
    G = Generator(dm.shape, scale=dm.scale, channels=4, num_blocks=1)
    D = Discriminator(dm.shape, channels=4, hidden=8)
    return SRGAN(G, D, fixed_lr=test.tensors[0][:3], fixed_hr=test.tensors[1][:3], test_pairs=test, scale=dm.scale,
                 loss=NonSaturating(), regularizers={}, augment=NoAugment(), optim=OPTIM, ema_decay=0.0,
                 num_fixed=4, log_every=1000, d_calls="separate", **kw)


# -- nets ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [2, 4, 8])
def test_generator_pixel_shuffles_to_the_hr_shape(scale):
    g = Generator((3, 32, 32), scale=scale, channels=4, num_blocks=2)
    assert sum(isinstance(m, nn.PixelShuffle) for m in g.modules()) == int(math.log2(scale))
    x = torch.rand(2, 3, 32 // scale, 32 // scale) * 2 - 1
    assert g(x).shape == (2, 3, 32, 32)
    with torch.no_grad():  # every conv silenced: the output is the bilinear global residual
        for m in g.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.zero_(), m.bias.zero_()
    up = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
    torch.testing.assert_close(g(x), up)
    g.eval()
    assert g(x * 5).abs().max() <= 1  # clamped to [-1, 1] in eval mode
    bn = Generator((1, 16, 16), scale=4, channels=4, num_blocks=1, block="srresnet")
    assert bn(torch.randn(2, 1, 4, 4)).shape == (2, 1, 16, 16)
    assert any(isinstance(m, nn.BatchNorm2d) for m in bn.modules())
    with pytest.raises(ConfigError, match="data.scale"):
        Generator((3, 32, 32), scale=3)


def test_discriminator_follows_the_contract_and_the_reference_at_128_px():
    assert [num_stages(s) for s in (8, 32, 96, 128)] == [1, 3, 4, 5]  # 128 px: 5 stages to 4x4 (ModifiedVGG)
    d = Discriminator((3, 32, 32), channels=4, hidden=8)
    x = torch.randn(5, 3, 32, 32)
    assert d(x).shape == (5,) and d.features(x).shape == (5, d.feature_dim) == (5, 8)
    assert isinstance(d.head, nn.Linear) and d.head.in_features == 8
    torch.testing.assert_close(d(x), d.head(d.features(x)).flatten())
    ref = Discriminator((3, 128, 128), channels=64)
    assert ref.fc.in_features == 512 * 4 * 4 and ref.fc.out_features == 100  # linear1 of ModifiedVGG
    convs = [m for m in ref.body if isinstance(m, nn.Conv2d)]
    assert len(convs) == 10 and convs[0].bias is not None and all(c.bias is None for c in convs[1:])


# -- data ----------------------------------------------------------------------------------------------------------
def test_sr_patches_are_deterministic_disjoint_crops_and_lr_is_bicubic(patches):
    other = SRPatches(resolution=16, scale=2, train_crops=16, test_crops=6)
    photos = [img for _, img in sample_photos()]
    for split, n in (("train", 16), ("test", 6)):
        lr, hr = patches.pairs(split).tensors
        assert lr.shape == (n, 3, 8, 8) and hr.shape == (n, 3, 16, 16)
        assert torch.equal(hr, other.pairs(split).tensors[1])
        hand = F.interpolate(hr, size=(8, 8), mode="bicubic", antialias=True, align_corners=False).clamp(-1, 1)
        torch.testing.assert_close(lr, hand, rtol=0, atol=0)
        gen = torch.Generator().manual_seed({"train": 0, "test": 1}[split])
        regions = split_regions(photos, split, 0.2)
        for i, (p, top, left) in enumerate(crop_corners(n, photos, regions, 16, gen, 0.1)):
            crop = photos[p][:, top:top + 16, left:left + 16].float() / 127.5 - 1
            assert torch.equal(hr[i], crop) and p == i % 2
            assert (left >= 512) == (split == "test") and left + 16 <= (640 if split == "test" else 512)
    assert patches.dataset("test").tensors[1].tolist() == [0, 1, 0, 1, 0, 1]  # labels: the photo
    assert patches.input_shape == (3, 8, 8) and patches.scale == 2
    assert not torch.equal(SRPatches(resolution=16, scale=2, train_crops=16, crop_seed=1).pairs("train").tensors[1],
                           patches.pairs("train").tensors[1])
    with pytest.raises(ConfigError, match="data.scale must be one of 2, 4, 8"):
        SRPatches(resolution=30, scale=3)
    with pytest.raises(ConfigError, match="divisible by data.scale=4"):
        SRPatches(resolution=18, scale=4)


# -- metrics -------------------------------------------------------------------------------------------------------
def test_psnr_crops_the_border_and_converts_to_y_by_hand():
    torch.manual_seed(0)
    x, y = torch.rand(2, 3, 12, 12) * 2 - 1, torch.rand(2, 3, 12, 12) * 2 - 1
    u, v = (x.double().numpy() + 1) / 2, (y.double().numpy() + 1) / 2
    w = np.array([65.481, 128.553, 24.966])
    luma = lambda a: (16 + np.einsum("nchw,c->nhw", a, w)) / 255  # noqa: E731
    mse = ((luma(u) - luma(v))[:, 3:-3, 3:-3] ** 2).reshape(2, -1).mean(1)
    np.testing.assert_allclose(srgan.sr_psnr(x, y, "y", 3).numpy(), 10 * np.log10(1 / mse), rtol=1e-5)
    mse_rgb = ((u - v)[..., 2:-2, 2:-2] ** 2).reshape(2, -1).mean(1)
    np.testing.assert_allclose(srgan.sr_psnr(x, y, "rgb", 2).numpy(), 10 * np.log10(1 / mse_rgb), rtol=1e-5)
    edged = x.clone()
    edged[..., :3, :] = 1.0  # only the cropped border changes
    torch.testing.assert_close(srgan.sr_psnr(edged, y, "y", 3), srgan.sr_psnr(x, y, "y", 3))
    assert srgan.sr_psnr(edged, y, "y", 0)[0] != srgan.sr_psnr(x, y, "y", 0)[0]
    from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

    hand_ssim = tm_ssim(torch.from_numpy(luma(u)[:, None, 3:-3, 3:-3]).float(),
                        torch.from_numpy(luma(v)[:, None, 3:-3, 3:-3]).float(), data_range=1.0, kernel_size=5,
                        reduction="none")
    torch.testing.assert_close(srgan.sr_ssim(x, y, "y", 3), hand_ssim)  # 6 px after the crop: a 5 px window
    torch.testing.assert_close(srgan.sr_ssim(x, x, "y", 3), torch.ones(2))


def test_sr_metrics_score_sr_and_the_bicubic_baseline(patches, monkeypatch):
    from types import SimpleNamespace

    import ganbench.perceptual as perceptual

    monkeypatch.setattr(perceptual, "lpips_available", lambda: (False, "no weights here"))
    ev = SimpleNamespace(datamodule=patches, split="test", batch_size=4, device=torch.device("cpu"),
                         setup=lambda: None)
    metrics = srgan.SRMetrics("y")
    lr, hr = patches.pairs("test").tensors
    perfect = metrics(ev, lambda a: hr[:len(a)] if len(a) == 4 else hr[4:], 2)
    assert perfect["psnr_y/test6"] == 100.0 and perfect["ssim_y/test6"] == pytest.approx(1.0)
    bic = F.interpolate(lr, scale_factor=2, mode="bicubic", align_corners=False).clamp(-1, 1)
    assert perfect["psnr_y_bicubic/test6"] == pytest.approx(float(srgan.sr_psnr(bic, hr, "y", 2).mean()), rel=1e-6)
    assert "lpips/test6" not in perfect and "no weights here" in metrics.protocol()["lpips"]
    assert metrics.protocol()["border_crop"] == 2


# -- the family: losses, pretraining, samples ------------------------------------------------------------------------
def test_g_loss_is_content_plus_5e3_adversarial_and_d_loss_is_unweighted(patches):
    torch.manual_seed(0)
    module = tiny_module(patches)
    lr, hr = next(iter(patches.train_dataloader()))
    real, real_cond = module.real_inputs([lr, hr])
    assert torch.equal(real, hr)
    inputs = module.g_inputs(len(real), real_cond)
    fake = module.generate(inputs)
    fake_out = module.discriminate(fake, module.fake_condition(inputs))
    terms = {"loss/g": module.g_adversarial(fake_out, None), **module.g_terms(fake, fake_out, inputs)}
    d_fake = module.D(fake)
    hand = 5e-3 * F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake)) \
        + ((fake + 1) / 2 - (hr + 1) / 2).abs().mean()
    assert set(terms) == {"loss/g", "loss/content"}
    torch.testing.assert_close(sum(terms.values()), hand)
    mse = tiny_module(patches, content="mse", content_weight=2.0)
    torch.testing.assert_close(mse.g_terms(fake, fake_out, inputs)["loss/content"],
                               2.0 * (((fake + 1) - (hr + 1)) / 2).square().mean())
    _, _, d_terms = module.d_loss_terms(real, real_cond, fake.detach(), module.fake_condition(inputs), inputs)
    d_real = module.D(hr)
    torch.testing.assert_close(d_terms["loss/d"], F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                               + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))


def drive(module, batches):
    """Run training_step on ``batches`` without a trainer (optimizers and backward stubbed in)."""
    opts = module.configure_optimizers()
    module.optimizers = lambda use_pl_optimizer=True: opts
    module.manual_backward = lambda loss: loss.backward()
    module.log_scalars = lambda values: None
    for i, batch in enumerate(batches):
        module.training_step(batch, i)
    return opts


def test_pretrain_steps_train_g_on_the_content_alone_and_leave_d_untouched(patches):
    torch.manual_seed(0)
    module = tiny_module(patches, pretrain_steps=2)
    batches = [b for b, _ in zip(patches.train_dataloader(), range(3))]
    d0 = {k: v.clone() for k, v in module.D.state_dict().items()}
    g0 = {k: v.clone() for k, v in module.G.state_dict().items()}
    opt_g, opt_d = drive(module, batches[:2])
    assert module.g_step == 2 and module.d_step == 2 and module.did_g_step
    assert all(torch.equal(v, module.D.state_dict()[k]) for k, v in d0.items())  # BN statistics too
    assert len(opt_d.state) == 0 and len(opt_g.state) > 0
    assert any(not torch.equal(v, module.G.state_dict()[k]) for k, v in g0.items())
    module.training_step(batches[2], 2)  # pretraining over: a D step and a G step
    assert module.g_step == 3 and module.d_step == 3 and len(opt_d.state) > 0
    assert any(not torch.equal(v, module.D.state_dict()[k]) for k, v in d0.items())


def test_sample_upscales_the_first_test_lrs_and_the_grid_is_bicubic_sr_hr(patches):
    module = tiny_module(patches)
    lr, hr = patches.pairs("test").tensors
    module.G.eval()
    with torch.no_grad():
        expected = module.G(torch.cat([lr, lr[:2]]))
    torch.testing.assert_close(module.sample(8), expected)  # 6 test pairs, cycled
    grid = module.sample_grid_images()
    assert grid.shape == (9, 3, 16, 16) and module.grid_columns == 3
    torch.testing.assert_close(grid[:3], F.interpolate(lr[:3], scale_factor=2, mode="bicubic").clamp(-1, 1))
    assert torch.equal(grid[6:], hr[:3])


# -- the perceptual loss -------------------------------------------------------------------------------------------
def test_perceptual_loss_without_weights_is_one_config_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(ConfigError) as err:
        PerceptualLoss(1.0)
    message = str(err.value)
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in message and "family.perceptual_weights=PATH" in message
    assert "vgg19-dcbb9e9d.pth" in message and "\n" not in message
    with pytest.raises(ConfigError, match="is not a file"):
        PerceptualLoss(1.0, str(tmp_path / "nowhere.pth"))


def test_perceptual_loss_from_a_weights_file_by_hand(tmp_path):
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(0)
    ref = make_layers(cfgs["E"])[:4]  # conv1_1, ReLU, conv1_2, ReLU
    path = tmp_path / "vgg19.pth"
    torch.save({f"features.{k}": v for k, v in ref.state_dict().items()}, path)
    loss = PerceptualLoss(2.0, str(path), layer=3)
    sr, hr = torch.rand(2, 1, 8, 8) * 2 - 1, torch.rand(2, 1, 8, 8) * 2 - 1
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3,
                                                                                                                1, 1)
    phi = lambda x: ref(((x.expand(-1, 3, -1, -1) + 1) / 2 - mean) / std)  # noqa: E731
    torch.testing.assert_close(loss(sr, hr), 2.0 * (phi(sr) - phi(hr)).abs().mean())
    with pytest.raises(ConfigError, match="not a torchvision vgg19 state dict"):
        PerceptualLoss(1.0, str(path), layer=34)


def test_channel_mismatch_and_unpaired_data_are_refused(patches):
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"optim": {"batch_size": 4}, "model": {
        "name": "srgan", "super_resolution": True,
        "generator": {"_target_": "ganbench.nets.srresnet.Generator", "channels": 4, "num_blocks": 1},
        "discriminator": {"_target_": "ganbench.nets.srresnet.Discriminator", "channels": 4}}})
    G, D, extra = SRGAN.build_networks(cfg, patches, {}, {})
    assert G(extra["fixed_lr"]).shape == extra["fixed_hr"].shape and extra["scale"] == 2
    odd = SRPatches(resolution=16, scale=2)
    odd.input_shape = (1, 8, 8)
    with pytest.raises(ConfigError, match="same channels"):
        SRGAN.build_networks(cfg, odd, {}, {})


# -- through the CLI -------------------------------------------------------------------------------------------------
TINY = ["family=srgan", "data.resolution=16", "data.scale=2", "data.train_crops=16", "data.test_crops=8",
        "model.generator.channels=4", "model.generator.num_blocks=1", "model.discriminator.channels=4",
        "model.discriminator.hidden=8", "optim.batch_size=4", "optim.g_steps=3", "logger=[csv]", "samples.every=0",
        "checkpoint.every=0", "log_every=1"]
RUNS = {
    "ns_metrics": ["loss=ns", "metrics=quick", "metrics.num_fake=8", "metrics.kid_subsets=2", "metrics.is_splits=2"],
    "ls_r1": ["loss=ls", "reg=r1", "metrics=none"],
    "pretrain2": ["family.pretrain_steps=2", "metrics=none"],
}


@pytest.mark.parametrize("overrides", RUNS.values(), ids=RUNS.keys())
def test_trains_three_steps(run, tmp_path, overrides):
    code, out = run(*TINY, *overrides)
    assert code == 0, out[-3000:]
    rec = result(tmp_path / "run")
    assert rec["status"] == "completed" and rec["g_steps"] == 3
    rows = read_csv(tmp_path / "run" / "metrics.csv").dropna(subset=["loss/content"])
    assert len(rows) == 3 and np.isfinite(rows["loss/content"]).all()
    d_rows = rows.dropna(subset=["loss/d"]) if "loss/d" in rows else rows.iloc[:0]
    assert len(d_rows) == (1 if "family.pretrain_steps=2" in overrides else 3)
    if "reg=r1" in overrides:
        assert np.isfinite(d_rows["reg/r1"]).all()
    assert len(rec["files"]["samples"]) == 1
    if "metrics=quick" in overrides:
        final = rec["metrics"]["final"]
        assert {"psnr_y/test8", "ssim_y/test8", "psnr_y_bicubic/test8", "fid/domain_test8"} <= set(final)
        assert all(math.isfinite(v) for v in final.values())
        assert rec["metrics"]["protocol"]["family"]["sr_metrics"]["border_crop"] == 2


def test_family_srgan_alone_runs_on_its_embedded_task(run, tmp_path):
    """`python -m ganbench.train family=srgan`: the family picks data=sr_patches and model=srgan itself."""
    code, out = run("family=srgan", "debug=fast", "optim.g_steps=2", "model.generator.channels=4",
                    "model.generator.num_blocks=1", "model.discriminator.channels=4", "optim.batch_size=4")
    assert code == 0, out[-3000:]
    rec = result(tmp_path / "run")
    assert rec["config"]["data"]["_target_"] == "ganbench.data.sr.SRPatches" and rec["status"] == "completed"


BAD = {
    "scale3": (["data.scale=3"], ["data.scale must be one of 2, 4, 8", "got 3"]),
    "indivisible": (["data.resolution=18"], ["data.resolution", "divisible by data.scale=4", "18"]),
    "perceptual": (["family.perceptual_weight=1.0"], ["VGG19", "hub", "family.perceptual_weights=PATH"]),
    "pack": (["family.pack=2"], ["family.pack=2", "family=srgan", "family.pack=1"]),
    "infogan": (["+family.codes.continuous=2"], ["family=srgan", "codes"]),
    "unpaired": (["data=digits"], ["family=srgan", "super-resolution pairs", "data=digits", "data=sr_patches"]),
    "paired_not_sr": (["data=edges2digits"], ["super-resolution pairs", "data=edges2digits"]),
}


@pytest.mark.parametrize("overrides, words", BAD.values(), ids=BAD.keys())
def test_bad_input_is_one_line(run, overrides, words):
    code, out = run("family=srgan", "logger=[csv]", "metrics=none", "optim.batch_size=4", "optim.g_steps=1",
                    "model.generator.channels=4", "model.generator.num_blocks=1", "model.discriminator.channels=4",
                    *overrides)
    assert code == 2, out[-2000:]
    lines = [ln for ln in out.splitlines() if ln.startswith("ganbench: error:")]
    assert len(lines) == 1 and "Traceback" not in out, out[-2000:]
    for word in words:
        assert word in lines[0], (word, lines[0])


def test_sr_wraps_another_image_data_config():
    from ganbench.data.digits import Digits
    from ganbench.data.sr import SuperResolution

    dm = SuperResolution(base="digits", resolution=16, scale=2, batch_size=4)
    assert dm.shape == (1, 16, 16) and dm.input_shape == (1, 8, 8) and dm.num_classes == 10
    lr, hr = dm.pairs("test").tensors
    digits = Digits(resolution=16).dataset("test").tensors
    assert torch.equal(hr, digits[0]) and torch.equal(dm.dataset("test").tensors[1], digits[1])
    torch.testing.assert_close(lr, F.interpolate(hr, size=(8, 8), mode="bicubic", antialias=True).clamp(-1, 1))
    with pytest.raises(ConfigError, match="data.root is required for data=sr with data.base=folder"):
        SuperResolution(base="folder", resolution=16)
    with pytest.raises(ConfigError, match="data.base must name an image data config"):
        SuperResolution(base="sr_patches", resolution=16)
    with pytest.raises(ConfigError, match="unpaired image data"):
        SuperResolution(base="edges2digits", resolution=16)
