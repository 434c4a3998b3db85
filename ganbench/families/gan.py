"""The unconditional GAN training loop: ``family=gan``, and the base every other family builds on.

One ``training_step`` is one discriminator update on a fresh real batch; every ``n_disc``-th step also updates the
generator. Counters:

- ``g_step``: generator updates done. Training length, checkpoints, evaluation and sample cadence are all counted
  in generator steps, and ``g_step`` is logged with every scalar.
- ``d_step``: discriminator updates done.
- Lightning's ``trainer.global_step`` counts *every* optimizer step: after k generator steps it is
  k * (n_disc + 1). ganbench logs every scalar with ``step=g_step``, so the x-axis of the CSV, W&B and
  TensorBoard is the generator step.

A family is a subclass that overrides only what differs from this loop (see ``ganbench/families/__init__.py``):
what G receives (``sample_inputs``, ``generate``), what D receives besides the images (``real_condition``,
``fake_condition``, ``discriminate``), the extra loss terms (``d_terms``, ``g_terms``), and how its networks are
built (``build_networks``). The phases (D step, penalties, G step, EMA, divergence, checkpoints) stay here.
PacGAN's packing (``pack=m``) is ``families/packing.py``.
"""

from __future__ import annotations

from typing import Callable, Mapping

import lightning as L
import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

from ganbench.errors import ConfigError
from ganbench.families.common import D_CALLS, PRIORS, Output, detached, ema_avg_fn, logit, split_output
from ganbench.families.optimizers import NETS, lazy_ratio, lr_schedule, make_optimizer, optimizer_factory
from ganbench.families.packing import Packing
from ganbench.families.sampling import EMASampling
from ganbench.families.simultaneous import SimultaneousUpdates
from ganbench.families.state import ResumableState
from ganbench.losses import AdversarialLoss
from ganbench.regularizers import Regularizer


class GAN(Packing, SimultaneousUpdates, EMASampling, ResumableState, L.LightningModule):
    """Unconditional GAN: G maps a prior sample z to data, D scores data with a logit.

    Args:
        generator, discriminator: nn.Modules following ``ganbench.nets``'s contract.
        loss: an ``AdversarialLoss`` (conf/loss).
        regularizers: name -> ``Regularizer`` (conf/reg), already applied to the networks.
        augment: a differentiable module applied to every D input (conf/augment).
        optim: mapping with lr_g, lr_d, beta1, beta2, n_disc, z_dim, prior.
        ema_decay: decay of the generator's exponential moving average; 0 disables it.
        ema_start: G steps during which the EMA generator is a copy of G (BigGAN's ``ema_start``).
        ema_half_life_kimg, ema_rampup: StyleGAN2's EMA (``families/sampling.py``), instead of ``ema_decay``.
        truncation, truncation_mode: the evaluation prior's truncation (``families/sampling.py``).
        num_fixed: size of the fixed latent batch used for sample grids.
        log_every: generator steps between logged scalars.
        pack: PacGAN's packing degree m (1: D scores single samples).
    """

    #: whether it takes a model whose G is class-conditional by construction (``model.conditional: native``)
    native_conditioning = False
    #: the short name of the family's own primary metric (picks the best checkpoint); None: the evaluator's
    primary_metric: str | None = None
    #: whether G's step reuses the outputs G made for the D step just before it (one forward per iteration, as the
    #: image-to-image references do: G's inputs come from the batch); False: the G step draws its own (new z)
    reuse_fakes = False

    def __init__(self, generator: nn.Module, discriminator: nn.Module, loss: AdversarialLoss,
                 regularizers: Mapping[str, Regularizer], augment: nn.Module, optim: Mapping,
                 ema_decay: float = 0.999, num_fixed: int = 64, log_every: int = 10, seed: int = 0,
                 pack: int = 1, d_calls: str = "joint_in_d_step", ema_start: int = 0,
                 ema_half_life_kimg: float | None = None, ema_rampup: float | None = None,
                 truncation: float | None = None, truncation_mode: str = "resample"):
        super().__init__()
        self.automatic_optimization = False
        self.G, self.D, self.augment = generator, discriminator, augment
        self.loss = loss
        self.regularizers = dict(regularizers)
        self.optim_cfg = dict(optim)
        self.n_disc = int(self.optim_cfg["n_disc"])
        self.z_dim = int(self.optim_cfg["z_dim"])
        if self.optim_cfg["prior"] not in PRIORS:
            raise ConfigError(f"optim.prior must be one of {', '.join(PRIORS)}; got {self.optim_cfg['prior']!r}")
        self._prior = PRIORS[self.optim_cfg["prior"]]
        self.pack = self.check_pack(pack, int(self.optim_cfg.get("batch_size", pack)))
        if d_calls not in D_CALLS:
            raise ConfigError(f"family.d_calls must be one of {', '.join(D_CALLS)}; got {d_calls!r}")
        self.d_calls = d_calls
        self.joint_d_step, self.joint_g_step = D_CALLS[d_calls]
        self.simultaneous = bool(self.optim_cfg.get("simultaneous", False))
        self._lr_factor = lr_schedule(self.optim_cfg)
        self.set_data_range("symmetric")  # build() sets the data's
        if self.simultaneous and self.n_disc != 1:
            raise ConfigError(f"optim.simultaneous=true updates D and G together from one batch, so it needs "
                              f"optim.n_disc=1; got optim.n_disc={self.n_disc}")
        self.ema_decay = float(ema_decay)
        self.setup_half_life(ema_half_life_kimg, ema_rampup)
        self.G_ema = AveragedModel(generator, multi_avg_fn=ema_avg_fn(self.ema_decay), use_buffers=False) \
            if self.ema_decay > 0 or self.ema_half_life_kimg is not None else None
        self.ema_start = int(ema_start)
        if self.ema_start < 0 or self.ema_start != ema_start:
            raise ConfigError(f"ema.start must be an integer >= 0 (G steps copying G before averaging); got {ema_start}")
        self.setup_truncation(truncation, truncation_mode)
        self.log_every = max(1, int(log_every))
        self.seed = int(seed)
        fixed = torch.Generator().manual_seed(self.seed)
        with self.evaluation_prior():  # the sample grids' latents, truncated like the metrics' ones
            self.register_buffer("fixed_z", self.draw_prior(int(num_fixed), generator=fixed))
        self.g_step = 0
        self.d_step = 0
        self.did_g_step = False  # whether the last training_step updated G (callbacks read it)
        self.diverged: dict | None = None
        self.stopped_by_signal: int | None = None  # set by callbacks.GracefulStop (SIGTERM/SIGUSR2)

    # -- building (class-level: runs before the module exists) ------------------------------------------------------
    @classmethod
    def family_name(cls) -> str:
        return cls.__module__.rsplit(".", 1)[-1]

    @classmethod
    def build_networks(cls, cfg, datamodule, d_kwargs: dict, options: dict) -> tuple[nn.Module, nn.Module, dict]:
        """(G, D, extra constructor kwargs) for this family from ``cfg.model`` and the data. ``d_kwargs`` holds
        the normalization the regularizers ask for; ``options`` the family's config (conf/family/<name>.yaml)."""
        from ganbench.build import instantiate_or_explain

        shape = tuple(datamodule.shape)
        m = cls.check_pack(options.get("pack", 1), int(cfg.optim.batch_size))
        G = instantiate_or_explain(cfg.model.generator, z_dim=cfg.optim.z_dim, data_shape=shape)
        d_shape = (shape[0] * m, *shape[1:])  # a pack: m samples along channels (images) or features (vectors)
        D = instantiate_or_explain(cfg.model.discriminator, data_shape=d_shape, **d_kwargs)
        return G, D, {}

    # -- what G receives (override in a family) ---------------------------------------------------------------------
    def sample_z(self, n: int) -> Tensor:
        return self.draw_prior(n, device=self.device)

    def sample_inputs(self, n: int) -> dict[str, Tensor]:
        """Everything G's input is made of, for ``n`` samples (a conditional family adds labels, InfoGAN codes)."""
        return {"z": self.sample_z(n)}

    def g_inputs(self, n: int, real_cond: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """G's inputs in a training step with ``n`` reals whose condition is ``real_cond``: drawn afresh
        (``sample_inputs``); an image-to-image family takes them from the batch instead."""
        return self.sample_inputs(n)

    def fixed_inputs(self) -> dict[str, Tensor]:
        """The fixed inputs of the sample grids."""
        return {"z": self.fixed_z}

    def generate(self, inputs: Mapping[str, Tensor], net: nn.Module | None = None) -> Tensor:
        return (net if net is not None else self.G)(inputs["z"])

    # -- what D receives (override in a family) ---------------------------------------------------------------------
    def real_inputs(self, batch) -> tuple[Tensor, dict[str, Tensor]]:
        """(real images, their condition for D) from a data batch of (x, y)."""
        return (batch[0] if isinstance(batch, (list, tuple)) else batch), {}

    def fake_condition(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """D's condition for fakes generated from ``inputs``."""
        return {}

    def discriminate(self, x: Tensor, cond: Mapping[str, Tensor]) -> Output:
        """D's full output on ``x`` (in [-1, 1]): the augmentation, the map to D's range, packing, then D (a family
        with heads returns a dict)."""
        return self.D(self.packed(self.to_d(self.augment(x))), **cond)

    def critic(self, x: Tensor, cond: Mapping[str, Tensor] | None = None) -> Tensor:
        """D's logits as the penalties see it: ``x`` is in D's range (``data.range``) and packed when pack > 1;
        each image is augmented (in [-1, 1]) before it is packed again."""
        x = self.from_d(self.unpacked(x))
        return logit(self.D(self.packed(self.to_d(self.augment(x))), **(cond or {})))

    def d_inputs(self, x: Tensor) -> Tensor:
        """Images as the penalties take them: in D's range, packed."""
        return self.packed(self.to_d(x))

    def set_data_range(self, name: str) -> None:
        """``data.range``: ``unit`` shows D (and the penalties' gradients) images in [0, 1] by (x + 1) / 2."""
        unit = name == "unit"
        self.data_range = name
        self.to_d = (lambda x: (x + 1) / 2) if unit else (lambda x: x)
        self.from_d = (lambda x: x * 2 - 1) if unit else (lambda x: x)
        for reg in self.regularizers.values():
            reg.data_range = (0.0, 1.0) if unit else (-1.0, 1.0)

    def penalty_critic(self, real_cond: Mapping[str, Tensor], fake_cond: Mapping[str, Tensor]) -> Callable:
        """The critic the penalties call (on real, fake and interpolated samples): D with the reals' condition;
        ``critic.fake`` scores with the fakes' condition."""
        def critic(x: Tensor) -> Tensor:
            return self.critic(x, real_cond)

        critic.fake = lambda x: self.critic(x, fake_cond)
        return critic

    # -- the extra terms of a family (override) ---------------------------------------------------------------------
    def d_adversarial(self, real_out: Output, fake_out: Output) -> Tensor:
        return self.loss.discriminator(logit(real_out), logit(fake_out))

    def g_adversarial(self, fake_out: Output, real_out: Output | None) -> Tensor:
        return self.loss.generator(logit(fake_out), None if real_out is None else logit(real_out))

    def d_terms(self, real_out: Output, fake_out: Output, real_cond: dict, inputs: dict) -> dict[str, Tensor]:
        """Terms added to D's loss besides the adversarial one and the penalties (e.g. ACGAN's class loss)."""
        return {}

    def g_terms(self, fake: Tensor, fake_out: Output, inputs: dict) -> dict[str, Tensor]:
        """Terms added to G's loss besides the adversarial one (e.g. InfoGAN's mutual information)."""
        return {}

    def regularizer_g_terms(self, inputs: dict, fake: Tensor) -> dict[str, Tensor]:
        """The regularizers' terms of G's loss (zCR, orthogonal regularization)."""
        terms = {}
        for name, reg in self.regularizers.items():
            term = reg.g_step_term(self, inputs, fake)
            if term is not None:
                terms[f"reg/{name}_g"] = term
        return terms

    def after_d_step(self, real_out: Output, fake_out: Output, terms: dict) -> None:
        """State updated after each D step from that step's values (BEGAN's k)."""

    def extra_metrics(self, evaluator) -> dict[str, float]:
        """A family's own metrics, logged with the evaluator's (conditional: intra-FID, accuracy; InfoGAN: code
        accuracy). Called in the evaluation's isolated random stream."""
        return {}

    def extra_protocol(self) -> dict:
        """How ``extra_metrics`` were computed (recorded in result.json beside the evaluator's protocol)."""
        return {}

    def run_protocol(self) -> dict:
        """What of the metrics' protocol the module decides: the family's own metrics, the samples' truncation,
        what the regularizers did (e.g. CR's transform); only the non-empty parts."""
        parts = {"family": self.extra_protocol(), "sampling": self.truncation_protocol(),
                 "regularizers": {k: v for k, v in ((n, r.protocol()) for n, r in self.regularizers.items()) if v}}
        return {k: v for k, v in parts.items() if v}

    # -- optimisation -----------------------------------------------------------------------------------------------
    def configure_optimizers(self):
        """G's and D's optimizers: ``optim.optimizer`` with lr_g / lr_d, corrected for lazy regularization
        (``families/optimizers.py``)."""
        make = optimizer_factory(self.optim_cfg)
        c_g, c_d = (lazy_ratio(self.regularizers, net) for net in NETS)
        opt_g = make_optimizer(make, self.G.parameters(), float(self.optim_cfg["lr_g"]), c_g)
        opt_d = make_optimizer(make, self.D.parameters(), float(self.optim_cfg["lr_d"]), c_d)
        self._base_lrs = [[g["lr"] for g in opt.param_groups] for opt in (opt_g, opt_d)]
        return opt_g, opt_d

    def apply_lr_schedule(self) -> None:
        """``optim.lr_decay``: both optimizers' rates set from the G step (nothing to do without a schedule)."""
        if self._lr_factor is None:
            return
        factor = self._lr_factor(self.g_step)
        for opt, base in zip(self.optimizers(), self._base_lrs):
            for group, lr in zip(opt.param_groups, base):
                group["lr"] = lr * factor

    def discriminate_pair(self, real: Tensor, real_cond: dict, fake: Tensor, fake_cond: dict,
                          joint: bool = True) -> tuple:
        """D's outputs on reals and fakes: in one call (batch norm sees both) or in two (``joint=False``)."""
        if not joint:
            return self.discriminate(real, real_cond), self.discriminate(fake, fake_cond)
        cond = {k: torch.cat([real_cond[k], fake_cond[k]]) for k in real_cond}
        return split_output(self.discriminate(torch.cat([real, fake]), cond), real.shape[0] // self.pack)

    def d_loss_terms(self, real: Tensor, real_cond: dict, fake: Tensor, fake_cond: dict, inputs: dict) -> tuple:
        """(D's output on reals, on fakes, D's loss terms): the adversarial loss, the family's terms and every
        penalty due at this D step (lazy ones every ``interval`` steps, times ``interval``); penalties see the
        fakes detached."""
        real_out, fake_out = self.discriminate_pair(real, real_cond, fake, fake_cond, self.joint_d_step)
        terms = {"loss/d": self.d_adversarial(real_out, fake_out),
                 **self.d_terms(real_out, fake_out, real_cond, inputs)}
        critic = self.penalty_critic(real_cond, fake_cond)
        for name, reg in self.regularizers.items():
            if self.d_step % reg.interval == 0:
                term = reg.penalty(critic, self.d_inputs(real), self.d_inputs(fake.detach()))
                if term is not None:
                    terms[f"reg/{name}"] = term * reg.interval
            term = reg.d_step_term(self, inputs, fake.detach(), fake_out)
            if term is not None:
                terms[f"reg/{name}_d"] = term
        return real_out, fake_out, terms

    def discriminator_step(self, batch) -> dict[str, Tensor]:
        real, real_cond = self.real_inputs(batch)
        keep = self.reuse_fakes and not self.simultaneous and (self.d_step + 1) % self.n_disc == 0
        with torch.set_grad_enabled(keep):  # kept with its graph for the G step that follows (``reuse_fakes``)
            inputs = self.g_inputs(real.shape[0], real_cond)
            fake = self.generate(inputs)
        if keep:
            self._kept_fakes = (inputs, fake)
            fake = detached(fake)
        fake_cond = self.fake_condition(inputs)
        real_out, fake_out, terms = self.d_loss_terms(real, real_cond, fake, fake_cond, inputs)
        total = sum(terms.values())
        if self._check_finite(total, terms):
            opt_d = self.optimizers()[1]
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(total)
            opt_d.step()
            for reg in self.regularizers.values():
                reg.after_d_step(self.D)
            self.after_d_step(real_out, fake_out, terms)
            if hasattr(self.augment, "observe"):  # adaptive augmentation (ADA) reads D's verdict on the reals
                self.augment.observe(logit(real_out).detach())
        self.d_step += 1
        terms["d_real"], terms["d_fake"] = logit(real_out).mean(), logit(fake_out).mean()
        return terms

    def generator_fakes(self, batch_size: int, real_cond: Mapping[str, Tensor]) -> tuple[dict, Tensor]:
        """(G's inputs, G's outputs with their graph) for a G step: those the D step kept (``reuse_fakes``), or new."""
        kept, self._kept_fakes = getattr(self, "_kept_fakes", None), None
        if kept is not None:
            return kept
        inputs = self.g_inputs(batch_size, real_cond)
        return inputs, self.generate(inputs)

    def generator_step(self, batch_size: int, real: Tensor, real_cond: dict | None = None) -> dict[str, Tensor]:
        self.D.requires_grad_(False)  # G's step needs D's input gradients only, not its weight gradients
        try:
            inputs, fake = self.generator_fakes(batch_size, real_cond or {})
            if self.joint_g_step:
                real_out, fake_out = self.discriminate_pair(real, real_cond or {}, fake, self.fake_condition(inputs))
            else:
                fake_out = self.discriminate(fake, self.fake_condition(inputs))
                real_out = self.discriminate(real, real_cond or {}) \
                    if getattr(self.loss, "needs_real_in_g_step", False) else None
            terms = {"loss/g": self.g_adversarial(fake_out, real_out), **self.g_terms(fake, fake_out, inputs),
                     **self.regularizer_g_terms(inputs, fake)}
            self.update_generator(terms)
        finally:
            self.D.requires_grad_(True)
        self.g_step += 1
        return terms

    def update_generator(self, terms: Mapping[str, Tensor]) -> None:
        """One optimizer step of G on the sum of ``terms`` (skipped, and the run marked diverged, if not finite),
        then the EMA update."""
        total = sum(terms.values())
        if self._check_finite(total, terms):
            opt_g = self.optimizers()[0]
            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(total)
            opt_g.step()
            self.update_ema()

    def training_step(self, batch, batch_idx):
        self.apply_lr_schedule()
        if self.simultaneous:
            logs = self.simultaneous_step(batch)
            self.did_g_step = self.diverged is None
            if self.did_g_step and self.g_step % self.log_every == 0:
                self.log_scalars({k: float(v.detach()) for k, v in logs.items()})
            return
        logs = self.discriminator_step(batch)
        self.did_g_step = self.d_step % self.n_disc == 0 and self.diverged is None
        if self.did_g_step:
            real, real_cond = self.real_inputs(batch)
            logs.update(self.generator_step(real.shape[0], real, real_cond))
            if self.g_step % self.log_every == 0:
                self.log_scalars({k: float(v.detach()) for k, v in logs.items()})

    def log_scalars(self, values: Mapping[str, float]) -> None:
        """To every logger with the generator step as the x-axis, and the losses to the progress bar (if shown:
        Lightning's self.log machinery costs ~4 ms per call)."""
        values = {**values, **getattr(self.augment, "scalars", dict)(), "g_step": self.g_step}
        for logger in self.loggers:
            logger.log_metrics(values, step=self.g_step)
        if self.trainer.progress_bar_callback is not None:
            shown = {"g_step": float(self.g_step)}
            shown.update({k.replace("loss/", "loss_"): values[k] for k in ("loss/d", "loss/g") if k in values})
            self.log_dict(shown, prog_bar=True, logger=False)

    def __setattr__(self, name: str, value) -> None:
        """Lightning sets ``_current_fx_name`` (a str or None) before each of the ~40 hooks of an iteration;
        nn.Module's ``__setattr__`` would look it up among parameters, buffers and submodules every time."""
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        """A batch already on the device (CPU training) skips Lightning's generic collection mover."""
        if isinstance(batch, (list, tuple)) and all(isinstance(t, Tensor) and t.device == device for t in batch):
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)
