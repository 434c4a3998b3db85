"""The VAE baseline of Lucic et al. 2018 (Kingma & Welling 2014, "Auto-Encoding Variational Bayes"), as
google/compare_gan@d6c5976ba2b9d19dbff42f439c20b48565d10235 (branch v1, ``compare_gan/src/gans/VAE.py``) trains it:

- encoder q(z | x) = N(mean, std^2): ``self.D`` is a ``ganbench.nets.vae.GaussianEncoder`` on
  ``model.discriminator``'s body (v1: its D architecture, last layer 2 x z_dim, std = 1e-6 + softplus), fed the
  images in D's range (``data.range``; v1: [0, 1]). The base machinery (optimizer, checkpoint, init,
  ``family_name``) sees it as D; it has no logit and no regularizer.
- decoder = G (``model.generator``); z = mean + std * eps, eps ~ N(0, I) (the reparameterisation). v1's decoder
  is its InfoGAN G with ReLUs (its GANs' G: lReLUs): ``model.generator.activation=relu`` with ``model=infogan``.
- loss = the negative ELBO, ``negative_elbo``: v1's Bernoulli reconstruction term on pixel intensities in [0, 1],
  -sum_{h,w} [x log p + (1 - x) log(1 - p)] with p clipped to [1e-8, 1 - 1e-8], averaged over the batch *and the
  channels* (v1 sums axes [1, 2] of its NHWC tensor, then takes the mean), plus
  KL(q || N(0, I)) = 1/2 sum_j (mean^2 + std^2 - log(1e-8 + std^2) - 1), averaged over the batch.
  ganbench's G ends in tanh (images in [-1, 1]): p = (G(z) + 1) / 2 = sigmoid(2a), v1's sigmoid decoder with its
  last layer scaled by 2; x = (image + 1) / 2. The log terms are computed in float64, where v1's bound 1 - 1e-8 is
  representable (in float32 it rounds to 1 and a saturated pixel gives log 0).
- one optimizer over decoder and encoder (v1: one Adam over all variables), with optim.lr_g for the decoder and
  optim.lr_d for the encoder (both optim.lr by default): one update per batch.
- samples, sample grids and metrics: the base's ``sample()``, z ~ N(0, I) through the (EMA) decoder, as v1's
  ``gaussian`` sampler; ``optim.prior`` must therefore be ``normal`` (the KL's prior).

n_disc: there is no discriminator; ``optim.n_disc`` is the number of VAE updates (each on a fresh batch) per
generator step, so a budget counted in discriminator steps (g_steps x n_disc batches, as Lucic's presets count it)
is the number of VAE updates whatever n_disc is: v1 ignores its disc_iters, and its VAE trains one update per
training step. With n_disc=1 (the default) a generator step is one update. Logged: ``loss/vae`` (the negative
ELBO), ``vae/nll``, ``vae/kl``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ganbench.augment import NoAugment
from ganbench.errors import ConfigError
from ganbench.families.gan import GAN
from ganbench.families.optimizers import make_optimizer, optimizer_factory
from ganbench.losses import AdversarialLoss
from ganbench.regularizers import NoRegularizer

P_CLIP = 1e-8  # v1: tf.clip_by_value(out, 1e-8, 1 - 1e-8)
KL_EPS = 1e-8  # v1: log(1e-8 + sigma^2)


def bernoulli_nll(x01: Tensor, p: Tensor) -> Tensor:
    """v1's reconstruction term: -sum over (H, W) of the Bernoulli log-likelihood, mean over batch and channels."""
    x, p = x01.double(), p.double().clamp(P_CLIP, 1 - P_CLIP)
    loglik = (x * p.log() + (1 - x) * (1 - p).log()).flatten(2).sum(2)
    return -loglik.mean().to(x01.dtype)


def gaussian_kl(mean: Tensor, std: Tensor) -> Tensor:
    """KL(N(mean, std^2) || N(0, I)) summed over z, mean over the batch (v1's form, with its 1e-8)."""
    return 0.5 * (mean.square() + std.square() - (KL_EPS + std.square()).log() - 1).sum(1).mean()


def negative_elbo(x01: Tensor, p: Tensor, mean: Tensor, std: Tensor) -> tuple[Tensor, Tensor]:
    """(reconstruction NLL, KL); the loss is their sum."""
    return bernoulli_nll(x01, p), gaussian_kl(mean, std)


class EvidenceLowerBound(AdversarialLoss):
    """``loss=vae``: the VAE's negative ELBO, which ``family=vae`` computes itself (a marker, so the analysis and the
    run's record name the VAE's objective); any other family calling it gets one line."""

    def discriminator(self, real_logits, fake_logits):
        raise ConfigError("loss=vae is the VAE's ELBO; it needs family=vae")

    def generator(self, fake_logits, real_logits=None):
        raise ConfigError("loss=vae is the VAE's ELBO; it needs family=vae")


class VAE(GAN):
    """``family=vae``: ``self.G`` the decoder, ``self.D`` the encoder; ``training_step`` is one ELBO update."""

    supports_pack = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not isinstance(self.loss, EvidenceLowerBound):
            raise ConfigError(f"family=vae trains on its ELBO, not on an adversarial loss: it needs loss=vae (its "
                              f"default), got loss {type(self.loss).__name__}; drop the loss= override")
        if self.optim_cfg["prior"] != "normal":
            raise ConfigError(f"family=vae samples z from the KL's prior N(0, I): optim.prior must be normal; got "
                              f"{self.optim_cfg['prior']}")
        if self.simultaneous:
            raise ConfigError("optim.simultaneous=true does not apply to family=vae: it has one optimizer and one "
                              "update per batch")
        extra = sorted(name for name, reg in self.regularizers.items() if not isinstance(reg, NoRegularizer))
        if extra:
            raise ConfigError(f"reg={','.join(extra)}: family=vae has no discriminator to regularize; use reg=none "
                              f"(the encoder's batch norm is model.discriminator.batch_norm)")
        if not isinstance(self.augment, NoAugment):
            raise ConfigError("augment: family=vae reconstructs the data as it is; use augment=none")
        self.g_steps_target = int(self.optim_cfg.get("g_steps") or 0)

    @classmethod
    def build_networks(cls, cfg, datamodule, d_kwargs: dict, options: dict) -> tuple[nn.Module, nn.Module, dict]:
        from ganbench.build import instantiate_or_explain
        from ganbench.nets.vae import GaussianEncoder

        cls.check_pack(options.get("pack", 1), int(cfg.optim.batch_size))
        shape = tuple(datamodule.shape)
        if len(shape) != 3:
            raise ConfigError(f"family=vae has compare_gan v1's Bernoulli decoder for images in [-1, 1]; the data "
                              f"has shape {shape} (use image data, e.g. data=digits)")
        G = instantiate_or_explain(cfg.model.generator, z_dim=cfg.optim.z_dim, data_shape=shape)
        body = instantiate_or_explain(cfg.model.discriminator, data_shape=shape, **d_kwargs)
        return G, GaussianEncoder(body, cfg.optim.z_dim), {}

    def configure_optimizers(self):
        """One optimizer: the decoder's parameters with lr_g, the encoder's with lr_d."""
        o = self.optim_cfg
        groups = [{"params": list(self.G.parameters()), "lr": float(o["lr_g"])},
                  {"params": list(self.D.parameters()), "lr": float(o["lr_d"])}]
        return make_optimizer(optimizer_factory(o), groups, float(o["lr_g"]))

    def vae_step(self, x: Tensor) -> dict[str, Tensor]:
        """One ELBO update on the image batch ``x`` (in [-1, 1])."""
        mean, std = self.D(self.to_d(x))  # the encoder sees x as a D would (data.range)
        z = mean + std * torch.randn_like(std)
        p = (self.generate({"z": z}) + 1) / 2
        nll, kl = negative_elbo((x + 1) / 2, p, mean, std)
        total = nll + kl
        terms = {"loss/vae": total, "vae/nll": nll, "vae/kl": kl}
        if self._check_finite(total, terms):
            opt = self.optimizers()
            opt.zero_grad(set_to_none=True)
            self.manual_backward(total)
            opt.step()
            self.update_ema()
        return terms

    def training_step(self, batch, batch_idx):
        x, _ = self.real_inputs(batch)
        logs = self.vae_step(x)
        self.d_step += 1  # batches consumed (the resumable data stream counts them)
        self.did_g_step = self.d_step % self.n_disc == 0 and self.diverged is None
        if not self.did_g_step:
            return
        self.g_step += 1
        if self.g_step % self.log_every == 0:
            self.log_scalars({k: float(v.detach()) for k, v in logs.items()})
        if self.g_steps_target and self.g_step >= self.g_steps_target:
            # the trainer's max_steps counts n_disc + 1 optimizer steps per generator step; a VAE makes n_disc
            self.trainer.should_stop = True
