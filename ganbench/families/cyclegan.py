"""CycleGAN (Zhu et al. 2017, "Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial Networks"):
``family=cyclegan``.

Reference: junyanz/pytorch-CycleGAN-and-pix2pix@032e88438b1b2690e538c2cf399ebceb76adbea9
``models/cycle_gan_model.py`` (``backward_D_basic``, ``backward_D_A/B``, ``backward_G``, ``optimize_parameters``),
``models/networks.py`` (``GANLoss``, ``ResnetGenerator``, ``NLayerDiscriminator``), ``util/image_pool.py``@28330fc
(``ImagePool.query``). The nets are in ``ganbench/nets/resnet_translator.py`` and ``ganbench/nets/patchgan.py``, the
data in ``ganbench/data/unpaired.py``. The reference's names are kept: G_A maps A -> B, G_B maps B -> A; D_A
judges domain B (real B against G_A(A)), D_B judges domain A (real A against G_B(B)).

- Networks: G is ``CycleGenerators`` (``G.ab`` = G_A, ``G.ba`` = G_B), D is ``CycleDiscriminators`` (``D.a`` = D_A,
  ``D.b`` = D_B): the loop's two optimizers step both of each, as the reference's ``itertools.chain`` optimizers.
- Data: batches (A, B) drawn independently from two domains with one channel count (``data=digits2tinted``,
  ``data=unpaired``); anything else is refused.
- D's loss (``loss/d_a``, ``loss/d_b``): ``d_loss_weight`` (0.5) * loss.discriminator(D_A(B), D_A(pool_B(G_A(A))))
  and likewise for D_B: ``backward_D_basic``'s ``(loss_D_real + loss_D_fake) * 0.5`` on fakes from the image pools
  (``ImagePool``, ``pool_size`` 50). ganbench's loss=ls carries Mao et al.'s 1/2 in D and G, so the defaults give
  1/2 of the reference's lsgan values in both; ``d_loss_weight=1 gan_weight=2`` is its scale exactly (with loss=ns
  the defaults are its ``vanilla``). Penalties are added unhalved.
- G's loss: gan_weight * (loss.generator(D_A(G_A(A))) + loss.generator(D_B(G_B(B)))) (``loss/g_a``, ``loss/g_b``)
  + lambda_A |G_B(G_A(A)) - A| + lambda_B |G_A(G_B(B)) - B| (``loss/cycle_a``, ``loss/cycle_b``; 10 each)
  + lambda_idt (lambda_B |G_A(B) - B| + lambda_A |G_B(A) - A|) (``loss/idt_a``, ``loss/idt_b``; lambda_idt 0.5),
  every L1 a mean over pixels (``torch.nn.L1Loss``).
- Step order: ganbench's D step, then G step, on one batch (the reference: G then D on one ``forward()``). G
  translates once per iteration, as the reference: the D step's translations (detached, through the pools, for the
  Ds) are the G step's (``reuse_fakes``), whose GAN terms see the updated Ds. ``d_calls``: separate (the reference)
  or joint.
- Penalties (gp, r1, r2, dragan, cr, bcr, ...) are taken per D on its own domain (``routed_penalties``):
  ``reg/<name>_a`` is D_A's on real B and pooled fake B, ``reg/<name>_b`` D_B's on real A and pooled fake A, each
  with a critic that runs that D alone; both are added, so each D gets its own penalty at the full weight. A
  penalty that never calls its critic (reg=l2, reg=ortho: over both Ds' kernels) is taken once, as ``reg/<name>``.
  reg=zcr (no latent z), PacGAN packing and optim.simultaneous (D sees pooled, older fakes) are refused.
- Augmentation (diffaug, ADA) runs on every D input with independent draws; ADA's p follows both Ds' real logits.
- The pools' images, fill counts and random streams are in the checkpoint (``family_state``): resume is exact.
- Samples: ``sample(n)`` translates n test images of A (uniform, with replacement) to B, so FID/KID compare
  G_A(A_test) with domain B's test split; grids (``grid_images``) show rows A, G_A(A), G_B(G_A(A)) of a fixed test
  batch. Both use the evaluation generator (EMA of both Gs if ema.decay > 0) in eval mode.
- Metrics (``CycleMetrics``): ``cycle_l1/aba_<split><n>`` = mean |G_B(G_A(A)) - A| over the split's A images,
  ``cycle_l1/bab_<split><n>`` likewise for B; with labels and a domain classifier (digits2tinted: trained on domain
  B) ``class_acc/domain_ab_<split><n>``: the fraction of G_A(A) the classifier gives A's label.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from ganbench.consistency import ZCR
from ganbench.errors import ConfigError
from ganbench.families.common import split_output
from ganbench.families.gan import GAN
from ganbench.families.image_pool import ImagePool, pool_seed
from ganbench.families.pix2pix import _check_weight, first_inputs, grid_rows, l1_term, refuse_latent_options
from ganbench.metrics.unpaired import CycleMetrics, images_and_labels

UNPAIRED_DATA = ("data=digits2tinted (embedded grey <-> tinted digits) or data=unpaired (a folder with trainA, trainB, "
                 "testA, testB)")
#: domain -> the reference's letter of the D judging its images (D_A judges B) = of the G making them (G_A makes B)
JUDGE = {"b": "a", "a": "b"}
#: domain -> the other one
OTHER = {"a": "b", "b": "a"}
#: source domain -> the generator translating it (G.ab = G_A: A -> B)
TRANSLATOR = {"a": "ab", "b": "ba"}


class CycleGenerators(nn.Module):
    """G_A (``ab``: A -> B) and G_B (``ba``: B -> A) in one module: one optimizer, one EMA for both."""

    def __init__(self, ab: nn.Module, ba: nn.Module):
        super().__init__()
        self.ab, self.ba = ab, ba

    def forward(self, a: Tensor) -> Tensor:
        return self.ab(a)


class CycleDiscriminators(nn.Module):
    """D_A (``a``: judges domain B) and D_B (``b``: judges domain A) in one module: one optimizer for both."""

    def __init__(self, a: nn.Module, b: nn.Module):
        super().__init__()
        self.a, self.b = a, b

    def forward(self, x: Tensor) -> Tensor:
        return self.a(x)


def routed_penalties(name: str, reg, critics: Mapping[str, Callable], reals: Mapping[str, Tensor],
                     fakes: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``reg``'s penalty for each D with its own critic and domain: ``reg/<name>_a`` (D_A: domain B) and
    ``reg/<name>_b`` (D_B: domain A). A penalty that never calls its critic is about the nets' weights (reg=l2,
    reg=ortho over both Ds): taken once, as ``reg/<name>``."""
    terms = {}
    for domain, critic in critics.items():
        calls = []

        def counted(x: Tensor, critic=critic, calls=calls) -> Tensor:
            calls.append(1)
            return critic(x)

        term = reg.penalty(counted, reals[domain], fakes[domain])
        if term is None:
            continue
        if not calls:
            return {f"reg/{name}": term}
        terms[f"reg/{name}_{JUDGE[domain]}"] = term
    return terms


def _check_count(key: str, value: Any, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigError(f"family.{key} must be an integer >= {least}; got {value!r}")
    return value


class CycleGAN(GAN):
    """CycleGAN (see the module docstring). Options: conf/family/cyclegan.yaml."""

    supports_pack = False
    reuse_fakes = True  # optimize_parameters: one forward (fake_B, fake_A) for G's step and, detached, D's

    def __init__(self, generator: nn.Module, discriminator: nn.Module, *, fixed_a: Tensor | None = None,
                 test_a: Dataset | None = None, lambda_a: float = 10.0, lambda_b: float = 10.0,
                 lambda_identity: float = 0.5, d_loss_weight: float = 0.5, gan_weight: float = 1.0,
                 pool_size: int = 50, grid_images: int = 8, cycle_metrics: bool = True,
                 metric_images: int | None = None, **kwargs: Any):
        if fixed_a is None or test_a is None:
            raise ConfigError("family=cyclegan needs the test images of A (fixed_a, test_a from build_networks)")
        refuse_latent_options("cyclegan", kwargs)
        super().__init__(generator, discriminator, **kwargs)
        if self.simultaneous:
            raise ConfigError("optim.simultaneous=true: family=cyclegan's Ds see pooled, older fakes, so D and G "
                              "cannot share one step; use optim.simultaneous=false")
        for name, reg in self.regularizers.items():
            if isinstance(reg, ZCR):
                raise ConfigError(f"reg={name} perturbs G's latent z, and CycleGAN's Gs take images, no z: "
                                  f"family=cyclegan does not support it")
        self.lambda_a, self.lambda_b = _check_weight("lambda_a", lambda_a), _check_weight("lambda_b", lambda_b)
        self.lambda_identity = _check_weight("lambda_identity", lambda_identity)
        self.d_loss_weight = _check_weight("d_loss_weight", d_loss_weight)
        self.gan_weight = _check_weight("gan_weight", gan_weight)
        size = _check_count("pool_size", pool_size, 0)
        self.pools = {d: ImagePool(size, pool_seed(self.seed, d)) for d in ("b", "a")}
        self.register_buffer("fixed_a", fixed_a.float())
        self.test_a = test_a
        self.grid_columns = len(fixed_a)  # one row each for A, G_A(A), G_B(G_A(A))
        self.cycle_metrics = CycleMetrics(metric_images) if cycle_metrics else None

    @classmethod
    def check_pack(cls, pack: Any, batch_size: int) -> int:
        if isinstance(pack, (int, float)) and not isinstance(pack, bool) and pack > 1:
            raise ConfigError(f"family.pack={pack}: family=cyclegan's Ds score single images against a pool of "
                              f"older fakes, so PacGAN's packing does not apply (keep family.pack=1); packing works "
                              f"with family=gan and family=infogan")
        return super().check_pack(pack, batch_size)

    @classmethod
    def build_networks(cls, cfg, datamodule, d_kwargs: dict, options: dict) -> tuple[nn.Module, nn.Module, dict]:
        """G_A, G_B from ``model.generator``; D_A (on B's shape), D_B (on A's) from ``model.discriminator``; the
        extra kwargs carry the test images of A."""
        from ganbench.build import instantiate_or_explain

        cls.check_pack(options.get("pack", 1), int(cfg.optim.batch_size))
        if not getattr(datamodule, "unpaired", False):
            raise ConfigError(f"family=cyclegan trains on unpaired data (domains A and B); data={datamodule.name} "
                              f"has no two domains: use {UNPAIRED_DATA}")
        if not cfg.model.get("translation", False):
            raise ConfigError(f"family=cyclegan needs an image-to-image model whose G takes an image "
                              f"(model=cyclegan: ResNet G and PatchGAN; or model=pix2pix); got "
                              f"model={cfg.model.get('name', '?')}")
        k = _check_count("grid_images", options.get("grid_images", 8), 1)
        a_shape, b_shape = tuple(datamodule.input_shape), tuple(datamodule.shape)
        if a_shape[0] != b_shape[0]:
            raise ConfigError(f"family=cyclegan needs domains A and B with one channel count (G_A also translates "
                              f"B in the identity loss); data={datamodule.name} has {a_shape[0]} (A) and "
                              f"{b_shape[0]} (B): set data.input_channels and data.channels alike")
        if a_shape != b_shape:
            raise ConfigError(f"family=cyclegan needs domains A and B of one size; data={datamodule.name} has "
                              f"{a_shape} (A) and {b_shape} (B)")
        make_g = lambda: instantiate_or_explain(cfg.model.generator, data_shape=b_shape,  # noqa: E731
                                                input_channels=a_shape[0])
        make_d = lambda: instantiate_or_explain(cfg.model.discriminator, data_shape=b_shape, **d_kwargs)  # noqa
        G, D = CycleGenerators(make_g(), make_g()), CycleDiscriminators(make_d(), make_d())
        test_a = datamodule.domain("A", "test")
        if len(test_a) == 0:
            raise ConfigError(f"family=cyclegan needs test images of A (sample grids, metrics); "
                              f"data={datamodule.name} has none")
        fixed_a, _ = images_and_labels(test_a, 0, min(k, len(test_a)))
        return G, D, {"fixed_a": fixed_a, "test_a": test_a}

    # -- what G and D receive ---------------------------------------------------------------------------------------
    def sample_inputs(self, n: int) -> dict[str, Tensor]:
        """n test images of A drawn uniformly with replacement (what ``sample(n)`` translates for FID/KID)."""
        idx = torch.randint(len(self.test_a), (int(n),))
        return {"a": first_inputs(self.test_a, idx).to(self.device)}

    def g_inputs(self, n: int, real_cond: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {"a": real_cond["a"], "b": real_cond["b"]}

    def fixed_inputs(self) -> dict[str, Tensor]:
        return {"a": self.fixed_a}

    def generate(self, inputs: Mapping[str, Tensor], net: nn.Module | None = None):
        """The translations of every domain in ``inputs`` (keyed by source), keyed by target domain: both given
        (training) -> {"b": G_A(A), "a": G_B(B)}; one given (samples) -> its translation as a tensor."""
        if not inputs or set(inputs) - set(TRANSLATOR):
            raise ValueError("family=cyclegan translates images: G's inputs are 'a' and/or 'b' (no latent z)")
        net = net if net is not None else self.G
        out = {OTHER[src]: getattr(net, TRANSLATOR[src])(x) for src, x in inputs.items()}
        return out if len(out) > 1 else next(iter(out.values()))

    def real_inputs(self, batch) -> tuple[Tensor, dict[str, Tensor]]:
        a, b = batch
        return b, {"a": a, "b": b}

    def judge(self, domain: str, x: Tensor) -> Tensor:
        """(N, patches) logits of the D judging ``domain`` (D_A for "b") on ``x`` in [-1, 1]: augmented, D's range."""
        return getattr(self.D, JUDGE[domain])(self.to_d(self.augment(x))).flatten(1)

    def judge_pair(self, domain: str, real: Tensor, fake: Tensor, joint: bool) -> tuple[Tensor, Tensor]:
        if not joint:
            return self.judge(domain, real), self.judge(domain, fake)
        return split_output(self.judge(domain, torch.cat([real, fake])), real.shape[0])

    def domain_critic(self, domain: str) -> Callable[[Tensor], Tensor]:
        """The critic the penalties of ``domain``'s D call: images in D's range."""
        return lambda x: self.judge(domain, self.from_d(x))

    # -- the losses -------------------------------------------------------------------------------------------------
    def d_adversarial(self, real_out, fake_out) -> Tensor:
        return self.d_loss_weight * super().d_adversarial(real_out, fake_out)

    def g_adversarial(self, fake_out, real_out) -> Tensor:
        return self.gan_weight * super().g_adversarial(fake_out, real_out)

    def d_loss_terms(self, real: Tensor, real_cond: dict, fake, fake_cond: dict, inputs: dict) -> tuple:
        """(both Ds' real logits, both Ds' fake logits, D's loss terms): D_A on real B vs pooled G_A(A), D_B on
        real A vs pooled G_B(B) (the pools queried in the reference's order, B's first), the penalties per D."""
        reals = {"b": real_cond["b"], "a": real_cond["a"]}
        fakes = {d: self.pools[d].query(fake[d]) for d in ("b", "a")}
        terms, real_outs, fake_outs = {}, [], []
        for d in ("b", "a"):
            real_out, fake_out = self.judge_pair(d, reals[d], fakes[d], self.joint_d_step)
            terms[f"loss/d_{JUDGE[d]}"] = self.d_adversarial(real_out, fake_out)
            real_outs.append(real_out)
            fake_outs.append(fake_out)
        critics = {d: self.domain_critic(d) for d in ("b", "a")}
        d_reals = {d: self.d_inputs(x) for d, x in reals.items()}
        d_fakes = {d: self.d_inputs(x) for d, x in fakes.items()}
        for name, reg in self.regularizers.items():
            if self.d_step % reg.interval == 0:
                due = routed_penalties(name, reg, critics, d_reals, d_fakes)
                terms.update({k: v * reg.interval for k, v in due.items()})
        return torch.cat(real_outs, 1), torch.cat(fake_outs, 1), terms

    def g_terms(self, fake, fake_out, inputs: dict) -> dict[str, Tensor]:
        """Cycle L1 both ways (lambda_A, lambda_B) and, if lambda_identity > 0, the identity L1 of each G on its
        target domain (G_A(B) vs B weighted lambda_B * lambda_idt, as ``backward_G``)."""
        a, b = inputs["a"], inputs["b"]
        terms = {"loss/cycle_a": l1_term(self.G.ba(fake["b"]), a, self.lambda_a),
                 "loss/cycle_b": l1_term(self.G.ab(fake["a"]), b, self.lambda_b)}
        if self.lambda_identity > 0:
            terms["loss/idt_a"] = l1_term(self.G.ab(b), b, self.lambda_b * self.lambda_identity)
            terms["loss/idt_b"] = l1_term(self.G.ba(a), a, self.lambda_a * self.lambda_identity)
        return terms

    def generator_step(self, batch_size: int, real: Tensor, real_cond: dict | None = None) -> dict[str, Tensor]:
        """Both Gs in one step: GAN terms of D_A(G_A(A)) and D_B(G_B(B)), cycle and identity terms."""
        self.D.requires_grad_(False)  # G's step needs D's input gradients only
        try:
            inputs, fake = self.generator_fakes(batch_size, real_cond or {})
            needs_real = self.joint_g_step or getattr(self.loss, "needs_real_in_g_step", False)
            terms = {}
            for d in ("b", "a"):
                if self.joint_g_step:
                    real_out, fake_out = self.judge_pair(d, inputs[d], fake[d], True)
                else:
                    fake_out = self.judge(d, fake[d])
                    real_out = self.judge(d, inputs[d]) if needs_real else None
                terms[f"loss/g_{JUDGE[d]}"] = self.g_adversarial(fake_out, real_out)
            terms.update(self.g_terms(fake, None, inputs))
            terms.update(self.regularizer_g_terms(inputs, fake))
            self.update_generator(terms)
        finally:
            self.D.requires_grad_(True)
        self.g_step += 1
        return terms

    # -- checkpointed state -----------------------------------------------------------------------------------------
    def family_state(self) -> dict:
        return {"pools": {d: pool.state() for d, pool in self.pools.items()}}

    def load_family_state(self, state: dict) -> None:
        for d, pool_state in (state.get("pools") or {}).items():
            self.pools[d].load_state(pool_state)

    # -- samples and metrics ----------------------------------------------------------------------------------------
    def sample_grid_images(self) -> Tensor:
        """The sample grid: the fixed test images of A, G_A(A), G_B(G_A(A)) (``grid_columns`` per row)."""
        fake_b = self.sample(inputs={"a": self.fixed_a})
        return grid_rows(self.fixed_a, fake_b, self.sample(inputs={"b": fake_b}))

    def extra_metrics(self, evaluator) -> dict[str, float]:
        if self.cycle_metrics is None:
            return {}
        return self.cycle_metrics(evaluator, lambda source, x: self.sample(inputs={source: x}))

    def extra_protocol(self) -> dict:
        protocol = {"fid_samples": "G_A(A) for test images A drawn uniformly with replacement, vs domain B",
                    "lambda_a": self.lambda_a, "lambda_b": self.lambda_b, "lambda_identity": self.lambda_identity,
                    "d_loss_weight": self.d_loss_weight, "gan_weight": self.gan_weight,
                    "pool_size": self.pools["b"].size}
        if self.cycle_metrics is not None and self.cycle_metrics.protocol():
            protocol["cycle_metrics"] = self.cycle_metrics.protocol()
        return protocol
