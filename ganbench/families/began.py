"""BEGAN (Berthelot et al. 2017, "BEGAN: Boundary Equilibrium Generative Adversarial Networks"): D is an
autoencoder and scores a sample by how well it reconstructs it; a proportional controller k keeps the balance
E[L(G(z))] = gamma E[L(x)].

References: google/compare_gan@d6c5976ba2b9d19dbff42f439c20b48565d10235 (branch v1, Lucic et al. 2018's code:
``compare_gan/src/gans/BEGAN.py``, ``abstract_gan.py``, ``params.py``) and carpedm20/BEGAN-tensorflow@722b3f1
(``trainer.py`` ``build_model``, ``models.py``):

- ``L(v) = mean |v - D(v)|`` over batch and pixels (``reconstruction_error`` per sample, then the batch mean), on
  the images as D sees them (``data.range``): in [-1, 1] by default (carpedm20's ``norm_img``), in [0, 1] with
  ``data.range=unit`` (compare_gan v1's images; its L, k and M values; ``+gan=began`` sets it).
- ``L_D = L(x) - k_t L(G(z))`` and ``L_G = L(G(z))`` (``BoundaryEquilibrium``, selected by ``loss=began``).
- ``k_{t+1} = k_t + lambda_k (gamma L(x) - L(G(z)))`` after every D step, from that step's L(x) and L(G(z))
  (carpedm20: the same forward as the update); clipped to [0, 1] with ``clip_k`` (carpedm20, the paper), not
  clipped with ``clip_k=false`` (compare_gan v1). k starts at 0 and is a registered buffer: it is in the
  checkpoint's state dict, so a resumed run continues bitwise.
- ``M_global = L(x) + |gamma L(x) - L(G(z))|``, the convergence measure, and k (after the step's update) are logged
  with every scalar row as ``began/m_global`` and ``began/k``; ``d_real`` and ``d_fake`` are L(x) and L(G(z)).

Differences from compare_gan v1, all in the shared loop (``family=gan`` has the same ones):
- v1 updates G after D step ``counter`` when ``(counter - 1) % disc_iters == 0`` (counter from 0), and also after
  the very first D step: G steps follow D steps 1, 2, 2 + n, 2 + 2n, ... (1-based); ganbench's loop follows D steps
  n, 2n, 3n, ... The ratio is the same (one G step per n D steps); v1 does one G step more and starts earlier.
- v1's G step reuses the z of the D step before it; ganbench draws a new z.
- v1 runs its k update (``after_training_step_hook``) as a separate forward on the same batch and z *after* the D
  and G updates of that step; ganbench uses the D step's own forward (carpedm20, the paper's equations).
- v1 calls D on reals and fakes separately: ``family.d_calls=separate`` (default ``joint_in_d_step``; it matters
  with batch norm in the AE); v1 draws its weights from N(0, 0.02): ``model.discriminator.init=compare_gan``
  (and ``model.generator.init``).

Regularizers: penalties that score samples (gp, dragan, dragan_lucic, r1, r2) need D's logits and are refused; so
are reg=bn / reg=ln (use the AE's own ``batch_norm``). sn, wclip and l2 act on the AE's weights and are allowed.
``optim.simultaneous=true`` (one forward, D and G updated from it) is carpedm20's schedule.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from ganbench.errors import ConfigError
from ganbench.families.gan import GAN
from ganbench.losses import AdversarialLoss
from ganbench.regularizers import L2, Regularizer


# -- the formulas (pure functions) -------------------------------------------------------------------------------
def reconstruction_error(v: Tensor, reconstruction: Tensor) -> Tensor:
    """Per-sample mean absolute error, shape (N,); its batch mean is BEGAN's L(v)."""
    return (v - reconstruction).abs().flatten(1).mean(1)


def k_next(k: Tensor, l_real: Tensor, l_fake: Tensor, gamma: float, lambda_k: float, clip: bool) -> Tensor:
    """k_{t+1} = k_t + lambda_k (gamma L(x) - L(G(z))), clipped to [0, 1] when ``clip``."""
    k = k + lambda_k * (gamma * l_real - l_fake)
    return k.clamp(0.0, 1.0) if clip else k


def m_global(l_real: Tensor, l_fake: Tensor, gamma: float) -> Tensor:
    """The convergence measure M_global = L(x) + |gamma L(x) - L(G(z))|."""
    return l_real + (gamma * l_real - l_fake).abs()


class BoundaryEquilibrium(AdversarialLoss):
    """``loss=began``: BEGAN's game on reconstruction errors, L_D = L(x) - k L(G(z)), L_G = L(G(z)). It needs
    ``family=began`` (which supplies k); any other family calls it with logits and gets one line."""

    def discriminator(self, real_error: Tensor, fake_error: Tensor, k: Tensor | None = None) -> Tensor:
        if k is None:
            raise ConfigError("loss=began is BEGAN's game on an autoencoder's reconstruction errors; it needs "
                              "family=began")
        return real_error - k * fake_error

    def generator(self, fake_error: Tensor, real_error: Tensor | None = None) -> Tensor:
        if fake_error.dim() != 0:  # another family hands it per-sample logits
            raise ConfigError("loss=began is BEGAN's game on an autoencoder's reconstruction errors; it needs "
                              "family=began")
        return fake_error


def _scores_samples(reg: Regularizer) -> bool:
    """Whether a regularizer's penalty evaluates D on samples (needs logits): every penalty but L2's weights."""
    return type(reg).penalty is not Regularizer.penalty and not isinstance(reg, L2)


class BEGAN(GAN):
    """``family=began``. ``self.D`` is the autoencoder; D's "output" for a batch is the per-sample error."""

    supports_pack = False

    def __init__(self, *args, gamma: float = 0.5, lambda_k: float = 0.001, clip_k: bool = True,
                 autoencoder: Any = None, autoencoders: Any = None, **kwargs):
        super().__init__(*args, **kwargs)
        if not isinstance(self.loss, BoundaryEquilibrium):
            raise ConfigError(f"family=began plays BEGAN's own game (L_D = L(x) - k L(G(z))): it needs loss=began, "
                              f"got loss {type(self.loss).__name__}; pass loss=began (or +gan=began)")
        refused = sorted(name for name, reg in self.regularizers.items() if _scores_samples(reg))
        if refused:
            raise ConfigError(f"reg={','.join(refused)}: family=began's D is an autoencoder without logits, so "
                              f"penalties on D's outputs do not apply; BEGAN takes reg none, sn, wclip or l2")
        self.gamma = _number("gamma", gamma, lambda v: 0 <= v <= 1, "a number in [0, 1]")
        self.lambda_k = _number("lambda_k", lambda_k, lambda v: v >= 0, "a number >= 0")
        if not isinstance(clip_k, bool):
            raise ConfigError(f"family.clip_k must be true or false; got {clip_k!r}")
        self.clip_k = clip_k
        self.register_buffer("k", torch.zeros(()))

    @classmethod
    def build_networks(cls, cfg, datamodule, d_kwargs: dict, options: dict) -> tuple[nn.Module, nn.Module, dict]:
        from ganbench.build import instantiate_or_explain

        cls.check_pack(options.get("pack", 1), int(cfg.optim.batch_size))
        if d_kwargs.get("norm") is not None:
            raise ConfigError("reg=bn / reg=ln normalize a discriminator with logits; family=began's autoencoder "
                              "has its own switch: family.autoencoders.lucic.batch_norm=true")
        shape = tuple(datamodule.shape)
        G = instantiate_or_explain(cfg.model.generator, z_dim=cfg.optim.z_dim, data_shape=shape)
        node = autoencoder_node(options.get("autoencoder"), options.get("autoencoders") or {})
        return G, instantiate_or_explain(node, data_shape=shape), {}

    # -- the game -------------------------------------------------------------------------------------------------
    def discriminate(self, x: Tensor, cond: Mapping[str, Tensor]) -> Tensor:
        v = self.to_d(self.augment(x))  # as the base's D sees x: augmented, then in D's range (data.range)
        return reconstruction_error(v, self.D(v))

    def d_adversarial(self, real_out: Tensor, fake_out: Tensor) -> Tensor:
        return self.loss.discriminator(real_out.mean(), fake_out.mean(), self.k)

    def g_adversarial(self, fake_out: Tensor, real_out: Tensor | None) -> Tensor:
        return self.loss.generator(fake_out.mean())

    @torch.no_grad()
    def after_d_step(self, real_out: Tensor, fake_out: Tensor, terms: dict) -> None:
        """k's update from this step's L(x), L(G(z)); M_global and the new k join the step's logged terms (after
        the loss was summed and backpropagated: they never enter it)."""
        l_real, l_fake = real_out.detach().float().mean(), fake_out.detach().float().mean()
        self.k.copy_(k_next(self.k, l_real, l_fake, self.gamma, self.lambda_k, self.clip_k))
        terms["began/k"] = self.k.clone()
        terms["began/m_global"] = m_global(l_real, l_fake, self.gamma)


def autoencoder_node(choice: Any, named: Mapping[str, Any]) -> Mapping[str, Any]:
    """``family.autoencoder``: a name of ``family.autoencoders`` or a node with ``_target_``."""
    if isinstance(choice, Mapping):
        node = choice
    elif isinstance(choice, str) and choice in named:
        node = named[choice]
    else:
        raise ConfigError(f"family.autoencoder={choice!r}: not one of {', '.join(named) or '(none)'} "
                          f"(family.autoencoders), nor a node with _target_")
    if not isinstance(node, Mapping) or "_target_" not in node:
        raise ConfigError(f"family.autoencoder={choice!r}: its settings need a _target_ (an nn.Module class taking "
                          f"data_shape)")
    return node


def _number(key: str, value: Any, ok, allowed: str) -> float:
    try:
        good = not isinstance(value, bool) and math.isfinite(float(value)) and ok(float(value))
    except (TypeError, ValueError):
        good = False
    if not good:
        raise ConfigError(f"family.{key} must be {allowed}; got {value!r}")
    return float(value)
