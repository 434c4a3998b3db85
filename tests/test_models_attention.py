"""model=sagan and model=biggan: self-attention against a hand computation, every resolution's shapes and attention
placement, BigGAN's hierarchical z and shared-embedding cBN by hand, the one-line errors, the model configs, and
three Adam steps of each net with the hinge loss."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from hydra.utils import instantiate
from torch import nn
from torch.nn.utils import parametrize

from ganbench.errors import ConfigError
from ganbench.nets import biggan, sagan
from ganbench.nets.attention import SelfAttention, attend
from ganbench.nets.conditioning import CBNGenerator, ConditionalBatchNorm, ProjectionDiscriminator
from ganbench.nets.init import apply_init

pytestmark = pytest.mark.usefixtures("one_cpu_thread")

CONF = Path(__file__).resolve().parents[1] / "conf" / "model"
SIDES = (32, 64, 128, 256)
K = 3


# -- the attention block ---------------------------------------------------------------------------------------------
def hand_attention(x, wt, wp, wg, wo, gamma):
    """SAGAN's block for one sample x (C, H, W) with loops: 1x1 convs as matrices, 2x2 max pooling, a softmax over
    the pooled key positions (row-major), out = x + gamma * W_o v. Returns (out, beta as nested lists)."""
    C, H, W = x.shape
    theta, phi, g = (torch.einsum("oc,chw->ohw", w, x) for w in (wt, wp, wg))

    def pool(t):
        return torch.stack([torch.stack([t[:, 2 * i:2 * i + 2, 2 * j:2 * j + 2].amax(dim=(1, 2))
                                         for j in range(W // 2)], dim=1) for i in range(H // 2)], dim=1)

    phi, g = pool(phi), pool(g)
    keys = [(i, j) for i in range(H // 2) for j in range(W // 2)]
    out, beta = x.clone(), []
    for h in range(H):
        for w in range(W):
            scores = [float(theta[:, h, w] @ phi[:, i, j]) for i, j in keys]
            top = max(scores)
            weights = [math.exp(s - top) for s in scores]
            weights = [e / sum(weights) for e in weights]
            beta.append(weights)
            v = sum(wk * g[:, i, j] for wk, (i, j) in zip(weights, keys))
            out[:, h, w] += gamma * (wo @ v)
    return out, beta


def test_attention_equals_a_hand_computation_and_reshapes_as_biggan():
    torch.manual_seed(0)
    block = SelfAttention(16).double()
    with torch.no_grad():
        block.gamma.fill_(0.7)
    x = torch.randn(2, 16, 4, 6, dtype=torch.double)  # not square: a transposed reshape would show
    out = block(x)
    _, beta = block.attention_map(x)
    assert beta.shape == (2, 24, 6)  # queries at HW, keys at HW/4
    weights = [m.weight[:, :, 0, 0] for m in (block.theta, block.phi, block.g, block.o)]
    assert [w.shape for w in weights] == [(2, 16), (2, 16), (8, 16), (16, 8)]  # C/8, C/8, C/2, C/2 -> C
    for n in range(2):
        want, want_beta = hand_attention(x[n], *weights, 0.7)
        assert torch.allclose(out[n], want, atol=1e-10)
        assert torch.allclose(beta[n], torch.tensor(want_beta, dtype=torch.double), atol=1e-12)


def test_attention_is_the_identity_while_gamma_is_zero():
    block = SelfAttention(8)
    assert isinstance(block.gamma, nn.Parameter) and float(block.gamma) == 0.0
    assert all(m.bias is None for m in block.modules() if isinstance(m, nn.Conv2d))
    x = torch.randn(3, 8, 8, 8)
    assert torch.equal(block(x), x)


def test_attend_rows_are_distributions_over_keys():
    theta, phi, g = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 2, 2), torch.randn(2, 5, 2, 2)
    v, beta = attend(theta, phi, g)
    assert v.shape == (2, 5, 4, 4) and torch.allclose(beta.sum(-1), torch.ones(2, 16))
    # identical keys: every query averages the values
    v, _ = attend(theta, torch.zeros_like(phi), g)
    assert torch.allclose(v, g.mean(dim=(2, 3), keepdim=True).expand_as(v), atol=1e-6)


def test_attention_refuses_odd_sides_and_too_few_channels():
    with pytest.raises(ValueError, match="even H and W"):
        SelfAttention(8)(torch.randn(1, 8, 5, 4))
    with pytest.raises(ConfigError, match="model.generator.attention: self-attention at 16x16 needs >= 8 channels"):
        sagan.Generator(8, (3, 32, 32), width=1)  # 4 channels at 16x16


# -- the nets at every resolution ----------------------------------------------------------------------------------
def tiny(model: str, side: int, g_attention, d_attention, channels: int = 3, **g_options):
    """(G, D, a function sampling G) at tiny widths."""
    if model == "sagan":
        G = sagan.Generator(12, (channels, side, side), width=2, attention=g_attention, **g_options)
        D = sagan.Discriminator((channels, side, side), width=4, attention=d_attention)
        return G, D, lambda n: G(torch.randn(n, 12))
    G = biggan.Generator(12, (channels, side, side), K, ch=2, attention=g_attention, **g_options)
    D = biggan.Discriminator((channels, side, side), ch=4, attention=d_attention)
    return G, D, lambda n: G(torch.randn(n, 12), torch.randint(K, (n,)))


def attention_sides(net: nn.Module, run) -> list[int]:
    """The input side every SelfAttention of ``net`` sees in one call of ``run``."""
    seen = []
    hooks = [m.register_forward_pre_hook(lambda m, args: seen.append((args[0].shape[2], args[0].shape[3])))
             for m in net.modules() if isinstance(m, SelfAttention)]
    try:
        run()
    finally:
        for h in hooks:
            h.remove()
    assert all(h == w for h, w in seen)
    return [h for h, _ in seen]


# side: (G attention, D attention, the sides D's attention layers see). G's blocks output 8, 16, ..., side; D's
# side/2, then halving to 4 (BG/SG D_arch: the last block keeps 4x4, so attention at 4 follows two blocks).
PLACEMENT = {32: ([8, 32], [16], [16]), 64: ([8, 16], [16, 4], [16, 4, 4]), 128: ([8, 32], [32, 4], [32, 4, 4]),
             256: ([16, 64], [64, 8], [64, 8])}


@pytest.mark.parametrize("model", ["sagan", "biggan"])
@pytest.mark.parametrize("side", SIDES)
def test_nets_build_at_every_resolution_with_attention_where_asked(model, side):
    torch.manual_seed(0)
    g_att, d_att, d_seen = PLACEMENT[side]
    G, D, sample = tiny(model, side, g_att, d_att, channels=1 if side == 256 else 3)
    x = sample(2)
    assert x.shape == (2, 1 if side == 256 else 3, side, side) and x.abs().max() <= 1
    assert attention_sides(G, lambda: sample(2)) == sorted(g_att)
    logits = D(x)
    assert logits.shape == (2,)
    assert D.features(x).shape == (2, D.feature_dim) and D.head.out_features == 1
    assert attention_sides(D, lambda: D(x)) == d_seen
    if side == 32:  # three blocks output 8x8
        _, D2, _ = tiny(model, side, [], [8], channels=1)
        assert attention_sides(D2, lambda: D2(torch.randn(2, 1, side, side))) == [8, 8, 8]
    assert not any(isinstance(m, SelfAttention) for m in tiny(model, side, [], [], channels=1)[0].modules())


def test_layouts_match_studiogan_and_biggan_at_32_and_128_px():
    def convs(net, cls):  # each residual block's output channels (G: its last conv; D: its first)
        return [m.residual[-1 if cls == "G" else 2].out_channels for m in net.blocks
                if not isinstance(m, (SelfAttention, nn.ReLU))]

    # SG resnet.py CIFAR: G 4 x g_conv_dim = 256 everywhere, D 2 x d_conv_dim = 128
    G, D = sagan.Generator(128, (3, 32, 32)), sagan.Discriminator((3, 32, 32))
    assert G.seed[0].out_features == 256 * 16 and convs(G, "G") == [256] * 3 and convs(D, "D") == [128] * 4
    # BG G_arch/D_arch: 32 px G [4,4,4] ch, D [4,4,4,4] ch; 128 px G [16,8,4,2,1] ch, D [1,2,4,8,16,16] ch
    G, D = biggan.Generator(128, (3, 32, 32), 10), biggan.Discriminator((3, 32, 32))
    assert G.linear.out_features == 256 * 16 and convs(G, "G") == [256] * 3 and convs(D, "D") == [256] * 4
    G, D = biggan.Generator(120, (3, 128, 128), 10, ch=2, hier=True), biggan.Discriminator((3, 128, 128), ch=2)
    assert G.linear.out_features == 32 * 16 and convs(G, "G") == [32, 16, 8, 4, 2]
    assert convs(D, "D") == [2, 4, 8, 16, 32, 32] and D.feature_dim == 32


@pytest.mark.parametrize("model,net", [("sagan", "generator"), ("sagan", "discriminator"),
                                       ("biggan", "generator"), ("biggan", "discriminator")])
def test_attention_at_a_missing_resolution_names_the_key_and_the_resolutions(model, net):
    g_att, d_att = ([64], []) if net == "generator" else ([], [32])
    with pytest.raises(ConfigError) as err:
        tiny(model, 32, g_att, d_att)
    message = str(err.value)
    assert f"model.{net}.attention" in message and "resolution " + str((g_att or d_att)[0]) in message
    assert ("8, 16, 32" if net == "generator" else "8, 16") in message


# -- BigGAN's generator --------------------------------------------------------------------------------------------
def test_hierarchical_z_that_does_not_split_is_refused_with_the_nearest_sizes():
    with pytest.raises(ConfigError) as err:
        biggan.Generator(90, (3, 32, 32), K, ch=2, hier=True)  # 3 blocks: 4 chunks
    message = str(err.value)
    assert "optim.z_dim=90" in message and "4 equal chunks" in message and "88 or 92" in message
    biggan.Generator(80, (3, 32, 32), K, ch=2, hier=True)  # SG's CIFAR BigGAN: 4 x 20
    biggan.Generator(90, (3, 32, 32), K, ch=2, hier=False)  # no split without hier
    with pytest.raises(ConfigError, match="model.generator.shared=true"):
        biggan.Generator(80, (3, 32, 32), K, ch=2, hier=True, shared=False)


def conditions_per_block(G, z, y) -> list[list[torch.Tensor]]:
    """The condition every ConditionalBatchNorm of each G block saw in G(z, y)."""
    seen = [[] for _ in G.blocks]
    hooks = [norm.register_forward_pre_hook(lambda m, args, i=i: seen[i].append(m.condition.clone()))
             for i, block in enumerate(G.blocks) for norm in block.modules() if isinstance(norm, ConditionalBatchNorm)]
    try:
        G(z, y)
    finally:
        for h in hooks:
            h.remove()
    return seen


def test_hierarchical_z_chunks_reach_their_blocks():
    torch.manual_seed(0)
    G = biggan.Generator(20, (3, 64, 64), K, ch=1, shared_dim=6, hier=True, attention=[])  # 4 blocks, 5 x 4
    z, y = torch.randn(2, 20), torch.tensor([0, 2])
    base = conditions_per_block(G, z, y)
    assert [len(c) for c in base] == [2] * 4 and base[0][0].shape == (2, 6 + 4)
    for i, conds in enumerate(base):
        assert torch.equal(conds[0][:, :6], G.shared.weight[y].detach())  # [shared(y), z_{i+1}]
        assert torch.equal(conds[0][:, 6:], z[:, 4 * (i + 1):4 * (i + 2)])
    seed_in = []
    hook = G.linear.register_forward_pre_hook(lambda m, args: seed_in.append(args[0]))
    for chunk in range(5):
        z2 = z.clone()
        z2[:, 4 * chunk:4 * (chunk + 1)] += 1.0
        changed = [not torch.equal(a[0], b[0]) for a, b in zip(base, conditions_per_block(G, z2, y))]
        assert changed == [i == chunk - 1 for i in range(4)]  # chunk 0 goes to the linear only
        assert torch.equal(seed_in[-1], z2[:, :4])
    hook.remove()


def test_shared_embedding_cbn_is_batch_norm_with_that_class_gain_and_bias():
    torch.manual_seed(0)
    G = biggan.Generator(8, (3, 32, 32), K, ch=2, attention=[], bn_eps=1e-4)
    assert isinstance(G.shared, nn.Embedding) and G.shared.weight.shape == (K, 8)  # shared_dim 0/None = z_dim
    norm = G.blocks[1].residual[0]
    assert isinstance(norm, ConditionalBatchNorm) and norm.norm.eps == 1e-4
    assert not isinstance(G.to_image[0], ConditionalBatchNorm) and G.to_image[0].affine
    with torch.no_grad():
        norm.gain.weight.normal_()
        norm.bias.weight.normal_()
    io = []
    hook = norm.register_forward_hook(lambda m, args, out: io.append((args[0], out)))
    y = torch.tensor([2, 0, 2, 1])
    G(torch.randn(4, 8), y)
    hook.remove()
    x, out = io[0]
    mean, var = x.mean(dim=(0, 2, 3), keepdim=True), x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    for n, c in enumerate(y.tolist()):
        e = G.shared.weight[c]
        gain, bias = 1 + norm.gain.weight @ e, norm.bias.weight @ e
        want = gain[:, None, None] * (x[n] - mean[0]) / torch.sqrt(var[0] + 1e-4) + bias[:, None, None]
        assert torch.allclose(out[n], want, atol=1e-5)


def test_per_class_tables_without_shared_embedding():
    G = biggan.Generator(8, (3, 32, 32), K, ch=2, shared=False, attention=[])
    assert G.shared is None and not G.hier
    norm = G.blocks[0].residual[0]
    assert isinstance(norm.gain, nn.Embedding) and torch.equal(norm.gain.weight, torch.ones(K, 8))
    assert G(torch.randn(2, 8), torch.tensor([0, 1])).shape == (2, 3, 32, 32)


def test_spectral_norm_leaves_the_shared_embedding_alone():
    from ganbench.regularizers import apply_spectral_norm

    G = apply_spectral_norm(biggan.Generator(8, (3, 32, 32), K, ch=2))
    assert not parametrize.is_parametrized(G.shared)
    assert all(parametrize.is_parametrized(m, "weight") for m in G.modules() if isinstance(m, (nn.Linear, nn.Conv2d)))


def test_conditioning_flags_and_cbn_wrapping_of_sagan():
    assert biggan.Generator.native_conditioning is True
    assert not getattr(sagan.Generator, "native_conditioning", False)
    G = CBNGenerator(sagan.Generator(8, (3, 32, 32), width=2), K, shared_dim=5)
    norms = G.conditional_norms()
    assert len(norms) == 6 and not isinstance(G.inner.to_image[0], ConditionalBatchNorm)  # 2 per block, not the output
    assert sum(isinstance(m, SelfAttention) for m in G.inner.blocks) == 1
    assert G(torch.randn(2, 8), torch.tensor([1, 2])).shape == (2, 3, 32, 32)


def test_model_configs_build_their_nets():
    for name, extra in (("sagan", {}), ("biggan", {"num_classes": 10})):
        cfg = OmegaConf.load(CONF / f"{name}.yaml")
        assert cfg.name == name and list(cfg.spectral_norm) == ["generator", "discriminator"]
        assert cfg.generator.pop("init") == cfg.discriminator.pop("init") == "orthogonal"
        G = instantiate(cfg.generator, z_dim=128, data_shape=(3, 32, 32), **extra)
        D = instantiate(cfg.discriminator, data_shape=(3, 32, 32))
        assert sum(isinstance(m, SelfAttention) for m in [*G.modules(), *D.modules()]) == 2
    assert OmegaConf.load(CONF / "biggan.yaml").conditional == "native"


# -- gradients flow ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["sagan", "biggan"])
def test_three_adam_steps_with_the_hinge_loss(model):
    from ganbench.regularizers import apply_spectral_norm

    torch.manual_seed(0)
    G, D, _ = tiny(model, 32, [16], [16])
    if model == "biggan":
        D = ProjectionDiscriminator(D, K)
    for net in (G, D):
        apply_spectral_norm(apply_init(net, "orthogonal"))
    conditional = model == "biggan"

    def gen(n):
        y = torch.randint(K, (n,))
        return (G(torch.randn(n, 12), y) if conditional else G(torch.randn(n, 12))), y

    def score(x, y):
        return D(x, y) if conditional else D(x)

    opt_g = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.0, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.0, 0.999))
    gammas = [m.gamma for net in (G, D) for m in net.modules() if isinstance(m, SelfAttention)]
    assert len(gammas) == 2
    real, y_real = torch.rand(6, 3, 32, 32) * 2 - 1, torch.randint(K, (6,))
    for step in range(3):
        with torch.no_grad():
            fake, y_fake = gen(6)
        loss_d = F.relu(1 - score(real, y_real)).mean() + F.relu(1 + score(fake, y_fake)).mean()
        opt_d.zero_grad()
        loss_d.backward()
        assert all(torch.isfinite(p.grad).all() for p in D.parameters() if p.grad is not None)
        assert gammas[1].grad is not None and gammas[1].grad.abs() > 0
        opt_d.step()
        fake, y_fake = gen(6)
        loss_g = -score(fake, y_fake).mean()
        opt_g.zero_grad()
        loss_g.backward()
        assert all(torch.isfinite(p.grad).all() for p in G.parameters() if p.grad is not None)
        assert gammas[0].grad is not None and gammas[0].grad.abs() > 0
        opt_g.step()
    assert all(float(g) != 0.0 for g in gammas)
    attention = next(m for m in G.modules() if isinstance(m, SelfAttention))
    assert attention.theta.parametrizations.weight.original.grad.abs().sum() > 0  # the map itself learns once gamma != 0
