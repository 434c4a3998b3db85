"""Adversarial losses: pure functions of discriminator logits.

Every loss is one class with two methods returning scalar tensors (means over the batch):

    loss.discriminator(real_logits, fake_logits)   # what D minimises
    loss.generator(fake_logits, real_logits)       # what G minimises

Losses see only logits: never a Sigmoid followed by BCE (autocast refuses it and it is less stable); the
log-sigmoid terms use softplus:  -log(sigmoid(t)) = softplus(-t),  -log(1 - sigmoid(t)) = softplus(t).

To add a loss: write one subclass here (or anywhere importable) and one YAML in conf/loss/ whose ``_target_`` names
it. Nothing else changes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


class AdversarialLoss:
    """Base class. ``real_logits`` is optional for the generator: only relativistic losses need it."""

    def discriminator(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        raise NotImplementedError

    def generator(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Minimax(AdversarialLoss):
    """Goodfellow et al. 2014, the original minimax game (MM-GAN).

    D: -E[log D(x)] - E[log(1 - D(G(z)))]        G: E[log(1 - D(G(z)))]
    """

    def discriminator(self, real_logits, fake_logits):
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()

    def generator(self, fake_logits, real_logits=None):
        return -F.softplus(fake_logits).mean()


class NonSaturating(Minimax):
    """Goodfellow et al. 2014, the non-saturating heuristic (NS-GAN): same D loss as minimax.

    G: -E[log D(G(z))]
    """

    def generator(self, fake_logits, real_logits=None):
        return F.softplus(-fake_logits).mean()


class Wasserstein(AdversarialLoss):
    """Arjovsky et al. 2017 (WGAN): the critic's Kantorovich-Rubinstein dual; needs a Lipschitz constraint
    (reg=wclip, gp, sn, ...).

    D: E[D(G(z))] - E[D(x)]        G: -E[D(G(z))]
    """

    def discriminator(self, real_logits, fake_logits):
        return fake_logits.mean() - real_logits.mean()

    def generator(self, fake_logits, real_logits=None):
        return -fake_logits.mean()


class LeastSquares(AdversarialLoss):
    """Mao et al. 2017 (LSGAN) with targets a=0 (fake), b=1 (real), c=1 (G), applied to the raw logits.

    D: 1/2 E[(D(x) - 1)^2] + 1/2 E[D(G(z))^2]        G: 1/2 E[(D(G(z)) - 1)^2]
    """

    @staticmethod
    def transform(logits: Tensor) -> Tensor:
        return logits

    def discriminator(self, real_logits, fake_logits):
        real, fake = self.transform(real_logits), self.transform(fake_logits)
        return 0.5 * ((real - 1).square().mean() + fake.square().mean())

    def generator(self, fake_logits, real_logits=None):
        return 0.5 * (self.transform(fake_logits) - 1).square().mean()


class LeastSquaresSigmoid(LeastSquares):
    """compare_gan's least-squares loss (used by Lucic et al. 2018 and Kurach et al. 2019): the LSGAN formulas
    applied to sigmoid(logits) instead of the logits, so D's output is bounded in (0, 1).
    """

    @staticmethod
    def transform(logits: Tensor) -> Tensor:
        return torch.sigmoid(logits)


class Hinge(AdversarialLoss):
    """Lim & Ye 2017, Tran et al. 2017 (used by SN-GAN, SAGAN, BigGAN).

    D: E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]        G: -E[D(G(z))]
    """

    def discriminator(self, real_logits, fake_logits):
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()

    def generator(self, fake_logits, real_logits=None):
        return -fake_logits.mean()
