"""Consistency regularization of the discriminator: ``reg=cr``, ``reg=bcr``, ``reg=zcr``.

References (git snapshots): SG = POSTECH-CVLab/PyTorch-StudioGAN@947b35e9835b67860fdce44d337f6d7fee7c8db3, DEG =
mit-han-lab/data-efficient-gans@0b6339510be1e3859d360cbf464d0a425514a6b4.

- CR (Zhang et al. 2020): lambda * MSE(D(x), D(T(x))) on the reals, SG ``src/worker.py`` L326-336 (``cr_lambda``).
  Nothing is detached: D's weights get gradients through both branches.
- bCR (Zhao et al. 2021, "Improved consistency regularization"): lambda_real * MSE(D(x), D(T(x))) +
  lambda_fake * MSE(D(G(z)), D(T(G(z)))), SG ``src/worker.py`` L339-354 (``real_lambda``, ``fake_lambda``). The
  fakes are scored with their own condition (``critic.fake``: the fake labels in family=conditional).
- zCR (Zhao et al. 2021): D adds lambda_dis * MSE(D(G(z)), D(G(z + eps))) (G(z + eps) without a graph to G, as SG's
  D step, where G's parameters do not require grad), G adds -lambda_gen * MSE(G(z), G(z + eps)) in data space (both
  with grad). eps = sigma * N(0, I) for a normal prior, sigma * U[-1, 1] for a uniform one, z + eps not clipped
  (SG ``src/utils/sample.py::sample_zy`` L80-84, ``radius``); SG ``src/worker.py`` L357-366 and L603-605. Only
  ``inputs["z"]`` is perturbed; labels and codes are kept.
- MSE is the mean over the batch of D's logits (``torch.nn.MSELoss``, SG ``worker.py`` L116) or over every pixel.

T, the CR transform (SG ``src/utils/cr.py::apply_cr_aug``): a horizontal flip with probability ``flip_p`` (0.5),
then an integer translation of each sample by (dy, dx), |dy| <= int(H * ratio), |dx| <= int(W * ratio) with
``ratio`` 1/8, the border filled by **reflect** padding (``padding: reflect``, SG). ``padding: zeros`` is DiffAugment's
translation (DEG ``DiffAugment-biggan-cifar/DiffAugment_pytorch.py::rand_translation``, used by DEG's CR with
``--CR_augment flip,translation``): shifts up to int(side * ratio + 0.5), the border filled with the middle of D's
input range (DiffAugment's 0 in [-1, 1]). Every draw is per sample; a PacGAN pack is unpacked first, so each image
of a pack gets its own T.

Differences from the reference code, by design:
- ganbench compares D's logits only. SG adds the same MSE on the class head (ACGAN's ``cls_output``) or the
  embedding (2C / D2DCE) outputs; ganbench's critic returns logits, so those terms are absent.
- D(x) and D(T(x)) both pass through ``augment`` (the critic applies it inside), with independent draws. SG scores
  D(series_augment(x)) against D(T(x)) (T not followed by DiffAugment/ADA); DEG scores D(A(x)) against D(T(A(x))).
  With ``augment=none`` (the CR/ICR papers' setting) all three agree. Likewise zCR's D(G(z + eps)) passes through
  ``augment`` (SG: not augmented). D(x) is a separate call from the adversarial loss's (SG reuses that output).
"""

from __future__ import annotations

from typing import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from ganbench.errors import ConfigError
from ganbench.families.common import logit
from ganbench.regularizers import Regularizer, _check_weight


# -- the transform (pure functions) --------------------------------------------------------------------------------
def flip_where(x: Tensor, mask: Tensor) -> Tensor:
    """Samples with ``mask`` (N,) true mirrored left-right; the others unchanged."""
    return torch.where(mask.view(-1, 1, 1, 1), x.flip(3), x)


def shift_reflect(x: Tensor, dy: Tensor, dx: Tensor, max_dy: int, max_dx: int) -> Tensor:
    """out[n, :, i, j] = pad(x)[n, :, i + dy_n, j + dx_n], pad = reflect padding by (max_dy, max_dx) (SG's cr.py):
    each sample shifted by its own integer offsets (N,), |dy| <= max_dy, |dx| <= max_dx."""
    n, c, h, w = x.shape
    padded = F.pad(x, [max_dx, max_dx, max_dy, max_dy], mode="reflect")
    rows = torch.arange(h, device=x.device).view(1, h, 1) + (dy.view(n, 1, 1) + max_dy)
    cols = torch.arange(w, device=x.device).view(1, 1, w) + (dx.view(n, 1, 1) + max_dx)
    index = (rows * padded.shape[3] + cols).view(n, 1, h * w).expand(-1, c, -1)
    return padded.flatten(2).gather(2, index).view_as(x)


def shift_fill(x: Tensor, dy: Tensor, dx: Tensor, fill: float) -> Tensor:
    """out[n, :, i, j] = x[n, :, i + dy_n, j + dx_n] where that pixel exists, ``fill`` elsewhere (DiffAugment)."""
    n, c, h, w = x.shape
    rows = torch.arange(h, device=x.device).view(1, h, 1) + dy.view(n, 1, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w) + dx.view(n, 1, 1)
    inside = ((rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)).unsqueeze(1)
    index = (rows.clamp(0, h - 1) * w + cols.clamp(0, w - 1)).view(n, 1, h * w).expand(-1, c, -1)
    shifted = x.flatten(2).gather(2, index).view_as(x)
    return torch.where(inside, shifted, torch.full_like(shifted, fill))


#: padding -> (largest shift for a side and a ratio, shift(x, dy, dx, max_dy, max_dx, fill))
PADDINGS: dict[str, tuple[Callable[[int, float], int], Callable[..., Tensor]]] = {
    "reflect": (lambda side, ratio: int(side * ratio),
                lambda x, dy, dx, my, mx, fill: shift_reflect(x, dy, dx, my, mx)),
    "zeros": (lambda side, ratio: int(side * ratio + 0.5),
              lambda x, dy, dx, my, mx, fill: shift_fill(x, dy, dx, fill)),
}


class CRTransform:
    """T(x): random h-flip (probability ``flip_p``), then a random integer translation up to ``ratio`` of each side
    with ``padding`` (see the module docstring); x is (N, C, H, W), every draw is per sample."""

    def __init__(self, flip_p: float = 0.5, ratio: float = 0.125, padding: str = "reflect", fill: float = 0.0):
        self.flip_p, self.ratio, self.padding, self.fill = flip_p, ratio, padding, fill
        self._max_shift, self._shift = PADDINGS[padding]

    def max_shifts(self, h: int, w: int) -> tuple[int, int]:
        return self._max_shift(h, self.ratio), self._max_shift(w, self.ratio)

    def __call__(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        x = flip_where(x, torch.rand(n, device=x.device) < self.flip_p)
        my, mx = self.max_shifts(h, w)
        dy = torch.randint(-my, my + 1, (n,), device=x.device)
        dx = torch.randint(-mx, mx + 1, (n,), device=x.device)
        return self._shift(x, dy, dx, my, mx, self.fill).contiguous()


def mse(a: Tensor, b: Tensor) -> Tensor:
    """Mean squared difference over every element (torch.nn.MSELoss, as SG's l2_loss), in float32 at least."""
    dtype = torch.promote_types(torch.promote_types(a.dtype, b.dtype), torch.float32)
    return F.mse_loss(a.to(dtype), b.to(dtype))


# -- CR and bCR --------------------------------------------------------------------------------------------------
class _TransformConsistency(Regularizer):
    """Shared by CR and bCR: the transform's options, the image check, per-image T inside a PacGAN pack."""

    name = "cr"

    def __init__(self, flip_p: float = 0.5, translation: float = 0.125, padding: str = "reflect"):
        n = self.name
        self.flip_p = float(flip_p)
        if not 0 <= self.flip_p <= 1:
            raise ConfigError(f"reg.{n}.flip_p must be a probability in [0, 1]; got {flip_p}")
        self.translation = float(translation)
        if not 0 <= self.translation <= 0.5:
            raise ConfigError(f"reg.{n}.translation must be a fraction of the side in [0, 0.5]; got {translation}")
        if padding not in PADDINGS:
            raise ConfigError(f"reg.{n}.padding must be one of {', '.join(PADDINGS)}; got {padding!r}")
        self.padding = padding
        self._shape: tuple[int, ...] | None = None

    def check_data(self, shape) -> None:
        shape = tuple(shape)
        if len(shape) != 3:
            raise ConfigError(f"reg={self.name} flips and translates images (C, H, W); the data holds vectors of "
                              f"shape {shape}: use it with image data")
        self._shape = shape

    def transform(self, x: Tensor) -> Tensor:
        """T on a batch as the critic takes it (D's range; packed): each image of a pack gets its own draw."""
        fill = (self.data_range[0] + self.data_range[1]) / 2
        t = CRTransform(self.flip_p, self.translation, self.padding, fill)
        channels = self._shape[0] if self._shape is not None else x.shape[1]
        m = x.shape[1] // channels
        images = x.reshape(x.shape[0] * m, channels, *x.shape[2:])
        return t(images).reshape(x.shape)

    def transform_protocol(self) -> dict:
        proto = {"transform": "hflip+translation", "flip_p": self.flip_p, "translation_ratio": self.translation,
                 "padding": self.padding, "outputs_compared": "logits",
                 "augment": "D(x) and D(T(x)) each pass through `augment` (independent draws)",
                 "source": "POSTECH-CVLab/PyTorch-StudioGAN@947b35e src/utils/cr.py, src/worker.py"}
        if self._shape is not None:
            proto["max_shift_px"] = list(CRTransform(ratio=self.translation, padding=self.padding)
                                         .max_shifts(*self._shape[1:]))
        return proto

    def consistency(self, critic, x: Tensor) -> Tensor:
        """MSE(D(x), D(T(x))), both branches with gradients to D."""
        return mse(critic(x), critic(self.transform(x.detach())))


class CR(_TransformConsistency):
    """``reg=cr``: weight * MSE(D(x), D(T(x))) on the reals (Zhang et al. 2020; SG ``cr_lambda`` 10)."""

    name = "cr"

    def __init__(self, weight: float = 10.0, flip_p: float = 0.5, translation: float = 0.125,
                 padding: str = "reflect"):
        super().__init__(flip_p, translation, padding)
        self.weight = _check_weight("cr.weight", weight)

    def penalty(self, critic, real, fake):
        return self.weight * self.consistency(critic, real)

    def protocol(self) -> dict:
        return {"weight": self.weight, **self.transform_protocol()}


class BCR(_TransformConsistency):
    """``reg=bcr``: real_weight * MSE(D(x), D(T(x))) + fake_weight * MSE(D(G(z)), D(T(G(z)))) (Zhao et al. 2021;
    SG ``real_lambda`` 10, ``fake_lambda`` 10). The fake term uses ``critic.fake`` (the fakes' condition)."""

    name = "bcr"

    def __init__(self, real_weight: float = 10.0, fake_weight: float = 10.0, flip_p: float = 0.5,
                 translation: float = 0.125, padding: str = "reflect"):
        super().__init__(flip_p, translation, padding)
        self.real_weight = _check_weight("bcr.real_weight", real_weight)
        self.fake_weight = _check_weight("bcr.fake_weight", fake_weight)

    def penalty(self, critic, real, fake):
        fake_critic = getattr(critic, "fake", critic)
        return (self.real_weight * self.consistency(critic, real)
                + self.fake_weight * self.consistency(fake_critic, fake))

    def protocol(self) -> dict:
        return {"real_weight": self.real_weight, "fake_weight": self.fake_weight, **self.transform_protocol()}


# -- zCR ---------------------------------------------------------------------------------------------------------
#: prior (optim.prior) -> the perturbation's unit noise, shaped like z (SG sample_zy: gaussian, uniform)
LATENT_NOISE: dict[str, Callable[[Tensor], Tensor]] = {
    "normal": torch.randn_like,
    "uniform": lambda z: torch.rand_like(z) * 2 - 1,
}


def perturb_latent(inputs: Mapping[str, Tensor], sigma: float, prior: str) -> dict[str, Tensor]:
    """G's inputs with z replaced by z + sigma * noise(prior); every other input (labels, codes) unchanged."""
    if prior not in LATENT_NOISE:
        raise ConfigError(f"reg=zcr perturbs z drawn from optim.prior in {', '.join(LATENT_NOISE)}; got {prior!r}")
    if "z" not in inputs:
        raise ConfigError(f"reg=zcr perturbs G's latent z; this family's generator inputs are {sorted(inputs)}")
    z = inputs["z"]
    return {**inputs, "z": z + sigma * LATENT_NOISE[prior](z)}


class ZCR(Regularizer):
    """``reg=zcr``: latent consistency (Zhao et al. 2021; SG CIFAR10 ``BigGAN-ICR.yaml``: radius 0.05, d_lambda 20,
    g_lambda 0.5). D: dis_weight * MSE(D(G(z)), D(G(z + eps))); G: -gen_weight * MSE(G(z), G(z + eps)).
    See the module docstring for eps and what has gradients."""

    def __init__(self, sigma: float = 0.05, gen_weight: float = 0.5, dis_weight: float = 20.0):
        self.sigma = _check_weight("zcr.sigma", sigma)
        self.gen_weight = _check_weight("zcr.gen_weight", gen_weight)
        self.dis_weight = _check_weight("zcr.dis_weight", dis_weight)

    def check_data(self, shape) -> None:
        """Images and vectors alike: the G term is an MSE in data space."""

    def d_step_term(self, gan, inputs, fake, fake_out):
        with torch.no_grad():
            fake_eps = gan.generate(perturb_latent(inputs, self.sigma, gan.optim_cfg["prior"]))
        out_eps = gan.discriminate(fake_eps, gan.fake_condition(inputs))
        return self.dis_weight * mse(logit(fake_out), logit(out_eps))

    def g_step_term(self, gan, inputs, fake):
        fake_eps = gan.generate(perturb_latent(inputs, self.sigma, gan.optim_cfg["prior"]))
        return -self.gen_weight * mse(fake, fake_eps)

    def protocol(self) -> dict:
        return {"sigma": self.sigma, "gen_weight": self.gen_weight, "dis_weight": self.dis_weight,
                "noise": "sigma * N(0, I) (optim.prior=normal) or sigma * U[-1, 1] (uniform); z + eps not clipped",
                "outputs_compared": "logits", "augment": "D(G(z + eps)) passes through `augment`",
                "source": "POSTECH-CVLab/PyTorch-StudioGAN@947b35e src/utils/sample.py::sample_zy, src/worker.py"}
