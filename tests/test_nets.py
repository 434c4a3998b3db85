"""The architectures in ganbench.nets against their contract (ganbench/nets/__init__.py) and their papers' layouts."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ganbench.errors import ConfigError
from ganbench.nets.layers import FeatureBatchNorm, batch_norm, identity_norm, layer_norm

CONF_DIR = Path(__file__).resolve().parents[1] / "conf" / "model"
Z_DIM = 16
BATCH = 4
IMAGE_SHAPES = [(1, 8, 8), (1, 16, 16), (1, 28, 28), (1, 32, 32), (3, 32, 32), (3, 64, 64), (3, 128, 128)]
NOT_28 = [s for s in IMAGE_SHAPES if s[1] != 28]
SUPPORTED = {
    "mlp": [(2,)],
    "dcgan": NOT_28,
    "infogan": IMAGE_SHAPES,
    "sndcgan": NOT_28,
    "resnet_cifar": NOT_28,
    "resnet19": [(1, 32, 32), (3, 32, 32), (3, 64, 64), (3, 128, 128)],
}
# Shapes outside the grid above that must also be refused.
EXTRA_UNSUPPORTED = {
    "mlp": [(2, 2)],
    "dcgan": [(3, 32, 16), (3, 48, 48)],
    "infogan": [(1, 4, 4), (1, 30, 30)],
    "sndcgan": [(3, 20, 20)],
    "resnet_cifar": [(3, 4, 4), (3, 48, 48)],
    "resnet19": [(3, 256, 256)],
}
SMALL = {"mlp": {"hidden": 16, "layers": 2}}  # every other architecture: width=8
NORMS = {"identity": identity_norm, "batch": batch_norm, "layer": layer_norm}

CASES = [(arch, shape) for arch, shapes in SUPPORTED.items() for shape in shapes]
BAD_CASES = [(arch, shape) for arch in SUPPORTED
             for shape in [s for s in IMAGE_SHAPES + [(2,)] if s not in SUPPORTED[arch]] + EXTRA_UNSUPPORTED[arch]]


def case_id(case) -> str:
    arch, shape = case
    return f"{arch}-{'x'.join(map(str, shape))}"


def module(arch: str):
    return importlib.import_module(f"ganbench.nets.{arch}")


def small_generator(arch: str, shape: tuple) -> nn.Module:
    return module(arch).Generator(Z_DIM, shape, **SMALL.get(arch, {"width": 8}))


def small_discriminator(arch: str, shape: tuple, norm=identity_norm) -> nn.Module:
    return module(arch).Discriminator(shape, norm=norm, **SMALL.get(arch, {"width": 8}))


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_generator_shape_and_range(case):
    arch, shape = case
    torch.manual_seed(0)
    g = small_generator(arch, shape)
    for train in (True, False):
        g.train(train)
        with torch.no_grad():
            x = g(torch.randn(BATCH, Z_DIM))
        assert x.shape == (BATCH, *shape)
        assert torch.isfinite(x).all()
        if len(shape) == 3:  # images are tanh outputs; toy vectors are unbounded
            assert x.abs().max() <= 1
            assert x.std() > 0


@pytest.mark.parametrize("norm", list(NORMS), ids=list(NORMS))
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_discriminator_logits_and_input_gradient(case, norm):
    arch, shape = case
    torch.manual_seed(0)
    d = small_discriminator(arch, shape, NORMS[norm])
    x = torch.randn(BATCH, *shape, requires_grad=True)
    logits = d(x)
    assert logits.shape == (BATCH,)
    # A gradient penalty differentiates through the input gradient: check both orders of backward work.
    (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    assert grad.shape == x.shape and grad.abs().sum() > 0
    grad.pow(2).sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in d.parameters())
    d.eval()
    with torch.no_grad():
        assert d(x).shape == (BATCH,)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_discriminator_with_spectral_norm(case):
    arch, shape = case
    torch.manual_seed(0)
    d = small_discriminator(arch, shape)
    wrapped = [spectral_norm(m) for m in d.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert wrapped
    x = torch.randn(BATCH, *shape, requires_grad=True)
    for _ in range(2):  # power iterations update between calls
        logits = d(x)
        assert logits.shape == (BATCH,) and torch.isfinite(logits).all()
    logits.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


# Number of norm layers D gets: one after each normalised hidden layer, none on the first layer or the output.
NORM_COUNTS = {
    ("mlp", (2,)): 1,  # layers=2: the second hidden linear
    ("dcgan", (3, 64, 64)): 3,  # convs 2-4
    ("infogan", (1, 28, 28)): 2,  # conv 2 and FC 1024
    ("sndcgan", (3, 32, 32)): 6,  # convs 2-7
    ("resnet_cifar", (3, 32, 32)): 6,  # 2 in each of blocks 2-4
    ("resnet19", (3, 128, 128)): 10,  # 2 in each of blocks 2-6
}


@pytest.mark.parametrize("case", list(NORM_COUNTS), ids=case_id)
def test_norm_placement(case):
    arch, shape = case
    for norm, kind in ((batch_norm, FeatureBatchNorm), (layer_norm, nn.GroupNorm)):
        d = small_discriminator(*case, norm=norm)
        assert sum(isinstance(m, kind) for m in d.modules()) == NORM_COUNTS[case]
    assert not any(isinstance(m, (FeatureBatchNorm, nn.GroupNorm)) for m in small_discriminator(*case).modules())


def test_infogan_batch_norm_switch():
    """Lucic et al.'s "batch norm in D" hyperparameter: the same two norm layers as reg=bn; never both."""
    from ganbench.nets import infogan

    d = infogan.Discriminator((1, 28, 28), width=8, batch_norm=True)
    assert sum(isinstance(m, FeatureBatchNorm) for m in d.modules()) == NORM_COUNTS[("infogan", (1, 28, 28))]
    with pytest.raises(ConfigError, match="batch_norm=true and a normalization in reg"):
        infogan.Discriminator((1, 28, 28), width=8, batch_norm=True, norm=layer_norm)


def test_infogan_nets_use_compare_gan_v1s_batch_norm_and_leaky_relu_in_g():
    """compare_gan v1@d6c5976 abstract_gan.py: G's activations are lrelu(0.2); every batch norm (G's, and D's when
    batch_norm=True) is tf.contrib batch_norm(decay=0.999, epsilon=0.001) = torch momentum 0.001, eps 1e-3."""
    from ganbench.nets import infogan

    nets = [infogan.Generator(62, (1, 28, 28), width=8), infogan.Discriminator((1, 28, 28), width=8, batch_norm=True)]
    bns = [m for net in nets for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert len(bns) == 5 and all(m.eps == 1e-3 and m.momentum == 0.001 for m in bns)
    g_acts = [type(m) for m in nets[0].modules() if isinstance(m, (nn.ReLU, nn.LeakyReLU))]
    assert g_acts == [nn.LeakyReLU] * 3 and all(m.negative_slope == 0.2 for m in nets[0].modules()
                                                  if isinstance(m, nn.LeakyReLU))
    relu = infogan.Generator(62, (1, 28, 28), width=8, activation="relu")
    assert sum(isinstance(m, nn.ReLU) for m in relu.modules()) == 3
    with pytest.raises(ConfigError, match="activation must be one of lrelu, relu"):
        infogan.Generator(62, (1, 28, 28), activation="elu")


@pytest.mark.parametrize("case", BAD_CASES, ids=case_id)
def test_unsupported_shape_raises_config_error(case):
    arch, shape = case
    for build in (lambda: small_generator(arch, shape), lambda: small_discriminator(arch, shape)):
        with pytest.raises(ConfigError, match=f"model={arch} "):
            build()


def out_channels(net: nn.Module, kinds=(nn.Conv2d, nn.ConvTranspose2d, nn.Linear)) -> list[int]:
    """Output sizes of the layers of ``kinds``, in order (main path of the plain CNNs)."""
    return [m.out_features if isinstance(m, nn.Linear) else m.out_channels for m in net.modules()
            if isinstance(m, kinds)]


def block_channels(net: nn.Module) -> list[int]:
    """Output channels of each residual block (its last residual conv)."""
    return [out_channels(b.residual)[-1] for b in net.blocks if hasattr(b, "residual")]


def test_paper_layouts_at_default_width():
    """Default widths reproduce the channel counts the papers list (construction only)."""
    from ganbench.nets import dcgan, infogan, resnet19, resnet_cifar, sndcgan

    assert out_channels(dcgan.Generator(100, (3, 64, 64))) == [512 * 16, 256, 128, 64, 3]
    assert out_channels(dcgan.Discriminator((3, 64, 64))) == [64, 128, 256, 512, 1]
    assert out_channels(infogan.Generator(62, (1, 28, 28))) == [1024, 128 * 7 * 7, 64, 1]
    assert out_channels(infogan.Discriminator((1, 28, 28))) == [64, 128, 1024, 1]
    assert out_channels(sndcgan.Generator(128, (3, 32, 32))) == [512 * 16, 256, 128, 64, 3]
    assert out_channels(sndcgan.Discriminator((3, 32, 32))) == [64, 128, 128, 256, 256, 512, 512, 1]
    assert out_channels(sndcgan.Discriminator((3, 32, 32), layout="miyato_table3")) == [64, 64, 128, 128, 256, 256,
                                                                                      512, 1]
    g, d = resnet_cifar.Generator(128, (3, 32, 32)), resnet_cifar.Discriminator((3, 32, 32))
    assert out_channels(g.seed) == [256 * 16] and block_channels(g) == [256] * 3
    assert block_channels(d) == [128] * 4
    g, d = resnet19.Generator(128, (3, 128, 128)), resnet19.Discriminator((3, 128, 128))
    assert out_channels(g.seed) == [512 * 16] and block_channels(g) == [512, 256, 256, 128, 64]
    assert block_channels(d) == [64, 128, 256, 256, 512, 512]


# The data shape each model config is instantiated on (its paper's setting).
HOME_SHAPE = {"mlp": (2,), "pacgan_toy": (2,), "resnet19": (3, 128, 128), "infogan": (1, 28, 28)}
MODULE = {"pacgan_toy": "maxout", "srgan": "srresnet"}  # the config's name -> its module in ganbench.nets, where they differ


TRANSLATION_MODULES = {"pix2pix": ("ganbench.nets.unet", "ganbench.nets.patchgan"),
                       "cyclegan": ("ganbench.nets.resnet_translator", "ganbench.nets.patchgan")}


@pytest.mark.parametrize("path", sorted(CONF_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_model_config_instantiates(path):
    assert path.read_text().startswith("# "), "each model config starts with a comment naming its paper"
    cfg = OmegaConf.load(path)
    assert cfg.name == path.stem
    shape = HOME_SHAPE.get(cfg.name, (3, 32, 32))
    cfg.generator.pop("init", None), cfg.discriminator.pop("init", None)  # build() applies it, not the nets
    if cfg.get("super_resolution"):  # G upscales an LR image by the data's scale; D scores HR images
        g = instantiate(cfg.generator, data_shape=shape, scale=4)
        d = instantiate(cfg.discriminator, data_shape=shape, norm=layer_norm)
        assert type(g).__module__ == type(d).__module__ == "ganbench.nets.srresnet"
    elif cfg.get("translation"):  # image-to-image: G maps an image (1 channel here) to the data, D sees both
        g = instantiate(cfg.generator, data_shape=shape, input_channels=1)
        d = instantiate(cfg.discriminator, data_shape=(shape[0] + 1, *shape[1:]), norm=layer_norm)
        assert (type(g).__module__, type(d).__module__) == TRANSLATION_MODULES[cfg.name]
    else:
        extra = {"num_classes": 10} if cfg.get("conditional") == "native" else {}  # BigGAN's G takes labels
        g = instantiate(cfg.generator, z_dim=128, data_shape=shape, **extra)
        d = instantiate(cfg.discriminator, data_shape=shape, norm=layer_norm)
        assert type(g).__module__ == type(d).__module__ == f"ganbench.nets.{MODULE.get(cfg.name, cfg.name)}"
    assert sum(p.numel() for p in g.parameters()) > 0 and sum(p.numel() for p in d.parameters()) > 0
    assert any(isinstance(m, nn.GroupNorm) for m in d.modules())


def test_every_architecture_has_a_config():
    assert {p.stem for p in CONF_DIR.glob("*.yaml")} >= set(SUPPORTED)


@pytest.mark.parametrize("scheme", ["normal_0.02", "truncated_normal_0.02"])
def test_init_normal_002_gives_kernels_of_std_002_and_zero_biases(scheme):
    """model.*.init=normal_0.02 (compare_gan's random_normal_initializer(stddev=0.02)): every kernel's sample std
    within 5% of 0.02 (the truncated variant: the std of N(0, 0.02) cut at +-2 std, 0.88 * 0.02), biases zero."""
    from ganbench.nets import sndcgan
    from ganbench.nets.init import apply_init

    torch.manual_seed(0)
    d = apply_init(sndcgan.Discriminator((3, 32, 32)), scheme)
    target = 0.02 if scheme == "normal_0.02" else 0.02 * 0.8796
    layers = [m for m in d.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(layers) == 8
    for m in layers:
        if m.weight.numel() >= 1000:  # a sample std is only meaningful over many weights
            assert abs(m.weight.std().item() - target) < 0.05 * target, (m, m.weight.std().item())
        assert torch.count_nonzero(m.bias) == 0
        if scheme != "normal_0.02":
            assert m.weight.abs().max().item() <= 0.04


def test_init_is_applied_by_build_and_recorded_in_the_config():
    from hydra import compose, initialize_config_dir

    from ganbench.build import build
    from ganbench.config import CONF_DIR as ROOT_CONF

    with initialize_config_dir(config_dir=str(ROOT_CONF), version_base="1.3"):
        cfg = compose("train", overrides=["model=dcgan", "model.generator.init=normal_0.02", "metrics=none",
                                          "model.discriminator.init=orthogonal"])
    module, _, _ = build(cfg)
    g_conv = next(m for m in module.G.modules() if isinstance(m, nn.ConvTranspose2d))
    d_lin = module.D.head
    assert abs(g_conv.weight.std().item() - 0.02) < 0.002 and torch.count_nonzero(g_conv.bias) == 0
    w = d_lin.weight  # (1, F): orthogonal rows have unit norm
    assert w.norm().item() == pytest.approx(1.0, abs=1e-5)
    assert cfg.model.generator.init == "normal_0.02"  # the composed (recorded) config keeps it


def test_sndcgan_matches_compare_gans_parameter_table():
    """Every layer of compare_gan's SNDCGAN at 32x32x3, z 128 (google/compare_gan v2@766edb2
    compare_gan/src/gans/dcgan_architecture.py sn_generator / sn_discriminator), written out from that file."""
    from ganbench.nets import sndcgan

    # (kind, in, out, kernel) per layer, then batch norm sizes; TF's batch_norm(scale=True) has gamma and beta
    d_ref = [("conv", 3, 64, 3), ("conv", 64, 128, 4), ("conv", 128, 128, 3), ("conv", 128, 256, 4),
             ("conv", 256, 256, 3), ("conv", 256, 512, 4), ("conv", 512, 512, 3), ("linear", 512 * 4 * 4, 1, 1)]
    g_ref = [("linear", 128, 4 * 4 * 512, 1), ("bn", 4 * 4 * 512), ("deconv", 512, 256, 4), ("bn", 256),
             ("deconv", 256, 128, 4), ("bn", 128), ("deconv", 128, 64, 4), ("bn", 64),
             ("conv", 64, 3, 3)]  # compare_gan's last layer: a 3x3 stride-1 deconv2d, the same weights as a conv

    def count(layer):
        if layer[0] == "bn":
            return 2 * layer[1]
        _, c_in, c_out, k = layer
        return c_in * c_out * k * k + c_out

    def shapes(net):
        out = []
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                kind = "deconv" if isinstance(m, nn.ConvTranspose2d) else "conv"
                out.append((kind, m.in_channels, m.out_channels, m.kernel_size[0]))
            elif isinstance(m, nn.Linear):
                out.append(("linear", m.in_features, m.out_features, 1))
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                out.append(("bn", m.num_features))
        return out

    g, d = sndcgan.Generator(128, (3, 32, 32)), sndcgan.Discriminator((3, 32, 32))
    assert shapes(d) == d_ref and shapes(g) == g_ref
    assert sum(p.numel() for p in d.parameters()) == sum(map(count, d_ref)) == 5_860_865
    assert sum(p.numel() for p in g.parameters()) == sum(map(count, g_ref)) == 3_828_739
    assert all(m.eps == 2e-5 for m in g.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))


def _layer_table(net: nn.Module) -> list[tuple]:
    """(kind, in, out, kernel) of every conv/linear and (bn, features) of every batch norm."""
    rows = []
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            rows.append(("conv", m.in_channels, m.out_channels, m.kernel_size[0]))
        elif isinstance(m, nn.Linear):
            rows.append(("linear", m.in_features, m.out_features, 1))
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            rows.append(("bn", m.num_features))
    return rows


def _params(rows) -> int:
    return sum(2 * r[1] if r[0] == "bn" else r[1] * r[2] * r[3] * r[3] + r[2] for r in rows)


def _compare_gan_resnet(g_channels, up, d_channels, colors=3, z=128):
    """compare_gan v2@766edb2 resnet_architecture.py: a G block is shortcut conv3x3 + bn1 + conv1 + bn2 + conv2
    (resnet_block with is_gen_block), a D block shortcut conv3x3 + conv1 + conv2 (no norm); fc_noise, final_norm,
    final_conv in G; disc_final_fc in D."""
    g = [("linear", z, g_channels[0] * 16, 1)]
    for c_in, c_out in zip(g_channels[:-1], g_channels[1:]):
        g += [("conv", c_in, c_out, 3), ("bn", c_in), ("conv", c_in, c_out, 3), ("bn", c_out), ("conv", c_out, c_out, 3)]
    g += [("bn", g_channels[-1]), ("conv", g_channels[-1], colors, 3)]
    d, c_in = [], colors
    for c_out in d_channels:
        d += [("conv", c_in, c_out, 3), ("conv", c_in, c_out, 3), ("conv", c_out, c_out, 3)]
        c_in = c_out
    d += [("linear", d_channels[-1], 1, 1)]
    return g, d


@pytest.mark.parametrize("arch, side, g_ref, d_ref, totals", [
    # resnet_cifar_generator/discriminator: 3 up blocks of 256; 4 D blocks of 128 (down, down, none, none)
    ("resnet_cifar", 32, [256] * 4, None, (5_849_603, 1_483_137)),
    # resnet5: G magic (8,8),(8,4),(4,4),(4,2),(2,1) x 64; D B0 -> 64 then (1,2),(2,4),(4,4),(4,8),(8,8) x 64
    ("resnet19", 128, [512, 512, 256, 256, 128, 64], [64, 128, 256, 256, 512, 512], None),
])
def test_compare_gan_resnets_match_the_reference_layer_table(arch, side, g_ref, d_ref, totals):
    import importlib
    from collections import Counter

    module = importlib.import_module(f"ganbench.nets.{arch}")
    d_channels = d_ref or [128] * 4
    g_rows, d_rows = _compare_gan_resnet(g_ref, None, d_channels)
    g = module.Generator(128, (3, side, side), block="compare_gan")
    d = module.Discriminator((3, side, side), block="compare_gan", pool="mean")
    assert Counter(_layer_table(g)) == Counter(g_rows) and Counter(_layer_table(d)) == Counter(d_rows)
    assert sum(p.numel() for p in g.parameters()) == _params(g_rows)
    assert sum(p.numel() for p in d.parameters()) == _params(d_rows)
    if totals:
        assert (_params(g_rows), _params(d_rows)) == totals
    x = torch.randn(2, 3, side, side)
    assert g(torch.randn(2, 128)).shape == (2, 3, side, side) and d(x).shape == (2,)


def test_unpool_puts_each_value_top_left_of_its_cell():
    """compare_gan's unpool (concat with zeros along each spatial axis, then reshape)."""
    from ganbench.nets.resblocks import Unpool

    x = torch.arange(4.0).reshape(1, 1, 2, 2)
    expected = torch.tensor([[0, 0, 1, 0], [0, 0, 0, 0], [2, 0, 3, 0], [0, 0, 0, 0.]]).reshape(1, 1, 4, 4)
    assert torch.equal(Unpool()(x), expected)


def test_infogan_nets_match_compare_gan_v1s_layer_table():
    """Every variable of compare_gan v1's nets at 28x28x1, z 64 (google/compare_gan v1@d6c5976
    compare_gan/src/gans/abstract_gan.py generator / discriminator with discriminator_batchnorm, ops.py: linear,
    conv2d and deconv2d with biases, batch_norm with scale=True: gamma and beta), written out from that file; TF's
    (h, w, in, out) kernels as torch's shapes."""
    g_ref = [(1024, 64), (1024,), (1024,), (1024,),  # g_fc1 (matrix, bias), g_bn1 (gamma, beta)
             (6272, 1024), (6272,), (6272,), (6272,),  # g_fc2 128 * 7 * 7, g_bn2
             (128, 64, 4, 4), (64,), (64,), (64,),  # g_dc3 deconv 4x4 s2 to 64, g_bn3
             (64, 1, 4, 4), (1,)]  # g_dc4 deconv 4x4 s2 to c_dim (then sigmoid)
    d_ref = [(64, 1, 4, 4), (64,),  # d_conv1 4x4 s2
             (128, 64, 4, 4), (128,), (128,), (128,),  # d_conv2 4x4 s2, d_bn2
             (1024, 6272), (1024,), (1024,), (1024,),  # d_fc3, d_bn3
             (1, 1024), (1,)]  # d_fc4
    import math

    from ganbench.nets import infogan

    g = infogan.Generator(64, (1, 28, 28))
    d = infogan.Discriminator((1, 28, 28), batch_norm=True)
    assert [tuple(p.shape) for p in g.parameters()] == g_ref
    assert [tuple(p.shape) for p in d.parameters()] == d_ref
    count = lambda shapes: sum(math.prod(s) for s in shapes)  # noqa: E731
    assert sum(p.numel() for p in g.parameters()) == count(g_ref) == 6_642_241
    assert sum(p.numel() for p in d.parameters()) == count(d_ref) == 6_559_169
