"""pix2pix (Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial Networks"): ``family=pix2pix``.

Reference: junyanz/pytorch-CycleGAN-and-pix2pix@032e88438b1b2690e538c2cf399ebceb76adbea9 ``models/pix2pix_model.py``
(``backward_D``, ``backward_G``, ``optimize_parameters``), ``models/networks.py`` (``GANLoss``); the nets are in
``ganbench/nets/unet.py`` and ``ganbench/nets/patchgan.py``, the data in ``ganbench/data/paired.py``, the metrics in
``ganbench/metrics/paired.py``.

- Data: batches of pairs (A, B) (``data=edges2digits``, ``data=paired``); anything else is refused. G's input is
  the batch's A (no latent z; dropout in G is the only noise, as in the reference).
- D is conditional: it scores cat(A, X) along channels, X = B (real) or G(A) (fake), and returns one logit per
  patch (PatchGAN). Every loss of conf/loss averages over all patches and samples, as ``GANLoss``'s
  ``BCEWithLogitsLoss``/``MSELoss`` (mean reduction) do.
- D's loss: ``d_loss_weight`` (0.5) * loss.discriminator(D(A, B), D(A, G(A))): ``backward_D``'s
  ``(loss_D_fake + loss_D_real) * 0.5``. With loss=ns this is exactly the reference's ``vanilla`` loss; ganbench's
  loss=ls already carries Mao et al.'s 1/2, so pix2pix's halving makes it 1/4 (the reference's ``lsgan``: 1/2).
  Penalties are added unhalved.
- G's loss: loss.generator(D(A, G(A))) + ``l1_weight`` (100, ``--lambda_L1``) * mean |G(A) - B| (``loss/l1``).
  loss=ns is the reference's ``vanilla`` G loss (BCE against "real").
- Step order: D then G on the same batch (``optimize_parameters``); ``d_calls: separate`` as the reference (one D
  call on the fakes, one on the reals; the G step scores the fakes only). G runs once per iteration: the D step's
  G(A) (detached for D) is the G step's, as the reference's fake_B (``reuse_fakes``).
- Augmentation (``augment=diffaug``, ADA): one draw covers A and X of a pair. The augmentation runs on X, then the
  random stream is rewound and it runs on A, so every random parameter (colour factors, translation, cutout) is
  the same for both; applying it to cat(A, X) instead would mix A's and X's channels in the colour transforms
  (saturation and contrast average over channels). This needs the augmentation to draw from the global torch
  stream with draws shaped by N, H, W only, as DiffAugment does.
- Penalties (gp, r1, dragan, ...) see D(A, x) with the reals' A: the gradient is taken with respect to the B-side
  image only (a GP interpolate of B and G(A) keeps A). reg=cr/bcr (they would transform B without A, teaching D to
  accept misaligned pairs) and reg=zcr (no z) are refused. PacGAN packing is refused.
- Samples: ``fixed_inputs`` are the first ``grid_pairs`` test pairs' A; ``sample_grid_images`` gives the rows
  input | output | target. ``sample(n)`` (what the shared evaluator calls for FID/KID) translates n test inputs
  A drawn uniformly with replacement, so FID/KID compare G(A_test) with the B of the reference split. Samples and
  metrics use the evaluation generator in eval mode (batch-norm running statistics, no dropout); the reference's
  test.py keeps train mode unless ``--eval``.
- Metrics (``ganbench/metrics/paired.py``): PSNR, SSIM, L1 of every test translation against its B, and for
  labelled targets the domain classifier's agreement.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset, TensorDataset

from ganbench.consistency import BCR, CR, ZCR
from ganbench.errors import ConfigError
from ganbench.families.gan import GAN
from ganbench.metrics.paired import PairedMetrics, pair_batches

PAIRED_DATA = ("data=edges2digits (embedded), data=paired (a folder of A|B pairs) or "
               "experiment=quickstart_pix2pix")

#: regularizer class -> why family=pix2pix refuses it
UNSUPPORTED_REGULARIZERS = {
    CR: "transforms B without A while D scores cat(A, B), which teaches D to accept misaligned pairs",
    BCR: "transforms B and G(A) without A while D scores cat(A, .), which teaches D to accept misaligned pairs",
    ZCR: "perturbs G's latent z, and pix2pix's G takes an image A, no z",
}

#: family options of the latent-z families -> what they are: the image-to-image families' Gs take an image, no z
LATENT_OPTIONS = {"codes": "InfoGAN's latent codes", "info_weight": "InfoGAN's mutual-information weights",
                  "continuous_loss": "InfoGAN's continuous-code likelihood", "code_samples": "InfoGAN's code metric"}

#: device type -> (get the default generator's state, set it)
RNG: dict[str, tuple[Callable, Callable]] = {
    "cpu": (lambda device: torch.get_rng_state(), lambda device, state: torch.set_rng_state(state)),
    "cuda": (lambda device: torch.cuda.get_rng_state(device), lambda device, s: torch.cuda.set_rng_state(s, device)),
}


# -- the formulas (pure functions) -----------------------------------------------------------------------------------
def paired_augment(augment: nn.Module, a: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    """(augment(a), augment(x)) with the same random draw for both: x first, then the stream is rewound for a."""
    if isinstance(augment, nn.Identity):
        return a, x
    if x.device.type not in RNG:
        raise ConfigError(f"family=pix2pix replays the augmentation's random draw on {', '.join(RNG)} devices; "
                          f"got {x.device.type} (use augment=none)")
    get, put = RNG[x.device.type]
    before = get(x.device)
    x_aug = augment(x)
    after = get(x.device)
    put(x.device, before)
    a_aug = augment(a)
    put(x.device, after)
    return a_aug, x_aug


def l1_term(fake: Tensor, target: Tensor, weight: float) -> Tensor:
    """weight * mean |G(A) - B| (``torch.nn.L1Loss`` times ``lambda_L1``)."""
    return weight * (fake - target).abs().mean()


def as_channels(x: Tensor, channels: int) -> Tensor:
    return x.expand(-1, channels, -1, -1) if x.shape[1] != channels else x


def grid_rows(a: Tensor, fake: Tensor, b: Tensor) -> Tensor:
    """The rows input | output | target of a sample grid, grey images repeated to the widest channel count."""
    c = max(a.shape[1], fake.shape[1], b.shape[1])
    return torch.cat([as_channels(t.to(fake.device, fake.dtype), c) for t in (a, fake, b)])


def first_inputs(pairs: Dataset, idx: Tensor) -> Tensor:
    """The A of the pairs at ``idx``."""
    if isinstance(pairs, TensorDataset):
        return pairs.tensors[0][idx]
    return torch.stack([pairs[int(i)][0] for i in idx])


def refuse_latent_options(family: str, options: Mapping[str, Any]) -> None:
    """One ConfigError for an option of InfoGAN (``LATENT_OPTIONS``) given to an image-to-image family."""
    for key, what in LATENT_OPTIONS.items():
        if key in options:
            raise ConfigError(f"family.{key}: {what} act on G's latent z, and family={family}'s G takes an image (no "
                              f"z): remove family.{key} (InfoGAN is family=infogan)")


def _check_weight(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ConfigError(f"family.{key} must be a number >= 0; got {value!r}")
    return float(value)


class Pix2Pix(GAN):
    """pix2pix (see the module docstring). Options: conf/family/pix2pix.yaml."""

    supports_pack = False
    reuse_fakes = True  # optimize_parameters: one forward, fake_B used by backward_D (detached) and backward_G
    primary_metric = "psnr"  # against the ground truth B (families.md 10.3); the best checkpoint follows it

    def __init__(self, generator: nn.Module, discriminator: nn.Module, *, fixed_a: Tensor | None = None,
                 fixed_b: Tensor | None = None, test_pairs: Dataset | None = None, l1_weight: float = 100.0,
                 d_loss_weight: float = 0.5, grid_pairs: int = 8, paired_metrics: bool = True,
                 metric_pairs: int | None = None, **kwargs: Any):
        if fixed_a is None or fixed_b is None or test_pairs is None:
            raise ConfigError("family=pix2pix needs the test pairs (fixed_a, fixed_b, test_pairs from build_networks)")
        refuse_latent_options("pix2pix", kwargs)
        super().__init__(generator, discriminator, **kwargs)
        for name, reg in self.regularizers.items():
            for kind, why in UNSUPPORTED_REGULARIZERS.items():
                if isinstance(reg, kind):
                    raise ConfigError(f"reg={name} {why}: family=pix2pix does not support it")
        self.l1_weight = _check_weight("l1_weight", l1_weight)
        self.d_loss_weight = _check_weight("d_loss_weight", d_loss_weight)
        self.register_buffer("fixed_a", fixed_a.float())
        self.register_buffer("fixed_b", fixed_b.float())
        self.test_pairs = test_pairs
        self.grid_columns = len(fixed_a)  # one row each for input, output, target
        self.paired_metrics = PairedMetrics(metric_pairs) if paired_metrics else None

    @classmethod
    def check_pack(cls, pack: Any, batch_size: int) -> int:
        if isinstance(pack, (int, float)) and not isinstance(pack, bool) and pack > 1:
            raise ConfigError(f"family.pack={pack}: family=pix2pix's D scores each input A with its own output, so "
                              f"PacGAN's packing does not apply (keep family.pack=1); packing works with family=gan "
                              f"and family=infogan")
        return super().check_pack(pack, batch_size)

    @classmethod
    def build_networks(cls, cfg, datamodule, d_kwargs: dict, options: dict) -> tuple[nn.Module, nn.Module, dict]:
        """G(A) with B's shape and A's channels; D on A's + B's channels; the extra kwargs carry the test pairs."""
        from ganbench.build import instantiate_or_explain

        cls.check_pack(options.get("pack", 1), int(cfg.optim.batch_size))
        if not getattr(datamodule, "paired", False):
            raise ConfigError(f"family=pix2pix trains on paired data (A, B); data={datamodule.name} has no pairs: use "
                              f"{PAIRED_DATA}")
        if not cfg.model.get("translation", False):
            raise ConfigError(f"family=pix2pix needs an image-to-image model whose G takes an image (model=pix2pix: "
                              f"U-Net and PatchGAN); got model={cfg.model.get('name', '?')}")
        k = options.get("grid_pairs", 8)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"family.grid_pairs must be an integer >= 1 (test pairs in the sample grid); got {k!r}")
        b_shape, a_shape = tuple(datamodule.shape), tuple(datamodule.input_shape)
        if a_shape[1:] != b_shape[1:]:
            raise ConfigError(f"family=pix2pix needs A and B of the same size; data={datamodule.name} gives A "
                              f"{a_shape} and B {b_shape} (super-resolution pairs: family=srgan)")
        G = instantiate_or_explain(cfg.model.generator, data_shape=b_shape, input_channels=a_shape[0])
        D = instantiate_or_explain(cfg.model.discriminator, data_shape=(a_shape[0] + b_shape[0], *b_shape[1:]),
                                   **d_kwargs)
        test = datamodule.pairs("test")
        if len(test) == 0:
            raise ConfigError(f"family=pix2pix needs test pairs (sample grids, metrics); data={datamodule.name} has "
                              f"none (data.test_fraction > 0)")
        fixed_a, fixed_b = next(pair_batches(test, min(k, len(test)), k))
        return G, D, {"fixed_a": fixed_a, "fixed_b": fixed_b, "test_pairs": test}

    # -- what G and D receive ---------------------------------------------------------------------------------------
    def sample_inputs(self, n: int) -> dict[str, Tensor]:
        """n test inputs A drawn uniformly with replacement (what ``sample(n)`` translates for FID/KID)."""
        idx = torch.randint(len(self.test_pairs), (int(n),))
        return {"a": first_inputs(self.test_pairs, idx).to(self.device)}

    def g_inputs(self, n: int, real_cond: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {"a": real_cond["a"], "b": real_cond["b"]}

    def fixed_inputs(self) -> dict[str, Tensor]:
        return {"a": self.fixed_a}

    def generate(self, inputs: Mapping[str, Tensor], net: nn.Module | None = None) -> Tensor:
        if "a" not in inputs:
            raise ValueError("family=pix2pix translates an input image: G's inputs need 'a' (no latent z)")
        return (net if net is not None else self.G)(inputs["a"])

    def real_inputs(self, batch) -> tuple[Tensor, dict[str, Tensor]]:
        a, b = batch
        return b, {"a": a, "b": b}  # b rides along for G's L1 term (g_inputs)

    def fake_condition(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {"a": inputs["a"], "b": inputs["b"]}

    def d_input(self, a: Tensor, x: Tensor) -> Tensor:
        """cat(A, X) along channels as D sees it: one augmentation draw for both, then D's range."""
        a, x = paired_augment(self.augment, a, x)
        return torch.cat([self.to_d(a), self.to_d(x)], 1)

    def discriminate(self, x: Tensor, cond: Mapping[str, Tensor]) -> Tensor:
        """(N, patches) logits of D(cat(A, x)); ``x`` in [-1, 1]."""
        return self.D(self.d_input(cond["a"], x)).flatten(1)

    def critic(self, x: Tensor, cond: Mapping[str, Tensor] | None = None) -> Tensor:
        """D's patch logits for the penalties: ``x`` (the B side) in D's range, A from ``cond`` (the reals')."""
        return self.discriminate(self.from_d(x), cond)

    # -- the losses -------------------------------------------------------------------------------------------------
    def d_adversarial(self, real_out, fake_out) -> Tensor:
        return self.d_loss_weight * super().d_adversarial(real_out, fake_out)

    def g_terms(self, fake: Tensor, fake_out, inputs: dict) -> dict[str, Tensor]:
        return {"loss/l1": l1_term(fake, inputs["b"], self.l1_weight)}

    # -- samples and metrics ----------------------------------------------------------------------------------------
    def sample_grid_images(self) -> Tensor:
        """The sample grid: the fixed test inputs, their translations, their targets (``grid_columns`` per row)."""
        return grid_rows(self.fixed_a, self.sample(inputs=self.fixed_inputs()), self.fixed_b)

    def extra_metrics(self, evaluator) -> dict[str, float]:
        if self.paired_metrics is None:
            return {}
        return self.paired_metrics(evaluator, lambda a: self.sample(inputs={"a": a}))

    def extra_protocol(self) -> dict:
        protocol = {"fid_samples": "G(A) for test inputs A drawn uniformly with replacement, vs the reference B",
                    "l1_weight": self.l1_weight, "d_loss_weight": self.d_loss_weight}
        if self.paired_metrics is not None and self.paired_metrics.protocol():
            protocol["paired_metrics"] = self.paired_metrics.protocol()
        return protocol
