"""The unconditional GAN training loop (the family every other family builds on).

One ``training_step`` is one discriminator update on a fresh real batch; every ``n_disc``-th step also updates the
generator. Counters:

- ``g_step``: generator updates done. Training length, checkpoints, evaluation and sample cadence are all counted
  in generator steps, and ``g_step`` is logged with every scalar.
- ``d_step``: discriminator updates done.
- Lightning's ``trainer.global_step`` counts *every* optimizer step: after k generator steps it is
  k * (n_disc + 1). ganbench logs every scalar with ``step=g_step``, so the x-axis of the CSV, W&B and
  TensorBoard is the generator step.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

import lightning as L
import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

from ganbench.errors import ConfigError
from ganbench.losses import AdversarialLoss
from ganbench.regularizers import Regularizer

PRIORS: dict[str, Callable[..., Tensor]] = {
    "normal": lambda n, d, **kw: torch.randn(n, d, **kw),
    "uniform": lambda n, d, **kw: torch.rand(n, d, **kw) * 2 - 1,
}


def ema_avg_fn(decay: float):
    """EMA update for ``AveragedModel`` with the usual warm-up: decay_t = min(decay, (1 + t) / (10 + t))."""

    def update(ema_params, params, num_averaged):
        if not ema_params[0].is_floating_point():  # e.g. batch norm's num_batches_tracked: copied
            torch._foreach_copy_(ema_params, params)
            return
        t = int(num_averaged)
        d = min(decay, (1 + t) / (10 + t))
        torch._foreach_lerp_(ema_params, params, 1 - d)

    return update


class GAN(L.LightningModule):
    """Unconditional GAN: G maps a prior sample z to data, D scores data with a logit.

    Args:
        generator, discriminator: nn.Modules following ``ganbench.nets``'s contract.
        loss: an ``AdversarialLoss`` (conf/loss).
        regularizers: name -> ``Regularizer`` (conf/reg), already applied to the networks.
        augment: a differentiable module applied to every D input (conf/augment).
        optim: mapping with lr_g, lr_d, beta1, beta2, n_disc, z_dim, prior.
        ema_decay: decay of the generator's exponential moving average; 0 disables it.
        num_fixed: size of the fixed latent batch used for sample grids.
        log_every: generator steps between logged scalars.
    """

    def __init__(self, generator: nn.Module, discriminator: nn.Module, loss: AdversarialLoss,
                 regularizers: Mapping[str, Regularizer], augment: nn.Module, optim: Mapping,
                 ema_decay: float = 0.999, num_fixed: int = 64, log_every: int = 10, seed: int = 0):
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
        self.ema_decay = float(ema_decay)
        self.G_ema = AveragedModel(generator, multi_avg_fn=ema_avg_fn(self.ema_decay), use_buffers=True) \
            if self.ema_decay > 0 else None
        self.log_every = max(1, int(log_every))
        self.seed = int(seed)
        fixed = torch.Generator().manual_seed(self.seed)
        self.register_buffer("fixed_z", self._prior(int(num_fixed), self.z_dim, generator=fixed))
        self.g_step = 0
        self.d_step = 0
        self.did_g_step = False  # whether the last training_step updated G (callbacks read it)
        self.diverged: dict | None = None
        self.stopped_by_signal: int | None = None  # set by callbacks.GracefulStop (SIGTERM/SIGUSR2)

    # -- sampling ---------------------------------------------------------------------------------------------------
    def sample_z(self, n: int) -> Tensor:
        return self._prior(n, self.z_dim, device=self.device)

    @property
    def sampler(self) -> nn.Module:
        """The generator used for samples and evaluation: the EMA copy when there is one."""
        return self.G_ema.module if self.G_ema is not None else self.G

    @torch.no_grad()
    def sample(self, n: int, z: Tensor | None = None, batch_size: int = 256) -> Tensor:
        """``n`` samples from the evaluation generator (eval mode), in chunks; the training mode is restored."""
        net = self.sampler
        was_training = net.training
        net.eval()
        try:
            z = self.sample_z(n) if z is None else z.to(self.device)
            return torch.cat([net(chunk) for chunk in z.split(batch_size)]).float()
        finally:
            net.train(was_training)

    # -- optimisation -----------------------------------------------------------------------------------------------
    def configure_optimizers(self):
        o = self.optim_cfg
        betas = (float(o["beta1"]), float(o["beta2"]))
        opt_g = torch.optim.Adam(self.G.parameters(), lr=float(o["lr_g"]), betas=betas)
        opt_d = torch.optim.Adam(self.D.parameters(), lr=float(o["lr_d"]), betas=betas)
        return opt_g, opt_d

    def critic(self, x: Tensor) -> Tensor:
        """What the discriminator sees: D composed with the augmentation."""
        return self.D(self.augment(x))

    def discriminator_step(self, real: Tensor) -> dict[str, Tensor]:
        with torch.no_grad():
            fake = self.G(self.sample_z(real.shape[0]))
        # real and fake go through D as one batch (compare_gan's convention; batch norm sees both)
        logits = self.critic(torch.cat([real, fake]))
        real_logits, fake_logits = logits.split(real.shape[0])
        terms = {"loss/d": self.loss.discriminator(real_logits, fake_logits)}
        for name, reg in self.regularizers.items():
            if self.d_step % reg.interval == 0:
                term = reg.penalty(self.critic, real, fake)
                if term is not None:
                    terms[f"reg/{name}"] = term * reg.interval
        total = sum(terms.values())
        if self._check_finite(total, terms):
            opt_d = self.optimizers()[1]
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(total)
            opt_d.step()
            for reg in self.regularizers.values():
                reg.after_d_step(self.D)
        self.d_step += 1
        terms["d_real"], terms["d_fake"] = real_logits.mean(), fake_logits.mean()
        return terms

    def generator_step(self, batch_size: int, real: Tensor) -> dict[str, Tensor]:
        self.D.requires_grad_(False)  # G's step needs D's input gradients only, not its weight gradients
        try:
            fake_logits = self.critic(self.G(self.sample_z(batch_size)))
            real_logits = self.critic(real) if getattr(self.loss, "needs_real_in_g_step", False) else None
            loss_g = self.loss.generator(fake_logits, real_logits)
            if self._check_finite(loss_g, {"loss/g": loss_g}):
                opt_g = self.optimizers()[0]
                opt_g.zero_grad(set_to_none=True)
                self.manual_backward(loss_g)
                opt_g.step()
                if self.G_ema is not None:
                    self.G_ema.update_parameters(self.G)
        finally:
            self.D.requires_grad_(True)
        self.g_step += 1
        return {"loss/g": loss_g}

    def training_step(self, batch, batch_idx):
        real = batch[0] if isinstance(batch, (list, tuple)) else batch
        logs = self.discriminator_step(real)
        self.did_g_step = self.d_step % self.n_disc == 0 and self.diverged is None
        if self.did_g_step:
            logs.update(self.generator_step(real.shape[0], real))
            if self.g_step % self.log_every == 0:
                self.log_scalars({k: float(v.detach()) for k, v in logs.items()})

    def log_scalars(self, values: Mapping[str, float]) -> None:
        """To every logger with the generator step as the x-axis, and the losses to the progress bar (if shown:
        Lightning's self.log machinery costs ~4 ms per call)."""
        values = {**values, "g_step": self.g_step}
        for logger in self.loggers:
            logger.log_metrics(values, step=self.g_step)
        if self.trainer.progress_bar_callback is not None:
            self.log_dict({"g_step": float(self.g_step), "loss_d": values["loss/d"], "loss_g": values["loss/g"]},
                          prog_bar=True, logger=False)

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        """A batch already on the device (CPU training) skips Lightning's generic collection mover."""
        if isinstance(batch, (list, tuple)) and all(isinstance(t, Tensor) and t.device == device for t in batch):
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    # -- divergence -------------------------------------------------------------------------------------------------
    def _check_finite(self, total: Tensor, terms: Mapping[str, Tensor]) -> bool:
        """False (and the run is stopped, recorded as diverged) when a loss is NaN or infinite."""
        if self.diverged is not None:
            return False
        if bool(torch.isfinite(total)):
            return True
        bad = {k: float(v.detach()) for k, v in terms.items() if not math.isfinite(float(v.detach()))}
        self.diverged = {"g_step": self.g_step, "d_step": self.d_step, "non_finite": bad}
        self.trainer.should_stop = True
        return False

    # -- checkpoint state -------------------------------------------------------------------------------------------
    # Exact resume: the data stream restarts after d_step batches (see ResumableBatchSampler) and the global random
    # streams (latents, penalties' interpolation noise, augmentation) are saved here and restored when training
    # restarts; sample grids and evaluation run on their own streams (callbacks.isolated_rng).
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        checkpoint["ganbench"] = {"g_step": self.g_step, "d_step": self.d_step, "diverged": self.diverged,
                                  "rng": rng, **getattr(self, "checkpoint_extra", {})}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("ganbench", {})
        self.g_step = int(state.get("g_step", 0))
        self.d_step = int(state.get("d_step", 0))
        self.diverged = state.get("diverged")
        self._rng_to_restore = state.get("rng")

    def on_train_start(self) -> None:
        rng, self._rng_to_restore = getattr(self, "_rng_to_restore", None), None
        if self.trainer.world_size > 1:
            # seed_everything gave every rank the same streams (and a checkpoint holds rank 0's): reseed each rank
            # from (seed, g_step, rank) so that ranks draw different latents
            import numpy as np

            torch.manual_seed(int(np.random.SeedSequence([self.seed, self.g_step, self.global_rank])
                                  .generate_state(1)[0]))
            return
        if rng is None:
            return
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
