"""ProGAN's progressive growing (Karras et al. 2018): ``family=progan`` with ``model=progan``.

After tkarras/progressive_growing_of_gans@2504c3f (``train.py``, ``loss.py``, ``config.py``):

- Schedule (``train.py::TrainingSchedule``), from the real images shown, nimg (kimg = nimg / 1000): phase
  p = floor(kimg / (training_kimg + transition_kimg)), t = kimg - p (training_kimg + transition_kimg),
  lod = max(log2(side) - log2(initial_resolution) - p - max(t - training_kimg, 0) / transition_kimg, 0).
  The active resolution is 2^(log2(side) - floor(lod)); the reals of one D step are the first
  ``minibatch[resolution]`` of the loader's batch (``minibatch_dict``; the loader always yields optim.batch_size,
  the largest, and the rest of it is unused), and nimg grows by that many. As ``train_progressive_gan``, the
  schedule is re-evaluated every ``minibatch_repeats`` rounds of (n_disc D steps + 1 G step), and at each
  re-evaluation where floor(lod) or ceil(lod) changed both Adams are reset (``reset_opt_for_new_lod``: moments and
  step counts cleared, i.e. at the start and at the end of every fade).
- Reals (``process_reals``, ``FadeLOD`` + ``UpscaleLOD``): box-downscaled by 2^k (the official dataset stores
  2x2-box-filtered lower levels), cross-faded lerp(x, upscale2(downscale2(x)), f) and nearest-upsampled back to the
  full side, lod = k + f. G and D (``ganbench/nets/progan.py``) read the same lod from their ``lod`` buffer, which
  this family sets; G's EMA copies it with the other buffers (the official Gs also copies non-trainables).
- Loss (``loss.py::D_wgangp_acgan``): WGAN (loss=wgan), gradient penalty lambda 10 with target 1 (reg=gp; the
  official norm has no epsilon: reg.gp.eps=0, experiment=progan/celeba128 sets it) and ``drift`` * D(x_real)^2
  (epsilon_drift 0.001), added here as ``loss/drift``. Adam lr 1e-3, betas (0, 0.99), eps 1e-8 (``config.py``).
- Samples and metrics: G always emits full-size images (the current lod's output nearest-upsampled), as the
  official networks do, and D always takes full-size images; ``run_protocol()`` records it in result.json.
- Resume: nimg and the schedule's nimg are in the checkpoint (``family_state``); lod is derived from them, so a run
  killed mid-fade resumes exactly (the lod buffers and the optimizers' states are in the checkpoint too).

Why a subclass of the gan family and a buffer in the nets: the nets stay ordinary ganbench nets (G(z) -> full-size
images, D(x) -> logits, features/head), so losses, penalties, augmentations, EMA, metrics and checkpoints work
unchanged; only the schedule, the reals' fade, the batch slice and the optimizer reset are ProGAN's.

Where ganbench differs from the official code: ganbench's EMA (ema.decay 0.999 with its (1 + t) / (10 + t)
warm-up, updated after each G step; the official Gs uses 0.999 from a clone, updated with each D step); reals are
downscaled in float (the official lower levels are re-quantised to 8 bits); no mirror augmentation; training length
is optim.g_steps (see ``steps_for_kimg``); per-resolution learning rates (``G_lrate_dict``) are not offered.
"""

from __future__ import annotations

import math
from typing import Mapping

import torch
from torch import Tensor

from ganbench.errors import ConfigError
from ganbench.families.common import logit
from ganbench.families.gan import GAN
from ganbench.nets.progan import downscale, lerp, split_lod, upscale


def training_lod(nimg: float, res_log2: int, initial_resolution: int = 4, training_kimg: float = 600.0,
                 transition_kimg: float = 600.0) -> float:
    """The level of detail after ``nimg`` real images (``TrainingSchedule``)."""
    kimg = nimg / 1000.0
    phase_dur = training_kimg + transition_kimg
    phase = math.floor(kimg / phase_dur) if phase_dur > 0 else 0
    phase_kimg = kimg - phase * phase_dur
    lod = res_log2 - math.floor(math.log2(initial_resolution)) - phase
    if transition_kimg > 0:
        lod -= max(phase_kimg - training_kimg, 0.0) / transition_kimg
    return max(float(lod), 0.0)


def lod_resolution(lod: float, res_log2: int) -> int:
    return 2 ** (res_log2 - math.floor(lod))


def fade_reals(x: Tensor, lod: float) -> Tensor:
    """Full-size reals at ``lod`` = k + f: box-downscaled by 2^k, lerp(x, upscale2(downscale2(x)), f), nearest-
    upscaled by 2^k (``process_reals``)."""
    k, f = split_lod(lod)
    x = downscale(x, 2 ** k)
    if f > 0:
        x = lerp(x, upscale(downscale(x, 2), 2), f)
    return upscale(x, 2 ** k)


def lod_changed(lod: float, prev: float) -> bool:
    """Whether the official loop resets the optimizers going from ``prev`` to ``lod``."""
    return math.floor(lod) != math.floor(prev) or math.ceil(lod) != math.ceil(prev)


def reset_optimizer_state(optimizer) -> None:
    """Forget Adam's moments and step counts (TF ``reset_optimizer_state``); param groups (lr, betas) stay."""
    getattr(optimizer, "optimizer", optimizer).state.clear()


def steps_for_kimg(total_kimg: float, res_log2: int, minibatch: Mapping[int, int], default_batch: int,
                   minibatch_repeats: int = 4, **schedule) -> int:
    """Rounds of (D step, G step) until ``total_kimg`` thousand reals were shown (n_disc 1): optim.g_steps for an
    official total_kimg."""
    nimg, steps = 0, 0
    while nimg < total_kimg * 1000:
        res = lod_resolution(training_lod(nimg, res_log2, **schedule), res_log2)
        nimg += minibatch.get(res, default_batch) * minibatch_repeats
        steps += minibatch_repeats
    return steps


class ProGAN(GAN):
    """Progressive growing of ``model=progan``'s G and D; otherwise the gan family's loop."""

    def __init__(self, generator, discriminator, *args, initial_resolution: int = 4, training_kimg: float = 600.0,
                 transition_kimg: float = 600.0, minibatch: Mapping | None = None, minibatch_repeats: int = 4,
                 reset_optimizers: bool = True, drift: float = 0.001, **kwargs):
        super().__init__(generator, discriminator, *args, **kwargs)
        self.res_log2 = int(generator.res_log2)
        side = 2 ** self.res_log2
        if not (isinstance(initial_resolution, int) and 4 <= initial_resolution <= side
                and initial_resolution & (initial_resolution - 1) == 0):
            raise ConfigError(f"family.initial_resolution must be a power of two in [4, {side}] (the data's side); "
                              f"got {initial_resolution!r}")
        for key, value in (("training_kimg", training_kimg), ("transition_kimg", transition_kimg), ("drift", drift)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"family.{key} must be a number >= 0; got {value!r}")
        if not (isinstance(minibatch_repeats, int) and minibatch_repeats >= 1):
            raise ConfigError(f"family.minibatch_repeats must be an integer >= 1 (official: 4); got "
                              f"{minibatch_repeats!r}")
        self.growth = {"initial_resolution": initial_resolution, "training_kimg": float(training_kimg),
                       "transition_kimg": float(transition_kimg)}
        self.minibatch = self.check_minibatch(minibatch or {}, int(self.optim_cfg["batch_size"]), side,
                                              getattr(discriminator, "mbstd_group_size", 0), self.pack)
        self.minibatch_repeats, self.reset_optimizers, self.drift = minibatch_repeats, bool(reset_optimizers), drift
        self.nimg = 0        # real images shown to D
        self.sched_nimg = 0  # nimg when the schedule was last evaluated
        self.apply_lod(self.lod)

    @staticmethod
    def check_minibatch(minibatch: Mapping, batch_size: int, side: int, group: int, pack: int) -> dict[int, int]:
        """resolution -> reals per D step, every one in [1, batch_size], a multiple of ``pack``, and (in packs) of
        the minibatch-std group or smaller than it."""
        sizes = {2 ** r: batch_size for r in range(2, int(math.log2(side)) + 1)}
        for res, b in dict(minibatch).items():
            if int(res) not in sizes:
                raise ConfigError(f"family.minibatch has resolution {res}; the data's are {', '.join(map(str, sizes))}")
            if not (isinstance(b, int) and 1 <= b <= batch_size):
                raise ConfigError(f"family.minibatch[{res}]={b!r}: the D step takes the first b reals of the loader's "
                                  f"batch, so b must be an integer in [1, optim.batch_size={batch_size}]")
            sizes[int(res)] = b
        for res, b in sizes.items():
            if b % pack:
                raise ConfigError(f"family.pack={pack} must divide every per-resolution batch; "
                                  f"family.minibatch[{res}]={b}")
            g = min(group, b // pack)
            if g > 1 and (b // pack) % g:
                raise ConfigError(f"family.minibatch[{res}]={b} ({b // pack} samples or packs) must be a multiple "
                                  f"of model.discriminator.mbstd_group_size={group} (or smaller than it)")
        return sizes

    @classmethod
    def build_networks(cls, cfg, datamodule, d_kwargs: dict, options: dict):
        name = cfg.model.get("name")
        if name != "progan":
            raise ConfigError(f"family=progan grows model=progan's networks (a lod in G and D); got model={name}")
        shape = tuple(datamodule.shape)
        if len(shape) != 3 or shape[1] != shape[2] or shape[1] < 4 or shape[1] & (shape[1] - 1):
            raise ConfigError(f"family=progan grows square images from 4x4 by doubling: the data's side must be a "
                              f"power of two >= 4; data={datamodule.name} has shape {shape} (set data.resolution)")
        return super().build_networks(cfg, datamodule, d_kwargs, options)

    # -- the schedule -------------------------------------------------------------------------------------------
    @property
    def lod(self) -> float:
        return training_lod(self.sched_nimg, self.res_log2, **self.growth)

    @property
    def resolution(self) -> int:
        return lod_resolution(self.lod, self.res_log2)

    def apply_lod(self, lod: float) -> None:
        nets = [self.G, self.D] + ([self.G_ema.module] if self.G_ema is not None else [])
        for net in nets:
            net.set_lod(lod)

    def advance_schedule(self) -> None:
        """At the start of each round of ``minibatch_repeats`` (n_disc D + 1 G) steps: lod from nimg; the
        optimizers reset when floor or ceil of lod changed."""
        if self.d_step % (self.minibatch_repeats * self.n_disc):
            return
        prev = self.lod
        self.sched_nimg = self.nimg
        lod = self.lod
        if self.reset_optimizers and lod_changed(lod, prev):
            for opt in self.optimizers():
                reset_optimizer_state(opt)
        self.apply_lod(lod)

    def training_step(self, batch, batch_idx):
        self.advance_schedule()
        lod = self.lod
        b = self.minibatch[self.resolution]
        x, *rest = batch if isinstance(batch, (list, tuple)) else (batch,)
        self.nimg += b
        return super().training_step((fade_reals(x[:b], lod), *(t[:b] for t in rest)), batch_idx)

    def discriminator_step(self, batch) -> dict[str, Tensor]:
        terms = super().discriminator_step(batch)  # the loss is summed already: these are logged only
        terms["progan/lod"] = torch.tensor(self.lod)
        terms["progan/kimg"] = torch.tensor(self.nimg / 1000.0)
        terms["progan/resolution"] = torch.tensor(float(self.resolution))
        return terms

    def d_terms(self, real_out, fake_out, real_cond: dict, inputs: dict) -> dict[str, Tensor]:
        """epsilon_drift * E[D(x_real)^2] (``loss.py::D_wgangp_acgan``)."""
        return {"loss/drift": self.drift * logit(real_out).square().mean()} if self.drift > 0 else {}

    # -- state and protocol -------------------------------------------------------------------------------------
    def family_state(self) -> dict:
        return {"nimg": self.nimg, "sched_nimg": self.sched_nimg}

    def load_family_state(self, state: dict) -> None:
        self.nimg = int(state.get("nimg", 0))
        self.sched_nimg = int(state.get("sched_nimg", 0))
        self.apply_lod(self.lod)

    def extra_protocol(self) -> dict:
        side = 2 ** self.res_log2
        return {"progressive_growing": {
            "lod": self.lod, "resolution": self.resolution, "kimg": self.nimg / 1000.0, "output_side": side,
            "samples": f"G emits {side}x{side} images: its {self.resolution}x{self.resolution} output (faded at "
                       f"fractional lod) nearest-upsampled; metrics and grids score these full-size images"}}
