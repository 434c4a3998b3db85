"""``optim.simultaneous=true``: D and G updated together from one batch (ALI's loop, which PacGAN's toy code runs).

A mixin of ``GAN``: it uses the loop's hooks (inputs, D's loss terms, the G terms, EMA, divergence)."""

from __future__ import annotations

import torch
from torch import Tensor

from ganbench.families.common import logit


class SimultaneousUpdates:
    """The simultaneous step of the family LightningModules."""

    def simultaneous_step(self, batch) -> dict[str, Tensor]:
        """D and G updated together from one batch and one fake sample, both gradients taken at the same weights
        (``optim.simultaneous=true``; ALI's Blocks training loop, which PacGAN's toy code runs:
        fjxmlzn/PacGAN@190853e). Penalties see the fakes detached."""
        real, real_cond = self.real_inputs(batch)
        inputs = self.g_inputs(real.shape[0], real_cond)
        fake = self.generate(inputs)
        fake_cond = self.fake_condition(inputs)
        real_out, fake_out, d_terms = self.d_loss_terms(real, real_cond, fake, fake_cond, inputs)
        g_terms = {"loss/g": self.g_adversarial(fake_out, real_out), **self.g_terms(fake, fake_out, inputs),
                   **self.regularizer_g_terms(inputs, fake)}
        total_d, total_g = sum(d_terms.values()), sum(g_terms.values())
        if self._check_finite(total_d + total_g, {**d_terms, **g_terms}):
            d_params = [p for p in self.D.parameters() if p.requires_grad]
            g_params = [p for p in self.G.parameters() if p.requires_grad]
            d_grads = torch.autograd.grad(total_d, d_params, retain_graph=True, allow_unused=True)
            g_grads = torch.autograd.grad(total_g, g_params, allow_unused=True)
            opt_g, opt_d = self.optimizers()
            for params, grads in ((d_params, d_grads), (g_params, g_grads)):
                for p, g in zip(params, grads):
                    p.grad = g
            opt_d.step()
            opt_g.step()
            for reg in self.regularizers.values():
                reg.after_d_step(self.D)
            self.after_d_step(real_out, fake_out, d_terms)
            if hasattr(self.augment, "observe"):  # adaptive augmentation (ADA)
                self.augment.observe(logit(real_out).detach())
            self.update_ema()
        self.d_step += 1
        self.g_step += 1
        return {**d_terms, **g_terms, "d_real": logit(real_out).mean(), "d_fake": logit(fake_out).mean()}
