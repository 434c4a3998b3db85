"""SRGAN (Ledig et al. 2017, "Photo-Realistic Single Image Super-Resolution Using a Generative Adversarial
Network"): ``family=srgan``.

Reference: open-mmlab/mmagic@0a560bba9b79ebe78574e1d4cbbdd0e798e63568 ``mmagic/models/editors/srgan/srgan.py``
(``SRGAN.g_step``, ``d_step_real``, ``d_step_fake``, ``train_step``) and
``configs/srgan_resnet/srgan_x4c64b16_1xb16-1000k_div2k.py`` (pixel L1 weight 1e-2, perceptual VGG19 layer '34'
weight 1.0, ``GANLoss`` vanilla weight 5e-3 on G only, Adam 1e-4 (0.9, 0.999) for both nets, G initialised from a
trained MSRResNet: ``msrresnet_x4c64b16_1xb16-1000k_div2k.py``, pixel L1 weight 1.0); ``evaluation/metrics/psnr.py``
and ``metrics_utils.py::img_transform`` (border crop, Y). The nets are in ``ganbench/nets/srresnet.py``, the data in
``ganbench/data/sr.py``, the perceptual loss and LPIPS in ``ganbench/perceptual.py``.

- Data: batches of (LR, HR) from a super-resolution datamodule (``data=sr_patches``, ``data=sr``; anything without
  ``scale`` is refused). G maps LR (C, H/s, W/s) to HR (C, H, W), no latent z.
- D is unconditional, as SRGAN's: it scores HR images only (reals HR, fakes G(LR)); one logit per image. D's loss
  is the ``loss`` group's, unweighted (``GANLoss``'s weight applies to G only); ``d_calls: separate`` as the
  reference (D on the reals, then on the fakes).
- G's loss: ``adv_weight`` (5e-3) * loss.generator(D(G(LR))) (``loss/g``; loss=ns is the reference's
  ``vanilla``) + ``content_weight`` * content(G(LR), HR) (``loss/content``; ``content: l1`` mean |.| or ``mse``)
  + ``perceptual_weight`` * L1 of VGG19 conv5_4 features (``loss/perceptual``, only when > 0; see
  ``ganbench/perceptual.py``). The content and perceptual terms see images mapped from [-1, 1] to [0, 1], the
  reference's range (its DataPreprocessor divides by 255), so the weights keep the reference's ratios. The default,
  content 1.0 + adversarial 5e-3 without VGG, runs offline; mmagic's full recipe is ``family.content_weight=0.01
  family.perceptual_weight=1.0`` with VGG19 weights.
- ``pretrain_steps`` k: the first k G steps train G on the content term alone (no D step, no adversarial or
  perceptual term; D's weights and optimizer untouched), as SRGAN's SRResNet pretraining (mmagic loads a trained
  MSRResNet instead). They count as G steps; each consumes one batch, so ``d_step`` (the batches consumed, where
  the resumable data stream restarts) runs k ahead of D's updates. The phase is a function of ``g_step`` alone,
  so a resumed run continues exactly. Training stops at ``optim.g_steps`` G steps (pretraining included).
- Step order: ganbench's D then G on one batch; the reference updates G first and then D on the same fakes.
- Penalties (gp, r1, dragan, cr, bcr, ...) see D on HR images as in family=gan; reg=zcr (no z) and PacGAN packing
  are refused.
- Samples: ``fixed_inputs`` are the first ``grid_pairs`` test LRs; the grid's rows are bicubic-upsampled LR | SR |
  HR. ``sample(n)`` (FID/KID) upscales the first n test LRs in order (cycled if n exceeds the split), so FID/KID
  compare G(LR_test) with the HR images of the reference split.
- Metrics (``extra_metrics``, on ``metrics.split``): PSNR and SSIM of G(LR) against HR, and of the bicubic
  upsampling (the baseline, ``*_bicubic``), with ``scale`` pixels cropped from every border, on Y (ITU-R BT.601,
  Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255 on [0, 1], as mmcv's ``rgb2ycbcr`` in mmagic; grey data is its
  own luma) or RGB (``metric_channels``), data range 1, no rounding to 8 bits; SSIM is torchmetrics' (Gaussian
  window 11, narrower for borders-cropped images under 11 px, sigma 1.5). LPIPS (AlexNet, torchmetrics) only when
  its backbone weights are in the torch hub cache; otherwise skipped with one log line.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from ganbench.consistency import ZCR
from ganbench.data.sr import bicubic_up
from ganbench.errors import ConfigError
from ganbench.families.gan import GAN
from ganbench.families.pix2pix import first_inputs, grid_rows, refuse_latent_options
from ganbench.metrics.paired import PSNR_CAP_DB, pair_batches, to_unit

log = logging.getLogger("ganbench")

SR_DATA = "data=sr_patches (embedded photo crops) or data=sr (data.base=<an image data config>, data.root=DIR)"

#: ``content`` -> the mean error of images in [0, 1]
CONTENTS: dict[str, Callable[[Tensor], Tensor]] = {"l1": lambda d: d.abs().mean(), "mse": lambda d: d.square().mean()}
BT601 = (65.481, 128.553, 24.966)


# -- the formulas (pure functions) -----------------------------------------------------------------------------------
def content_term(sr: Tensor, hr: Tensor, kind: str, weight: float) -> Tensor:
    """weight * mean error of SR and HR on [0, 1]: (x + 1) / 2 differences are (sr - hr) / 2."""
    return weight * CONTENTS[kind]((sr - hr) / 2)


def rgb_to_y(x01: Tensor) -> Tensor:
    """(N, 3, H, W) RGB in [0, 1] -> (N, 1, H, W) BT.601 luma in [16/255, 235/255]."""
    w = torch.tensor(BT601, dtype=x01.dtype, device=x01.device).view(1, 3, 1, 1)
    return (16.0 + (x01 * w).sum(1, keepdim=True)) / 255.0


def crop_border(x: Tensor, border: int) -> Tensor:
    return x[..., border:-border, border:-border] if border > 0 else x


def metric_view(x: Tensor, channels: str, border: int) -> Tensor:
    """Images in [-1, 1] as the SR metrics see them: [0, 1], Y (of RGB) or as they are, border cropped."""
    x01 = to_unit(x)
    if channels == "y" and x01.shape[1] == 3:
        x01 = rgb_to_y(x01)
    return crop_border(x01, border)


def sr_psnr(sr: Tensor, hr: Tensor, channels: str, border: int) -> Tensor:
    """Per-image PSNR (N,) in dB: 10 log10(1 / MSE) on the metric view, capped at PSNR_CAP_DB."""
    mse = (metric_view(sr, channels, border) - metric_view(hr, channels, border)).square().flatten(1).mean(1)
    return (10 * torch.log10(1 / mse)).clamp(max=PSNR_CAP_DB)


def ssim_kernel(side: int) -> int:
    return 11 if side >= 11 else (side if side % 2 else side - 1)


def sr_ssim(sr: Tensor, hr: Tensor, channels: str, border: int) -> Tensor:
    """Per-image SSIM (N,) on the metric view (torchmetrics, data range 1)."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    a, b = metric_view(sr, channels, border), metric_view(hr, channels, border)
    k = ssim_kernel(min(a.shape[-2:]))
    return structural_similarity_index_measure(a, b, data_range=1.0, kernel_size=k, reduction="none")


def check_weight(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ConfigError(f"family.{key} must be a number >= 0; got {value!r}")
    return float(value)


# -- the metrics ---------------------------------------------------------------------------------------------------
class SRMetrics:
    """``__call__(evaluator, upscale, scale)`` with ``upscale(lr) -> G(lr)``: PSNR, SSIM (SR and bicubic), LPIPS."""

    def __init__(self, channels: str = "y", num_pairs: int | None = None):
        if channels not in ("y", "rgb"):
            raise ConfigError(f"family.metric_channels must be y (BT.601 luma) or rgb; got {channels!r}")
        if num_pairs is not None and (isinstance(num_pairs, bool) or not isinstance(num_pairs, int) or num_pairs < 1):
            raise ConfigError(f"family.metric_pairs must be an integer >= 1 or null (every pair of the split); "
                              f"got {num_pairs!r}")
        self.channels, self.num_pairs = channels, num_pairs
        self._lpips: nn.Module | bool | None = None  # None: not tried yet; False: unavailable
        self._lpips_note = ""
        self._protocol: dict = {}

    def lpips(self, device) -> nn.Module | None:
        if self._lpips is None:
            from ganbench.perceptual import lpips_available, lpips_metric

            ok, why = lpips_available()
            try:
                self._lpips = lpips_metric() if ok else False
            except Exception as err:  # noqa: BLE001 - a metric must never stop a run
                ok, why, self._lpips = False, f"{type(err).__name__}: {err}", False
            if not ok:
                self._lpips_note = why
                log.info("family=srgan: LPIPS skipped: %s", why)
        return self._lpips.to(device) if self._lpips else None

    @torch.no_grad()
    def __call__(self, ev, upscale: Callable[[Tensor], Tensor], scale: int) -> dict[str, float]:
        from ganbench.metrics.evaluator import count_label

        ev.setup()
        pairs = ev.datamodule.pairs(ev.split)
        n = min(self.num_pairs or len(pairs), len(pairs))
        c, border = self.channels, scale
        lpips = self.lpips(ev.device)
        if lpips is not None:
            lpips.reset()
        sums = dict.fromkeys((f"{m}_{c}{p}" for p in ("", "_bicubic") for m in ("psnr", "ssim")), 0.0)
        for lr, hr in pair_batches(pairs, n, ev.batch_size):
            sr, hr = upscale(lr).detach().to(ev.device).float(), hr.to(ev.device)
            if not torch.isfinite(sr).all():
                sums, lpips = dict.fromkeys(sums, math.nan), None
                break
            bicubic = bicubic_up(lr.to(ev.device), scale)
            for tail, x in (("", sr), ("_bicubic", bicubic)):
                sums[f"psnr_{c}{tail}"] += float(sr_psnr(x, hr, c, border).double().sum())
                sums[f"ssim_{c}{tail}"] += float(sr_ssim(x, hr, c, border).double().sum())
            if lpips is not None:
                lpips.update(*(to_unit(t).expand(-1, 3, -1, -1) if t.shape[1] == 1 else to_unit(t) for t in (sr, hr)))
        suffix = f"{ev.split}{count_label(n)}"
        values = {f"{k}/{suffix}": v / n for k, v in sums.items()}
        if lpips is not None:
            values[f"lpips/{suffix}"] = float(lpips.compute())
        self._protocol = {
            "split": ev.split, "num_pairs": n, "generator": "evaluation generator (EMA if any), eval mode",
            "channels": "y: ITU-R BT.601 luma (16 + 65.481 R + 128.553 G + 24.966 B) / 255 of RGB in [0, 1]"
                        if c == "y" else "rgb: every channel", "border_crop": border, "data_range": 1,
            "psnr": f"per image, mean over images; MSE 0 counted as {PSNR_CAP_DB:g} dB",
            "ssim": "torchmetrics structural_similarity_index_measure (gaussian, sigma 1.5, window 11 or the cropped "
                    "side if smaller), per image, mean over images",
            "bicubic": "the baseline: LR upsampled by torch bicubic (align_corners false), clamped",
            "lpips": "torchmetrics AlexNet, RGB [0, 1], no border crop" if lpips is not None else
            f"skipped: {self._lpips_note or 'outputs not finite'}"}
        return values

    def protocol(self) -> dict:
        return dict(self._protocol)


# -- the family ----------------------------------------------------------------------------------------------------
class SRGAN(GAN):
    """SRGAN (see the module docstring). Options: conf/family/srgan.yaml."""

    supports_pack = False
    reuse_fakes = True  # mmagic's SRGAN train_step: one G forward, used by G's loss and, detached, by D's

    def __init__(self, generator: nn.Module, discriminator: nn.Module, *, fixed_lr: Tensor | None = None,
                 fixed_hr: Tensor | None = None, test_pairs: Dataset | None = None, scale: int | None = None,
                 content: str = "l1", content_weight: float = 1.0, adv_weight: float = 5e-3,
                 perceptual_weight: float = 0.0, perceptual_weights: str | None = None, perceptual_layer: int = 34,
                 pretrain_steps: int = 0, grid_pairs: int = 8, sr_metrics: bool = True, metric_channels: str = "y",
                 metric_pairs: int | None = None, **kwargs: Any):
        if fixed_lr is None or fixed_hr is None or test_pairs is None or scale is None:
            raise ConfigError("family=srgan needs the test pairs and scale (fixed_lr, fixed_hr, test_pairs, scale "
                              "from build_networks)")
        refuse_latent_options("srgan", kwargs)
        super().__init__(generator, discriminator, **kwargs)
        for name, reg in self.regularizers.items():
            if isinstance(reg, ZCR):
                raise ConfigError(f"reg={name} perturbs G's latent z, and SRGAN's G takes an LR image, no z: "
                                  f"family=srgan does not support it")
        if content not in CONTENTS:
            raise ConfigError(f"family.content must be one of {', '.join(CONTENTS)}; got {content!r}")
        if isinstance(pretrain_steps, bool) or not isinstance(pretrain_steps, int) or pretrain_steps < 0:
            raise ConfigError(f"family.pretrain_steps must be an integer >= 0 (G steps on the content loss alone); "
                              f"got {pretrain_steps!r}")
        self.content, self.pretrain_steps, self.scale = content, pretrain_steps, int(scale)
        self.content_weight = check_weight("content_weight", content_weight)
        self.adv_weight = check_weight("adv_weight", adv_weight)
        self.perceptual_weight = check_weight("perceptual_weight", perceptual_weight)
        self.perceptual = None
        if self.perceptual_weight > 0:
            from ganbench.perceptual import PerceptualLoss

            self.perceptual = PerceptualLoss(self.perceptual_weight, perceptual_weights, perceptual_layer)
        self.register_buffer("fixed_lr", fixed_lr.float())
        self.register_buffer("fixed_hr", fixed_hr.float())
        self.test_pairs = test_pairs
        self.grid_columns = len(fixed_lr)  # one row each for bicubic, SR, HR
        self.sr_metrics = SRMetrics(metric_channels, metric_pairs) if sr_metrics else None
        self.primary_metric = f"psnr_{metric_channels}"  # SR's PSNR against HR; the best checkpoint follows it
        self.g_steps_target = int(self.optim_cfg.get("g_steps") or 0)

    @classmethod
    def check_pack(cls, pack: Any, batch_size: int) -> int:
        if isinstance(pack, (int, float)) and not isinstance(pack, bool) and pack > 1:
            raise ConfigError(f"family.pack={pack}: family=srgan's D scores single HR images, one logit each, so "
                              f"PacGAN's packing is not offered (keep family.pack=1); packing works with family=gan "
                              f"and family=infogan")
        return super().check_pack(pack, batch_size)

    @classmethod
    def build_networks(cls, cfg, datamodule, d_kwargs: dict, options: dict) -> tuple[nn.Module, nn.Module, dict]:
        """G(LR) with HR's shape, D on HR; the extra kwargs carry the test pairs and the scale."""
        from ganbench.build import instantiate_or_explain

        cls.check_pack(options.get("pack", 1), int(cfg.optim.batch_size))
        scale = getattr(datamodule, "scale", None)
        if not getattr(datamodule, "paired", False) or scale is None:
            raise ConfigError(f"family=srgan trains on super-resolution pairs (LR, HR); data={datamodule.name} has "
                              f"none: use {SR_DATA}")
        if not cfg.model.get("super_resolution", False):
            raise ConfigError(f"family=srgan needs a super-resolution model whose G upscales an image "
                              f"(model=srgan: SRResNet and a VGG-style D); got model={cfg.model.get('name', '?')}")
        k = options.get("grid_pairs", 8)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"family.grid_pairs must be an integer >= 1 (test pairs in the sample grid); got {k!r}")
        hr_shape, lr_shape = tuple(datamodule.shape), tuple(datamodule.input_shape)
        if lr_shape[0] != hr_shape[0] or tuple(s * scale for s in lr_shape[1:]) != hr_shape[1:]:
            raise ConfigError(f"family=srgan needs LR = HR downscaled by data.scale={scale} with the same channels; "
                              f"data={datamodule.name} gives LR {lr_shape} and HR {hr_shape}")
        G = instantiate_or_explain(cfg.model.generator, data_shape=hr_shape, scale=scale, input_channels=lr_shape[0])
        D = instantiate_or_explain(cfg.model.discriminator, data_shape=hr_shape, **d_kwargs)
        test = datamodule.pairs("test")
        if len(test) == 0:
            raise ConfigError(f"family=srgan needs test pairs (sample grids, metrics); data={datamodule.name} has none")
        fixed_lr, fixed_hr = next(pair_batches(test, min(k, len(test)), k))
        return G, D, {"fixed_lr": fixed_lr, "fixed_hr": fixed_hr, "test_pairs": test, "scale": scale}

    # -- what G and D receive ---------------------------------------------------------------------------------------
    def sample_inputs(self, n: int) -> dict[str, Tensor]:
        """The first n test LRs in order (cycled): what ``sample(n)`` upscales for FID/KID."""
        idx = torch.arange(int(n)) % len(self.test_pairs)
        return {"lr": first_inputs(self.test_pairs, idx).to(self.device)}

    def g_inputs(self, n: int, real_cond: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {"lr": real_cond["lr"], "hr": real_cond["hr"]}

    def fixed_inputs(self) -> dict[str, Tensor]:
        return {"lr": self.fixed_lr}

    def generate(self, inputs: Mapping[str, Tensor], net: nn.Module | None = None) -> Tensor:
        if "lr" not in inputs:
            raise ValueError("family=srgan upscales an LR image: G's inputs need 'lr' (no latent z)")
        return (net if net is not None else self.G)(inputs["lr"])

    def real_inputs(self, batch) -> tuple[Tensor, dict[str, Tensor]]:
        lr, hr = batch
        return hr, {"lr": lr, "hr": hr}  # they ride along to G's inputs and content term; D ignores them

    def fake_condition(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {"lr": inputs["lr"], "hr": inputs["hr"]}

    def discriminate(self, x: Tensor, cond: Mapping[str, Tensor]) -> Tensor:
        """D's (N,) logits on HR-sized images ``x`` in [-1, 1] (the augmentation, D's range); no condition."""
        return self.D(self.to_d(self.augment(x)))

    def critic(self, x: Tensor, cond: Mapping[str, Tensor] | None = None) -> Tensor:
        """D's logits for the penalties, ``x`` in D's range."""
        return self.D(self.to_d(self.augment(self.from_d(x))))

    # -- the losses -------------------------------------------------------------------------------------------------
    def g_adversarial(self, fake_out, real_out) -> Tensor:
        return self.adv_weight * super().g_adversarial(fake_out, real_out)

    def content_terms(self, fake: Tensor, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {"loss/content": content_term(fake, inputs["hr"], self.content, self.content_weight)}

    def g_terms(self, fake: Tensor, fake_out, inputs: dict) -> dict[str, Tensor]:
        terms = self.content_terms(fake, inputs)
        if self.perceptual is not None:
            terms["loss/perceptual"] = self.perceptual(fake, inputs["hr"])
        return terms

    # -- pretraining and the step -----------------------------------------------------------------------------------
    def pretrain_step(self, batch) -> dict[str, Tensor]:
        """One G update on the content term alone (SRResNet pretraining); D untouched."""
        real, real_cond = self.real_inputs(batch)
        inputs = self.g_inputs(real.shape[0], real_cond)
        terms = self.content_terms(self.generate(inputs), inputs)
        self.update_generator(terms)
        self.g_step += 1
        return terms

    def training_step(self, batch, batch_idx):
        if self.g_step >= self.pretrain_steps:
            super().training_step(batch, batch_idx)
        else:
            self.apply_lr_schedule()
            logs = self.pretrain_step(batch)
            self.d_step += 1  # the batches consumed (the data stream's position), not D's updates
            self.did_g_step = self.diverged is None
            if self.did_g_step and self.g_step % self.log_every == 0:
                self.log_scalars({k: float(v.detach()) for k, v in logs.items()})
        if self.did_g_step and self.g_steps_target and self.g_step >= self.g_steps_target:
            self.trainer.should_stop = True  # max_steps counts n_disc + 1 optimizer steps per G step; pretraining 1

    # -- samples and metrics ----------------------------------------------------------------------------------------
    def sample_grid_images(self) -> Tensor:
        """The sample grid: bicubic-upsampled fixed test LRs, their SR outputs, their HRs (``grid_columns`` per row)."""
        return grid_rows(bicubic_up(self.fixed_lr, self.scale), self.sample(inputs=self.fixed_inputs()),
                         self.fixed_hr)

    def extra_metrics(self, evaluator) -> dict[str, float]:
        if self.sr_metrics is None:
            return {}
        return self.sr_metrics(evaluator, lambda lr: self.sample(inputs={"lr": lr}), self.scale)

    def extra_protocol(self) -> dict:
        protocol = {"fid_samples": "G(LR) of the first n test LRs in order (cycled), vs the reference HR",
                    "scale": self.scale, "content": self.content, "content_weight": self.content_weight,
                    "adv_weight": self.adv_weight, "perceptual_weight": self.perceptual_weight,
                    "pretrain_steps": self.pretrain_steps}
        if self.perceptual is not None:
            protocol["perceptual"] = self.perceptual.protocol()
        if self.sr_metrics is not None and self.sr_metrics.protocol():
            protocol["sr_metrics"] = self.sr_metrics.protocol()
        return protocol
