"""Class-conditional GANs: ``family=conditional``. G(z, y) and D(x, y) see the data's class labels.

References (git snapshots): SNP = pfnet-research/sngan_projection@e84b1a5f604de5fec268f37c3f26478e80b7f475, BG =
ajbrock/BigGAN-PyTorch@98459431a5d618d644d54cd1e9fceb1e5045648d, SG =
POSTECH-CVLab/PyTorch-StudioGAN@947b35e9835b67860fdce44d337f6d7fee7c8db3. The networks are in
``ganbench/nets/conditioning.py``, the metrics in ``ganbench/metrics/conditional.py``.

- Labels: real batches are (x, y) with y in [0, K), K = ``datamodule.num_classes`` (for the 2-D mixtures the
  component count; ``family.num_classes`` must agree). Fake labels are drawn uniformly (``fake_labels=uniform``:
  SNP ``source/miscs/random_samples.py::sample_categorical``, SG ``utils/sample.py`` "totally_random") or from the
  training split's class frequencies (``fake_labels=data``), one per fake, in the D and the G step.
- G: ``g_cond=concat`` (y's code concatenated to z) or ``cbn`` (class-conditional batch norm; with
  ``shared_embedding`` BigGAN's shared embedding). D: ``d_cond=projection``, ``acgan`` or ``concat``.
- ACGAN (``d_cond=acgan``; SG ``src/worker.py`` L306-317 and L574-584): D adds ac_weight * CE(cls(x_real), y_real)
  (``loss/ac_real``) and, with ``ac_on_fake=true`` (Odena et al.'s original; SG#74), ac_weight * CE(cls(x_fake),
  y_fake) (``loss/ac_fake``); ``ac_on_fake=false`` is SG's ACGAN-Mod. G adds ac_weight * CE(cls(G(z, y)), y)
  (``loss/ac_g``). CE is the batch mean of the softmax cross-entropy (SG ``utils/losses.py::CrossEntropyLoss``).
- Penalties (gp, dragan, dragan_lucic, r1, r2) see D(x, y) with the reals' labels (SG passes ``real_labels`` to
  ``cal_grad_penalty``, ``cal_dra_penalty`` and R1), so a GP interpolate between real i and fake i is scored as
  class y_real[i]; R2, which scores the fake batch itself, gets the fakes' labels (the critic recognises the fake
  batch by value).
- Sample grids: ``fixed_inputs`` is K blocks of m = max(1, samples.num // K) images, block c of class c, column j
  with the same fixed z_j in every block; ``grid_columns = m`` is the row length that puts one class per row.
- PacGAN packing is refused (each sample has its own label).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganbench.errors import ConfigError
from ganbench.families.gan import GAN
from ganbench.metrics.conditional import ClassMetrics, class_frequencies, split_labels
from ganbench.nets.conditioning import (ACGANDiscriminator, CBNGenerator, ConcatDiscriminator, ConcatGenerator,
                                        ProjectionDiscriminator)

FAKE_LABELS = ("uniform", "data")
LABELLED = ("ring8, grid25, digits, polygons, mnist, fashion_mnist, cifar10, cifar100, stl10 with "
            "data.train_split=train, folder with data.labels=subdirs")


# -- the formulas (pure functions) ---------------------------------------------------------------------------------
def sample_labels(n: int, num_classes: int, probs: Tensor | None = None, device=None) -> Tensor:
    """n labels, uniform over [0, K) or drawn from ``probs`` (K,)."""
    if probs is None:
        return torch.randint(num_classes, (n,), device=device)
    return torch.multinomial(probs, n, replacement=True)


def ac_d_terms(real_cls: Tensor, real_y: Tensor, fake_cls: Tensor, fake_y: Tensor, weight: float,
               on_fake: bool) -> dict[str, Tensor]:
    """ACGAN's class terms of D's loss: the reals' cross-entropy, and with ``on_fake`` the fakes' too."""
    terms = {"loss/ac_real": weight * F.cross_entropy(real_cls, real_y)}
    if on_fake:
        terms["loss/ac_fake"] = weight * F.cross_entropy(fake_cls, fake_y)
    return terms


def ac_g_terms(fake_cls: Tensor, fake_y: Tensor, weight: float) -> dict[str, Tensor]:
    """ACGAN's class term of G's loss: the fakes classified as the class they were generated for."""
    return {"loss/ac_g": weight * F.cross_entropy(fake_cls, fake_y)}


def grid_inputs(fixed_z: Tensor, num_classes: int, per_class: int) -> dict[str, Tensor]:
    """K blocks of ``per_class`` samples: block c has label c, sample j of every block the latent fixed_z[j]."""
    z = fixed_z[:per_class]
    return {"z": z.repeat(num_classes, 1),
            "y": torch.arange(num_classes, device=z.device).repeat_interleave(len(z))}


# -- options and data ---------------------------------------------------------------------------------------------
def _optional_size(options: Mapping, key: str) -> int | None:
    value = options.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigError(f"family.{key} must be an integer >= 1 or null; got {value!r}")
    return value


def check_options(options: Mapping) -> None:
    """Every option's value, before anything is built."""
    for key, allowed in (("g_cond", G_CONDITIONS), ("d_cond", D_CONDITIONS), ("fake_labels", FAKE_LABELS)):
        if options.get(key) not in allowed:
            raise ConfigError(f"family.{key} must be one of {', '.join(allowed)}; got {options.get(key)!r}")
    for key in ("embed_dim", "shared_embedding", "num_classes"):
        _optional_size(options, key)
    if options.get("shared_embedding") is not None and options["g_cond"] != "cbn":
        raise ConfigError(f"family.shared_embedding feeds conditional batch norm: it needs family.g_cond=cbn; got "
                          f"family.g_cond={options['g_cond']}")
    weight = options.get("ac_weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
        raise ConfigError(f"family.ac_weight must be a number >= 0; got {weight!r}")


def data_num_classes(datamodule) -> int | None:
    """K of the data: ``num_classes``, or for a Gaussian mixture (ring8, grid25) its component count."""
    k = getattr(datamodule, "num_classes", None)
    if not k and hasattr(datamodule, "modes"):
        k = len(datamodule.modes)
    return int(k) if k else None


def resolve_num_classes(datamodule, requested: int | None) -> int:
    k = data_num_classes(datamodule)
    if k is None:
        raise ConfigError(f"family=conditional needs class labels; data={datamodule.name} has none (labelled: "
                          f"{LABELLED})")
    if requested is not None and int(requested) != k:
        raise ConfigError(f"family.num_classes={requested} but data={datamodule.name} has {k} classes; set "
                          f"family.num_classes=null (the data's) or {k}")
    return k


# -- networks: one builder per option ------------------------------------------------------------------------------
def _concat_generator(cfg, shape: tuple, k: int, options: Mapping, name: str) -> nn.Module:
    from ganbench.build import instantiate_or_explain

    extra = ConcatGenerator.extra_dim(k, options.get("embed_dim"))
    inner = instantiate_or_explain(cfg.model.generator, z_dim=cfg.optim.z_dim + extra, data_shape=shape)
    return ConcatGenerator(inner, k, options.get("embed_dim"))


#: ``model.conditional`` values whose G takes ``num_classes`` itself: ``native`` (class-conditional only, BigGAN),
#: ``optional`` (unconditional under family=gan, conditional here: StyleGAN2)
NATIVE = ("native", "optional")


def _native_generator(cfg, shape: tuple, k: int, options: Mapping, name: str) -> nn.Module:
    """A G that conditions itself (``model.conditional: native|optional``, e.g. BigGAN's shared embedding and cBN)."""
    from ganbench.build import instantiate_or_explain

    if options["g_cond"] != "cbn" or options.get("shared_embedding") is not None:
        raise ConfigError(f"{name} conditions its generator itself (model.conditional=native); leave family.g_cond=cbn "
                          f"and family.shared_embedding=null (set the model's own options, e.g. "
                          f"model.generator.shared_dim)")
    return instantiate_or_explain(cfg.model.generator, z_dim=cfg.optim.z_dim, data_shape=shape, num_classes=k)


def _cbn_generator(cfg, shape: tuple, k: int, options: Mapping, name: str) -> nn.Module:
    from ganbench.build import instantiate_or_explain

    if cfg.model.get("conditional") in NATIVE:
        return _native_generator(cfg, shape, k, options, name)
    inner = instantiate_or_explain(cfg.model.generator, z_dim=cfg.optim.z_dim, data_shape=shape)
    return CBNGenerator(inner, k, options.get("shared_embedding"), name=name)


def _head_discriminator(wrapper: type) -> Callable[..., nn.Module]:
    def build(cfg, shape: tuple, k: int, d_kwargs: dict, options: Mapping, name: str) -> nn.Module:
        from ganbench.build import instantiate_or_explain

        if cfg.model.get("native_d") and wrapper is ProjectionDiscriminator:  # D projects y itself (StyleGAN2 cmap)
            return instantiate_or_explain(cfg.model.discriminator, data_shape=shape, num_classes=k, **d_kwargs)
        return wrapper(instantiate_or_explain(cfg.model.discriminator, data_shape=shape, **d_kwargs), k, name=name)

    return build


def _concat_discriminator(cfg, shape: tuple, k: int, d_kwargs: dict, options: Mapping, name: str) -> nn.Module:
    from ganbench.build import instantiate_or_explain

    d_shape = ConcatDiscriminator.extra_shape(shape, k, options.get("embed_dim"))
    inner = instantiate_or_explain(cfg.model.discriminator, data_shape=d_shape, **d_kwargs)
    return ConcatDiscriminator(inner, k, options.get("embed_dim"))


G_CONDITIONS: dict[str, Callable[..., nn.Module]] = {"cbn": _cbn_generator, "concat": _concat_generator}
D_CONDITIONS: dict[str, Callable[..., nn.Module]] = {"projection": _head_discriminator(ProjectionDiscriminator),
                                                     "acgan": _head_discriminator(ACGANDiscriminator),
                                                     "concat": _concat_discriminator}


class Conditional(GAN):
    """Class-conditional GAN (see the module docstring). Options: conf/family/conditional.yaml."""

    supports_pack = False
    native_conditioning = True  # takes models whose G conditions itself (model.conditional: native)

    def __init__(self, generator: nn.Module, discriminator: nn.Module, *, num_classes: int | None = None,
                 fake_labels: str = "uniform", g_cond: str = "cbn", d_cond: str = "projection",
                 embed_dim: int | None = None, shared_embedding: int | None = None, ac_weight: float = 1.0,
                 ac_on_fake: bool = False, class_metrics: bool = True, class_num_fake: int | None = None,
                 class_kid_subsets: int = 10, classifier: str | None = None,
                 class_frequencies: list[float] | None = None, **kwargs: Any):
        check_options({"g_cond": g_cond, "d_cond": d_cond, "fake_labels": fake_labels, "embed_dim": embed_dim,
                       "shared_embedding": shared_embedding, "ac_weight": ac_weight, "num_classes": num_classes})
        if num_classes is None:
            raise ConfigError("family=conditional needs num_classes (build_networks takes it from the data)")
        super().__init__(generator, discriminator, **kwargs)
        self.num_classes = int(num_classes)
        self.g_cond, self.d_cond, self.fake_labels = g_cond, d_cond, fake_labels
        self.auxiliary = d_cond == "acgan"
        self.ac_weight, self.ac_on_fake = float(ac_weight), bool(ac_on_fake)
        if fake_labels == "data":
            if class_frequencies is None or len(class_frequencies) != self.num_classes:
                raise ConfigError("family.fake_labels=data needs the data's class frequencies (from build_networks)")
            self.register_buffer("class_probs", torch.as_tensor(class_frequencies, dtype=torch.float64))
        else:
            self.class_probs = None
        self.grid_columns = max(1, len(self.fixed_z) // self.num_classes)  # images per row of the sample grid
        self.class_metrics = ClassMetrics(self.num_classes, class_num_fake, class_kid_subsets, classifier) \
            if class_metrics else None
        self._pair_fake: Tensor | None = None

    @classmethod
    def check_pack(cls, pack: Any, batch_size: int) -> int:
        if isinstance(pack, (int, float)) and not isinstance(pack, bool) and pack > 1:
            raise ConfigError(f"family.pack={pack}: family=conditional scores every sample with its own label, so "
                              f"PacGAN's packing does not apply (keep family.pack=1); packing works with family=gan "
                              f"and family=infogan")
        return super().check_pack(pack, batch_size)

    @classmethod
    def build_networks(cls, cfg, datamodule, d_kwargs: dict, options: dict) -> tuple[nn.Module, nn.Module, dict]:
        """(G, D) wrapped for ``g_cond`` and ``d_cond``; the extra kwargs carry K (and the class frequencies)."""
        check_options(options)
        cls.check_pack(options.get("pack", 1), int(cfg.optim.batch_size))
        k = resolve_num_classes(datamodule, options.get("num_classes"))
        shape, name = tuple(datamodule.shape), f"model={cfg.model.get('name', '?')}"
        G = G_CONDITIONS[options["g_cond"]](cfg, shape, k, options, name)
        D = D_CONDITIONS[options["d_cond"]](cfg, shape, k, d_kwargs, options, name)
        extra: dict = {"num_classes": k}
        if options["fake_labels"] == "data":
            extra["class_frequencies"] = class_frequencies(split_labels(datamodule, "train"), k).tolist()
        return G, D, extra

    # -- what G and D receive ---------------------------------------------------------------------------------------
    def sample_labels(self, n: int) -> Tensor:
        return sample_labels(n, self.num_classes, self.class_probs, self.device)

    def sample_inputs(self, n: int) -> dict[str, Tensor]:
        return {"z": self.sample_z(n), "y": self.sample_labels(n)}

    def fixed_inputs(self) -> dict[str, Tensor]:
        return grid_inputs(self.fixed_z, self.num_classes, self.grid_columns)

    def generate(self, inputs: Mapping[str, Tensor], net: nn.Module | None = None) -> Tensor:
        if "y" not in inputs:
            raise ValueError("family=conditional generates from inputs with 'z' and 'y' (class labels)")
        return (net if net is not None else self.G)(inputs["z"], inputs["y"])

    def real_inputs(self, batch) -> tuple[Tensor, dict[str, Tensor]]:
        x, y = batch
        return x, {"y": y}

    def fake_condition(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {"y": inputs["y"]}

    def discriminate_pair(self, real: Tensor, real_cond: dict, fake: Tensor, fake_cond: dict, *args, **kwargs):
        self._pair_fake = fake.detach()  # for penalty_critic: which batch is the fake one
        return super().discriminate_pair(real, real_cond, fake, fake_cond, *args, **kwargs)

    def penalty_critic(self, real_cond: Mapping[str, Tensor], fake_cond: Mapping[str, Tensor]) -> Callable:
        """D(x, y) for the penalties: the fakes' labels on the fake batch itself (R2), the reals' otherwise."""
        fake, self._pair_fake = self._pair_fake, None
        fake = None if fake is None else self.d_inputs(fake)  # the fake batch as the penalties receive it

        def critic(x: Tensor) -> Tensor:
            is_fake = fake is not None and x.shape == fake.shape and torch.equal(x, fake.to(x.dtype))
            return self.critic(x, {"y": (fake_cond if is_fake else real_cond)["y"]})

        critic.fake = lambda x: self.critic(x, {"y": fake_cond["y"]})
        return critic

    # -- ACGAN's terms ----------------------------------------------------------------------------------------------
    def d_terms(self, real_out, fake_out, real_cond: dict, inputs: dict) -> dict[str, Tensor]:
        if not self.auxiliary:
            return {}
        return ac_d_terms(real_out["cls"], real_cond["y"], fake_out["cls"], inputs["y"], self.ac_weight,
                          self.ac_on_fake)

    def g_terms(self, fake: Tensor, fake_out, inputs: dict) -> dict[str, Tensor]:
        return ac_g_terms(fake_out["cls"], inputs["y"], self.ac_weight) if self.auxiliary else {}

    # -- metrics ----------------------------------------------------------------------------------------------------
    def sample_class(self, c: int, n: int) -> Tensor:
        """n samples of class c from the evaluation generator."""
        y = torch.full((n,), int(c), dtype=torch.long, device=self.device)
        with self.evaluation_prior():
            z = self.sample_z(n)
        return self.sample(inputs={"z": z, "y": y})

    def extra_metrics(self, evaluator) -> dict[str, float]:
        return {} if self.class_metrics is None else self.class_metrics(evaluator, self.sample_class)

    def extra_protocol(self) -> dict:
        protocol = self.class_metrics.protocol() if self.class_metrics is not None else {}
        return {"class_metrics": protocol} if protocol else {}
