"""family=conditional: the conditioning formulas on fixed numbers, every net and head's shapes, the labelled data,
the class metrics, training with every model, one-line errors, a learning test with an untrained control, and exact
resume after SIGKILL."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from PIL import Image
from torch import nn

from conftest import assert_same_last_checkpoint, result
from ganbench.build import build
from ganbench.config import CONF_DIR
from ganbench.errors import ConfigError
from ganbench.families.conditional import ac_d_terms, ac_g_terms, grid_inputs, sample_labels
from ganbench.metrics.conditional import ClassMetrics, ModuleClassifier, class_frequencies, nearest_mode
from ganbench.nets import dcgan, mlp, resnet19, resnet_cifar, sndcgan
from ganbench.nets.conditioning import (ACGANDiscriminator, CBNGenerator, ConcatDiscriminator, ConcatGenerator,
                                        ConditionalBatchNorm, ProjectionDiscriminator, projection_logit)

pytestmark = pytest.mark.usefixtures("one_cpu_thread")

TOY = ["model=mlp", "data=ring8", "data.n_train=2000", "data.n_test=400", "model.generator.hidden=16",
       "model.discriminator.hidden=16"]
RING = ["family=conditional", *TOY]  # what build() needs
QUIET = ["logger=[csv]", "samples.every=0", "checkpoint.every=0"]


def composed(*overrides):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=["metrics=none", *overrides])


# -- formulas on fixed numbers -------------------------------------------------------------------------------------
def test_projection_logit_is_the_head_plus_the_class_embedding_inner_product():
    h = torch.tensor([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]])
    head = nn.Linear(3, 1)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[0.1, 0.2, 0.3]]))
        head.bias.fill_(-1.0)
    embed = torch.tensor([[1.0, 0.0, -1.0], [2.0, 2.0, 2.0]])  # rows embed(y) of the two samples
    # sample 0: 0.1 + 0.4 + 0.9 - 1 = 0.4, plus <(1, 0, -1), (1, 2, 3)> = -2 -> -1.6
    # sample 1: 0.05 - 0.2 + 0.6 - 1 = -0.55, plus <(2, 2, 2), (0.5, -1, 2)> = 3 -> 2.45
    assert torch.allclose(projection_logit(h, head, embed), torch.tensor([-1.6, 2.45]))
    # the wrapper reads embed(y) from its table: row y of the (F, K) Linear weight
    inner = mlp.Discriminator((2,), hidden=3, layers=1)
    D = ProjectionDiscriminator(inner, num_classes=2)
    with torch.no_grad():
        D.embed.table.weight.copy_(embed.T)
    x, y = torch.randn(2, 2), torch.tensor([1, 0])
    h = inner.features(x)
    assert torch.allclose(D(x, y), inner.head(h).flatten() + (embed[y] * h).sum(1))


def test_acgan_terms_with_and_without_the_fakes():
    cls = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]])  # softmax (1/4, 3/4) and (1/2, 1/2)
    y = torch.tensor([1, 0])
    ce = (math.log(4 / 3) + math.log(2)) / 2  # batch mean of -log p(y)
    mod = ac_d_terms(cls, y, cls.flip(1), y, weight=2.0, on_fake=False)  # ACGAN-Mod: reals only
    assert set(mod) == {"loss/ac_real"} and mod["loss/ac_real"].item() == pytest.approx(2 * ce)
    orig = ac_d_terms(cls, y, cls.flip(1), y, weight=2.0, on_fake=True)  # Odena's: the fakes too
    fake_ce = (math.log(4) + math.log(2)) / 2  # flipped: p(1) = 1/4 for sample 0
    assert set(orig) == {"loss/ac_real", "loss/ac_fake"} and orig["loss/ac_fake"].item() == pytest.approx(2 * fake_ce)
    assert ac_g_terms(cls, y, weight=0.5)["loss/ac_g"].item() == pytest.approx(0.5 * ce)


@pytest.mark.parametrize("ac_on_fake", [False, True])
def test_the_family_adds_the_class_terms_to_d_and_g(ac_on_fake):
    module, _, _ = build(composed(*RING, "family.d_cond=acgan", "family.ac_weight=0.5",
                                  f"family.ac_on_fake={ac_on_fake}"))
    real_out = {"logit": torch.zeros(2), "cls": torch.tensor([[2.0, 0.0, 0, 0, 0, 0, 0, 0]] * 2)}
    fake_out = {"logit": torch.zeros(2), "cls": torch.zeros(2, 8)}
    terms = module.d_terms(real_out, fake_out, {"y": torch.tensor([0, 0])}, {"y": torch.tensor([3, 4])})
    assert terms["loss/ac_real"].item() == pytest.approx(0.5 * F.cross_entropy(real_out["cls"], torch.zeros(2).long()))
    assert ("loss/ac_fake" in terms) == ac_on_fake
    if ac_on_fake:
        assert terms["loss/ac_fake"].item() == pytest.approx(0.5 * math.log(8))
    g = module.g_terms(None, fake_out, {"y": torch.tensor([3, 4])})
    assert g["loss/ac_g"].item() == pytest.approx(0.5 * math.log(8))
    projection, _, _ = build(composed(*RING))
    assert projection.d_terms(real_out, fake_out, {}, {}) == {} and projection.g_terms(None, fake_out, {}) == {}


def test_cbn_equals_batch_norm_with_the_class_gain_and_bias():
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(3, eps=1e-4, momentum=0.2)
    cbn = ConditionalBatchNorm(bn, num_classes=2)
    assert torch.equal(cbn.gain.weight, torch.ones(2, 3)) and torch.equal(cbn.bias.weight, torch.zeros(2, 3))
    gains, biases = torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0]]), torch.tensor([[0.0, 1.0, 2.0], [3.0, 0, -1]])
    with torch.no_grad():
        cbn.gain.weight.copy_(gains)
        cbn.bias.weight.copy_(biases)
    x, y = torch.randn(6, 3, 4, 4), torch.tensor([0, 1, 1, 0, 1, 0])
    cbn.condition = y
    out = cbn(x)
    for c in (0, 1):  # plain BN over the whole batch with class c's affine, read on class c's samples
        ref = nn.BatchNorm2d(3, eps=1e-4, momentum=0.2)
        with torch.no_grad():
            ref.weight.copy_(gains[c])
            ref.bias.copy_(biases[c])
        assert torch.allclose(out[y == c], ref(x)[y == c], atol=1e-6)
    assert torch.allclose(cbn.norm.running_mean, ref.running_mean) and torch.allclose(cbn.norm.running_var,
                                                                                      ref.running_var)
    cbn.eval()  # running statistics in eval mode
    ref.eval()
    assert torch.allclose(cbn(x)[y == 1], ref(x)[y == 1], atol=1e-6)
    # BigGAN's shared variant: gain = 1 + W_g e, bias = W_b e
    shared = ConditionalBatchNorm(nn.BatchNorm1d(2), num_classes=2, shared_dim=3)
    e, h = torch.tensor([[1.0, 0.0, 2.0]]).repeat(4, 1), torch.randn(4, 2)
    shared.condition = e
    x_hat = F.batch_norm(h, None, None, training=True, eps=1e-5)
    expected = x_hat * (1 + e @ shared.gain.weight.T) + e @ shared.bias.weight.T
    assert torch.allclose(shared(h), expected, atol=1e-6)
    cbn.condition = None
    with pytest.raises(RuntimeError, match="without a class condition"):
        cbn(x)


def test_sample_grid_is_one_row_per_class_with_the_same_latents_per_column():
    fixed = torch.arange(12.0).reshape(6, 2)
    inputs = grid_inputs(fixed, num_classes=3, per_class=2)
    assert inputs["y"].tolist() == [0, 0, 1, 1, 2, 2]
    assert torch.equal(inputs["z"], fixed[:2].repeat(3, 1))
    module, _, _ = build(composed(*RING, "samples.num=20"))  # 8 classes: 20 // 8 = 2 columns
    assert module.grid_columns == 2 and module.fixed_inputs()["y"].tolist() == [c for c in range(8) for _ in "ab"]
    assert len(module.sample(inputs=module.fixed_inputs())) == 16


def test_fake_labels_uniform_or_from_the_data_frequencies():
    assert class_frequencies(torch.tensor([0, 2, 2, 2]), 3).tolist() == [0.25, 0.0, 0.75]
    torch.manual_seed(0)
    drawn = sample_labels(4000, 3, torch.tensor([0.25, 0.0, 0.75], dtype=torch.float64))
    assert (drawn != 1).all() and abs((drawn == 2).float().mean().item() - 0.75) < 0.03
    assert set(sample_labels(200, 3).tolist()) == {0, 1, 2}
    module, dm, _ = build(composed(*RING, "family.fake_labels=data"))
    expected = class_frequencies(dm.dataset("train").tensors[1], 8)
    assert torch.allclose(module.class_probs, expected) and "class_probs" in module.state_dict()


def test_penalties_score_the_fakes_with_their_labels_and_everything_else_with_the_reals():
    module, _, _ = build(composed(*RING))
    seen = []
    module.critic = lambda x, cond: seen.append(cond["y"].tolist()) or x.sum(1)
    real, fake = torch.randn(3, 2), torch.randn(3, 2)
    real_y, fake_y = {"y": torch.tensor([0, 1, 2])}, {"y": torch.tensor([5, 6, 7])}
    module.discriminate_pair(real, real_y, fake, fake_y)
    critic = module.penalty_critic(real_y, fake_y)
    critic(fake.detach().clone())  # R2: the fake batch itself
    critic((real + fake) / 2)  # a GP interpolate
    critic(real)  # R1
    assert seen == [[5, 6, 7], [0, 1, 2], [0, 1, 2]]
    module.set_data_range("unit")  # penalties get the batches in D's range: still recognised
    module.discriminate_pair(real, real_y, fake, fake_y)
    module.penalty_critic(real_y, fake_y)(module.d_inputs(fake))
    assert seen[-1] == [5, 6, 7]


# -- every net and head: shapes ------------------------------------------------------------------------------------
NETS = [(mlp, (2,), {"hidden": 8, "layers": 2}), (dcgan, (1, 8, 8), {"width": 8}), (sndcgan, (3, 8, 8), {"width": 8}),
        (resnet_cifar, (3, 8, 8), {"width": 8}), (resnet19, (3, 32, 32), {"width": 2})]


@pytest.mark.parametrize("net, shape, kw", NETS, ids=[n.NAME for n, _, _ in NETS])
def test_shapes_of_every_conditional_net_and_head(net, shape, kw):
    k, n, z_dim = 5, 4, 6
    z, y = torch.randn(n, z_dim), torch.tensor([0, 1, 4, 4])
    x = torch.rand(n, *shape) * 2 - 1
    G = ConcatGenerator(net.Generator(z_dim + k, shape, **kw), k)
    assert G(z, y).shape == (n, *shape)
    G = ConcatGenerator(net.Generator(z_dim + 3, shape, **kw), k, embed_dim=3)
    assert G(z, y).shape == (n, *shape)
    for shared in (None, 4):
        G = CBNGenerator(net.Generator(z_dim, shape, **kw), k, shared_dim=shared)
        out = G(z, y)
        assert out.shape == (n, *shape)
        norms = G.conditional_norms()
        assert norms and all(m.condition is None for m in norms)
        unconditional = [m for m in G.inner.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
                         and m not in [c.norm for c in norms]]
        resnet = isinstance(G.inner, resnet_cifar.ResNetGenerator)  # only its output BN stays unconditional
        assert unconditional == ([G.inner.to_image[0]] if resnet else [])
    inner = net.Discriminator(shape, **kw)
    assert ProjectionDiscriminator(inner, k)(x, y).shape == (n,)
    out = ACGANDiscriminator(net.Discriminator(shape, **kw), k)(x, y)
    assert out["logit"].shape == (n,) and out["cls"].shape == (n, k)
    for embed_dim in (None, 3):
        d_shape = ConcatDiscriminator.extra_shape(shape, k, embed_dim)
        assert d_shape[0] == shape[0] + (3 if embed_dim else k) and d_shape[1:] == shape[1:]
        assert ConcatDiscriminator(net.Discriminator(d_shape, **kw), k, embed_dim)(x, y).shape == (n,)


def test_the_embeddings_spectral_norm_reaches_and_the_shared_one_it_never_does():
    cfg = composed(*RING, "family.d_cond=projection", "reg=sn", "reg.sn.generator=true",
                   "family.shared_embedding=4")
    module, _, _ = build(cfg)
    assert hasattr(module.D.embed.table, "parametrizations")  # SNP's SNEmbedID
    assert not hasattr(module.G.shared, "parametrizations")  # BigGAN: G's shared embedding never normalised
    assert all(hasattr(m.gain, "parametrizations") for m in module.G.conditional_norms())  # BigGAN's SN linears


# -- labelled data --------------------------------------------------------------------------------------------------
def test_polygons_are_labelled_by_vertex_count():
    from ganbench.data.synthetic import Polygons, convex_polygon, labelled_polygon_images

    x, labels = labelled_polygon_images(20, 8, 1, seed=3)
    rng = np.random.default_rng(3)
    for i in range(20):  # replay the generator: background, fill, then the polygon
        rng.integers(0, 96, size=1), rng.integers(128, 256, size=1)
        assert labels[i] == len(convex_polygon(rng, 8)) - 3
    dm = Polygons(resolution=8, channels=1, n_train=300, n_test=10)
    assert dm.num_classes == 6 and set(dm.dataset("train").tensors[1].tolist()) == set(range(6))


def _images(root, names):
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (10, 12), (len(name) * 20 % 256, 30, 90)).save(path)


def test_folder_labels_from_first_level_subdirs(tmp_path):
    from ganbench.data.folder import ImageFolder

    _images(tmp_path, ["cat/a.png", "cat/deep/b.png", "dog/c.png", "ant/d.jpg", "dog/e.png"])
    dm = ImageFolder(root=str(tmp_path), resolution=8, labels="subdirs", test_fraction=0.2)
    assert dm.classes == ["ant", "cat", "dog"] and dm.num_classes == 3
    train, test = dm.dataset("train"), dm.dataset("test")
    pairs = {p.name: int(y) for ds in (train, test) for p, y in zip(ds.paths, ds.targets)}
    assert pairs == {"a.png": 1, "b.png": 1, "c.png": 2, "d.jpg": 0, "e.png": 2}
    assert train[0][1] == int(train.targets[0])
    assert ImageFolder(root=str(tmp_path), resolution=8).num_classes is None  # labels=none: unlabelled
    with pytest.raises(ConfigError, match="data.labels"):
        ImageFolder(root=str(tmp_path), labels="names")


def test_stl10_labelled_train_split(tmp_path, monkeypatch):
    import torchvision.datasets

    from ganbench.data.vision import STL10

    monkeypatch.setattr(torchvision.datasets.STL10, "_check_integrity", lambda self: True)
    base = tmp_path / STL10.subdir
    base.mkdir()
    rng = np.random.default_rng(0)
    (base / "train_X.bin").write_bytes(rng.integers(0, 256, 2 * 3 * 96 * 96, dtype=np.uint8).tobytes())
    (base / "train_y.bin").write_bytes(bytes([3, 10]))  # 1-based on disk
    dm = STL10(root=str(tmp_path), train_split="train")
    assert dm.num_classes == 10 and STL10().num_classes is None
    assert dm.dataset("train").targets.tolist() == [2, 9] and dm.dataset("train")[1][1] == 9
    with pytest.raises(ConfigError, match="data.train_split"):
        STL10(train_split="all")


# -- class metrics ---------------------------------------------------------------------------------------------------
def test_class_metrics_count_per_class_and_name_their_protocol():
    from ganbench.data.toy import Ring8
    from ganbench.metrics.evaluator import Evaluator

    dm = Ring8(n_train=100, n_test=400)
    ev = Evaluator(dm, num_real=400, num_fake=16, kid_subsets=2, kid_subset_size=50, device="cpu", cache_dir="/tmp")
    ref_x, ref_y = dm.dataset("test").tensors
    wrong = 3  # class 3 is asked for but drawn at mode 4

    def sample_class(c, n):
        at = dm.modes[4 if c == wrong else c]
        return at + 0.5 * dm.std * torch.randn(n, 2).clamp(-2, 2)  # within 3 std of the mode

    metrics = ClassMetrics(8, kid_subsets=2)
    values = metrics(ev, sample_class)
    counts = torch.bincount(ref_y, minlength=8)
    assert values["toy/class_acc"] == pytest.approx(1 - counts[wrong].item() / 400)
    assert values["toy/class_acc_min"] == 0.0
    gap = (dm.modes[4] - dm.modes[3]).square().sum().item()  # FID ~ the squared distance of the means
    assert values["toy/fid_class3"] == pytest.approx(gap, rel=0.01) and values["toy/fid_class0"] < 0.01
    fids = [values[f"toy/fid_class{c}"] for c in range(8)]
    assert values["toy/intra_fid"] == pytest.approx(sum(fids) / 8) and "toy/intra_kid" in values
    protocol = metrics.protocol()
    assert protocol["num_real_per_class"] == counts.tolist() == protocol["num_fake_per_class"]
    assert protocol["accuracy"]["classifier"] == "nearest mode within 3 std"
    # the reference samples of a class against themselves: FID 0
    own = ClassMetrics(8, kid_subsets=1)(ev, lambda c, n: ref_x[ref_y == c][:n])
    assert all(abs(own[f"toy/fid_class{c}"]) < 1e-6 for c in range(8))
    # a non-finite sample: every value NaN
    assert all(math.isnan(v) for v in metrics(ev, lambda c, n: torch.full((n, 2), math.nan)).values())
    assert nearest_mode(torch.tensor([[2.0, 0.0], [2.5, 0.0]]), dm.modes, dm.std).tolist() == [0, -1]


@pytest.mark.filterwarnings("ignore:`torch.jit")
def test_a_user_classifier_is_loaded_and_a_missing_one_is_an_error(tmp_path, caplog):
    net = torch.jit.script(nn.Sequential(nn.Flatten(), nn.Linear(2, 3)))
    path = tmp_path / "clf.pt"
    net.save(str(path))
    clf = ModuleClassifier(path, num_classes=3)
    x = torch.randn(5, 2)
    assert torch.equal(clf(x, {}), net(x).argmax(1)) and clf.protocol()["sha256"]
    torch.save(nn.Linear(2, 3), tmp_path / "pickled.pt")
    assert ModuleClassifier(tmp_path / "pickled.pt", 3)(x, {}).shape == (5,)
    with pytest.raises(ConfigError, match=r"\(N, 4\) logits"):
        ModuleClassifier(path, num_classes=4)(x, {})
    with pytest.raises(ConfigError, match="no such file"):
        ClassMetrics(3, classifier=str(tmp_path / "missing.pt"))
    # no classifier given and none built in (Inception-scored images): skipped with a log line
    from types import SimpleNamespace

    from ganbench.data.synthetic import Polygons

    ev = SimpleNamespace(kind="inception", datamodule=Polygons(resolution=8))
    with caplog.at_level("INFO", logger="ganbench"):
        assert ClassMetrics(6).predictor(ev) is None
    assert "class accuracy skipped" in caplog.text and "family.classifier=PATH" in caplog.text
    assert ClassMetrics(3, classifier=str(path)).predictor(ev) is not None


# -- training through the CLI ----------------------------------------------------------------------------------------
IMAGES = ["data=polygons", "data.n_train=64", "data.n_test=16"]
MODELS = {
    "mlp": [*TOY, "family.g_cond=concat", "family.d_cond=concat", "reg=gp", "family.fake_labels=data"],
    "dcgan": ["model=dcgan", "data=digits", "data.resolution=8", "model.generator.width=8",
              "model.discriminator.width=8", "family.d_cond=acgan", "family.ac_on_fake=true", "loss=hinge",
              "reg=[r2]", "metrics=quick", "metrics.num_fake=40", "metrics.kid_subsets=2"],
    "sndcgan": ["model=sndcgan", *IMAGES, "data.resolution=8", "model.generator.width=8",
                "model.discriminator.width=8", "family.shared_embedding=8", "reg=sn"],
    "resnet_cifar": ["model=resnet_cifar", *IMAGES, "data.resolution=8", "model.generator.width=8",
                     "model.discriminator.width=8", "reg=r1", "family.d_cond=concat", "family.embed_dim=4"],
    "resnet19": ["model=resnet19", *IMAGES, "data.resolution=32", "model.generator.width=2",
                 "model.discriminator.width=2", "family.g_cond=concat", "family.d_cond=acgan", "reg=dragan"],
}
DEFAULTS = ["family=conditional", *QUIET, "optim.batch_size=8", "optim.g_steps=3", "log_every=1"]


@pytest.mark.parametrize("model", list(MODELS))
def test_every_model_trains_three_steps(run, tmp_path, model):
    args = MODELS[model]
    code, out = run(*DEFAULTS, *([] if "metrics=quick" in args else ["metrics=none"]), *args)
    assert code == 0, out[-3000:]
    rec = result(tmp_path / "run")
    assert rec["status"] == "completed" and rec["g_steps"] == 3
    import pandas as pd

    rows = pd.read_csv(tmp_path / "run" / "metrics.csv")
    losses = rows.dropna(subset=["loss/d"])
    assert np.isfinite(losses["loss/d"]).all() and len(losses) == 3
    if "family.d_cond=acgan" in args:
        assert {"loss/ac_real", "loss/ac_g"} <= set(rows.columns)
        assert ("loss/ac_fake" in rows.columns) == ("family.ac_on_fake=true" in args)
    if model == "dcgan":  # the class metrics in the domain classifier's space, named after the protocol
        final = rec["metrics"]["final"]
        assert {"intra_fid/domain_test360", "intra_kid/domain_test360", "fid_class9/domain_test360",
                "class_acc/domain", "class_acc_min/domain"} <= set(final)
        family = rec["metrics"]["protocol"]["family"]["class_metrics"]
        assert sum(family["num_real_per_class"]) == 360 and family["accuracy"]["classifier"] == "domain"


# -- bad input: one line, exit 2, nothing completed ------------------------------------------------------------------
class FeaturelessD(nn.Module):
    """A discriminator outside ganbench's contract: logits, but no features / feature_dim / head."""

    def __init__(self, data_shape, norm=None, **kw):
        super().__init__()
        self.net = nn.Linear(int(np.prod(data_shape)), 1)

    def forward(self, x):
        return self.net(x.flatten(1)).flatten()


@pytest.fixture
def flat_folder(tmp_path):
    _images(tmp_path / "imgs", ["a.png", "b.png", "c.png"])
    return tmp_path / "imgs"


BAD = {
    "swissroll": (["model=mlp", "data=swissroll"], ["family=conditional needs class labels", "data=swissroll",
                                                     "ring8"]),
    "stl10_unlabeled": (["model=dcgan", "data=stl10"], ["needs class labels", "data=stl10", "data.train_split=train"]),
    "flat_folder": (["model=dcgan", "data=folder", "data.root={folder}"], ["needs class labels", "data=folder",
                                                                           "data.labels=subdirs"]),
    "flat_folder_subdirs": (["model=dcgan", "data=folder", "data.root={folder}", "data.labels=subdirs"],
                            ["data.labels=subdirs", "outside any class folder"]),
    "num_classes": ([*TOY, "family.num_classes=10"], ["family.num_classes=10", "8 classes"]),
    "projection_without_features": ([*TOY, "model.discriminator._target_=test_family_conditional.FeaturelessD"],
                                    ["family.d_cond=projection", "features(x)", "family.d_cond=concat"]),
    "g_cond": ([*TOY, "family.g_cond=film"], ["family.g_cond", "cbn, concat", "film"]),
    "d_cond": ([*TOY, "family.d_cond=multihinge"], ["family.d_cond", "projection, acgan, concat"]),
    "pack": ([*TOY, "family.pack=2"], ["family.pack=2", "family=conditional", "own label", "family.pack=1"]),
    "shared_with_concat": ([*TOY, "family.g_cond=concat", "family.shared_embedding=8"],
                           ["family.shared_embedding", "family.g_cond=cbn"]),
}


@pytest.mark.parametrize("overrides, words", BAD.values(), ids=BAD.keys())
def test_bad_input_is_one_line(run, tmp_path, flat_folder, overrides, words):
    overrides = [o.format(folder=flat_folder) for o in overrides]
    code, out = run("family=conditional", *QUIET, "metrics=none", "optim.batch_size=8", "optim.g_steps=1",
                    *overrides, env={"HOME": str(tmp_path)})
    assert code == 2, out[-2000:]
    lines = [ln for ln in out.splitlines() if ln.startswith("ganbench: error:")]
    assert len(lines) == 1 and "Traceback" not in out, out[-2000:]
    for word in words:
        assert word in lines[0], (word, lines[0])
    rec = tmp_path / "run" / "result.json"
    assert not rec.exists() or result(tmp_path / "run")["status"] == "failed"


# -- learning: samples asked for class c land on mode c ------------------------------------------------------------
LEARN = [*RING[:3], "data.std=0.1", "data.n_train=5000", "data.n_test=1000", "model.generator.hidden=32",
         "model.discriminator.hidden=32", "optim.batch_size=64", "optim.lr=2e-3", "optim.beta1=0.5", *QUIET,
         "metrics=quick", "metrics.num_fake=100", "metrics.every=0", "metrics.kid_subsets=1", "log_every=100"]


@pytest.mark.parametrize("g_steps, learns", [(800, True), (1, False)], ids=["trained", "control"])
def test_samples_asked_for_a_class_land_on_its_mode(run, tmp_path, g_steps, learns):
    """ring8 (std 0.1) with the component as label: >= 90% of the samples asked for class c lie within 3 std of
    mode c, for every c (class_acc_min); the untrained control (1 generator step) does not."""
    code, out = run(*LEARN, f"optim.g_steps={g_steps}")
    assert code == 0, out[-3000:]
    final = result(tmp_path / "run")["metrics"]["final"]
    print(f"g_steps={g_steps}: class_acc={final['toy/class_acc']:.3f} min={final['toy/class_acc_min']:.3f} "
          f"intra_fid={final['toy/intra_fid']:.4f}")
    assert (final["toy/class_acc_min"] >= 0.9) == learns


# -- exact resume ----------------------------------------------------------------------------------------------------
RESUME = [*RING, "optim.batch_size=32", "optim.n_disc=2", "optim.g_steps=12", "loss=ns",
          "loss._target_=kill_loss.KillAt", "reg=gp", "family.fake_labels=data", "family.d_cond=acgan",
          "logger=[csv]", "metrics=quick", "metrics.every=6", "metrics.num_fake=200", "metrics.kid_subsets=2",
          "samples.every=0", "checkpoint.every=4", "log_every=1"]


def test_sigkill_then_rerun_ends_bitwise_like_an_uninterrupted_run(cli, run, tmp_path):
    """Killed in the D step of generator step 8 (after the checkpoint at 4 and the evaluation at 6)."""
    code, out = run(*RESUME, run_dir=tmp_path / "reference")  # in-process, like the resumed run
    assert code == 0, out[-3000:]
    # one thread in the subprocess too: CPU results depend on torch's thread count (one_cpu_thread in-process)
    killed = cli(*RESUME, env={"GANBENCH_TEST_KILL_AT": "15", "OMP_NUM_THREADS": "1"})
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert result(tmp_path / "run")["status"] == "running"
    code, out = run(*RESUME)
    assert code == 0, out[-3000:]
    ours, theirs = assert_same_last_checkpoint(tmp_path / "run", tmp_path / "reference")
    assert "class_probs" in ours["state_dict"]
    mine, ref = result(tmp_path / "run")["metrics"], result(tmp_path / "reference")["metrics"]
    assert mine["history"] == ref["history"] and "toy/intra_fid" in mine["final"]
