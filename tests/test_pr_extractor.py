"""Precision and recall in VGG-16 features (metrics.pr_extractor=vgg16), as torch-fidelity 0.4.0 computes them
(torch_fidelity/metric_prc.py, feature_extractor_vgg16.py), and the FID extractors of the Lucic et al. presets.

No download: a random VGG-16 state dict is written to a temporary file (random_vgg16_weights). To keep the tests
fast, torchvision's VGG-16 is built on the meta device without its random init and then filled by torch-fidelity's
load_state_dict (every tensor comes from the file, as unpatched), and torch-fidelity's 224x224 input size is
patched to 32 (the resize is torch-fidelity's own code either way).
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from hydra import compose, initialize_config_dir
from torch import nn

import ganbench.metrics.evaluator as evaluator
from ganbench.config import CONF_DIR
from ganbench.data.digits import Digits
from ganbench.errors import ConfigError
from ganbench.metrics.cache import file_sha256
from ganbench.metrics.evaluator import Evaluator, FeatureSuite
from ganbench.metrics.extractors import (EXTRACTORS, Extractor, VGG16Extractor, inception_input,
                                         random_vgg16_weights, to_uint8, vgg16_class)
from ganbench.metrics.precision_recall import precision_recall


def tf_prc(real: torch.Tensor, fake: torch.Tensor, k: int, save_cpu_ram: bool, batch: int = 7) -> tuple:
    from torch_fidelity.metric_prc import prc_features_to_metric

    out = prc_features_to_metric(fake, real, prc_neighborhood=k, prc_batch_size=batch, save_cpu_ram=save_cpu_ram,
                                 verbose=False)  # torch-fidelity's convention: features_1 generated, features_2 real
    return out["precision"], out["recall"]


@pytest.mark.parametrize("save_cpu_ram", [False, True])
def test_precision_recall_equals_torch_fidelitys(save_cpu_ram):
    gen = torch.Generator().manual_seed(0)
    real = torch.randn(40, 6, generator=gen)
    fake = 0.7 * torch.randn(30, 6, generator=gen) + 0.5
    ours = precision_recall(real, fake, k=3, chunk=9)
    assert ours == pytest.approx(tf_prc(real, fake, 3, save_cpu_ram), abs=1e-6)  # its float32 mean; 1 point = 1/30
    assert 0 < ours[0] < 1 and 0 < ours[1] < 1  # a case where both can differ


def test_precision_recall_by_hand():
    """k = 1 on a line: real {0, 1, 2} (radii 1, 1, 1), fake {0.5, 5} (radii 4.5, 4.5): 0.5 lies in the real
    manifold, 5 does not (precision 1/2); every real point is within 4.5 of 0.5 (recall 1)."""
    real, fake = torch.tensor([[0.0], [1.0], [2.0]]), torch.tensor([[0.5], [5.0]])
    assert precision_recall(real, fake, k=1) == (0.5, 1.0)
    assert tf_prc(real, fake, 1, False) == (0.5, 1.0)


@pytest.fixture(scope="module")
def vgg_weights(tmp_path_factory):
    return random_vgg16_weights(tmp_path_factory.mktemp("vgg") / "vgg16-random.pth", seed=0)


@pytest.fixture(scope="module")
def fast_vgg():
    vgg = torchvision.models.vgg

    def meta_vgg16(*args, **kwargs):
        with torch.device("meta"):
            net = vgg.VGG(vgg.make_layers(vgg.cfgs["D"]), init_weights=False)
        return net.to_empty(device="cpu")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torchvision.models, "vgg16", meta_vgg16)
        mp.setattr(vgg16_class(), "INPUT_IMAGE_SIZE", 32)
        yield


@pytest.fixture(scope="module")
def vgg(vgg_weights, fast_vgg):
    return VGG16Extractor(vgg_weights)


def test_vgg16_extractor_is_torch_fidelitys_fc2_relu_on_gray_repeated_to_rgb(vgg, vgg_weights):
    assert (vgg.name, vgg.resize, vgg.weights_sha256) == ("vgg16", "tf1-bilinear-32", file_sha256(vgg_weights))
    net = vgg.net  # torch-fidelity's own extractor, built from the file: its layers hold the file's tensors
    assert isinstance(net, vgg16_class()) and net.features_list == ["fc2_relu"]
    state = torch.load(vgg_weights)
    assert torch.equal(net.model.features[0].weight, state["features.0.weight"])
    assert torch.equal(net.model.classifier[3].weight, state["classifier.3.weight"])  # fc2
    assert len(net.model.classifier) == 4  # fc1, ReLU, Dropout, fc2: torch-fidelity cut the head
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    features = vgg(x)["features"]
    (expected,) = net(to_uint8(x).repeat(1, 3, 1, 1))  # torch-fidelity's forward on uint8 RGB
    assert features.shape == (3, 4096) and torch.equal(features, expected)
    assert features.std(0).mean() > 0  # the images' features differ
    assert torch.equal(expected, torch.relu(expected))  # fc2 after its ReLU


def stub_extractor(**_) -> Extractor:
    """A tiny frozen net in place of Inception for the FID side: (features (n, 5), logits (n, 3))."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        lin = nn.Linear(16, 8)

    class Net(nn.Module):
        def forward(self, x):
            out = lin(nn.functional.adaptive_avg_pool2d(x, 4).flatten(1))
            return out[:, :5], out[:, 5:]

    stub = Extractor(Net(), "stub-weights")
    stub.name = "stub"
    return stub


@pytest.fixture
def stub(monkeypatch):
    monkeypatch.setitem(EXTRACTORS, "stub", stub_extractor)
    monkeypatch.setitem(evaluator.SUITES, "stub", FeatureSuite)


def test_the_evaluator_scores_pr_in_vgg16_features_and_records_it(vgg, vgg_weights, stub, tmp_path):
    digits = Digits()
    common = dict(extractor="stub", num_real=8, num_fake=6, batch_size=8, kid_subset_size=4, kid_subsets=2,
                  is_splits=1, pr_k=3, device="cpu")
    ev = Evaluator(digits, pr_extractor="vgg16", vgg16_weights=str(vgg_weights), cache_dir=tmp_path / "a", **common)
    fakes = (digits.real_samples(6, "train") * 0.8).clamp(-1, 1)
    scores = ev.evaluate(lambda n: fakes[:n])
    assert sorted(scores) == sorted(["fid/stub_test8", "kid_mean/stub_test8", "kid_std/stub_test8",
                                     "is_mean/stub_test8", "is_std/stub_test8",
                                     "precision/vgg16_test8", "recall/vgg16_test8"])
    real = vgg(digits.real_samples(8, "test"))["features"]
    expected = tf_prc(real, vgg(fakes)["features"], 3, False)
    assert (scores["precision/vgg16_test8"], scores["recall/vgg16_test8"]) == pytest.approx(expected, abs=1e-6)
    protocol = ev.protocol()
    assert (protocol["extractor"], protocol["pr_extractor"], protocol["pr_k"]) == ("stub", "vgg16", 3)
    assert (protocol["pr_weights_sha256"], protocol["pr_resize"]) == (file_sha256(vgg_weights), "tf1-bilinear-32")
    # the default: precision/recall in the FID extractor's features, named after it (Inception's, the domain's)
    same = Evaluator(digits, cache_dir=tmp_path / "b", **common)
    scores = same.evaluate(lambda n: fakes[:n])
    assert "precision/stub_test8" in scores and same.protocol()["pr_extractor"] == "stub"
    assert "pr_weights_sha256" not in same.protocol()
    with pytest.raises(ConfigError, match="metrics.pr_extractor must be null .* inception, domain, vgg16; got 'vgg19'"):
        Evaluator(digits, pr_extractor="vgg19", cache_dir=tmp_path, **common)


def test_lucic_fid_is_inception_on_gray_repeated_to_rgb_and_the_mini_uses_the_domain_classifier():
    """compare_gan v1 eval_gan_lib.py (google/compare_gan@d6c5976): np.tile(images, [1, 1, 1, 3]) for 1-channel
    data, then TF's Inception; the mini preset keeps the digit classifier, and its scores say so."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for preset in ("mnist", "fashion_mnist"):
            cfg = compose("train", overrides=[f"experiment=lucic2018/{preset}"])
            assert (cfg.metrics.extractor, cfg.metrics.pr_extractor) == ("inception", None)
        mini = compose("train", overrides=["experiment=lucic2018/mini"]).metrics
    assert mini.extractor == "auto" and Digits.default_extractor == "domain"
    ev = Evaluator(Digits(), extractor=mini.extractor, num_real=mini.num_real, split=mini.split)
    assert ev.kind == "domain" and "fid/domain_test360" in ev.names and "precision/domain_test360" in ev.names
    gray = torch.tensor([[[[-1.0, 0.0], [0.5, 1.0]]]])
    rgb = inception_input(gray)
    assert rgb.shape == (1, 3, 2, 2) and rgb.dtype == torch.uint8
    assert torch.equal(rgb[0, 0], torch.tensor([[0, 128], [191, 255]], dtype=torch.uint8))
    assert torch.equal(rgb[0, 0], rgb[0, 1]) and torch.equal(rgb[0, 1], rgb[0, 2])
