"""The Gaussian encoder of ``family=vae``: a discriminator's body (``features``) with a head to 2 x z_dim numbers.

compare_gan v1 (google/compare_gan@d6c5976ba2b9d19dbff42f439c20b48565d10235, branch v1,
``compare_gan/src/gans/VAE.py`` ``VAE.encoder``) builds the encoder as its InfoGAN-style D (conv 64, conv 128 [BN],
fc 1024 [BN], lReLU) with the last layer widened to 2 x z_dim: the first z_dim are the mean, the others give the
standard deviation as 1e-6 + softplus(.). Here the body is any ganbench Discriminator (``model.discriminator``;
with ``model=infogan`` exactly v1's, ``batch_norm`` its BN switch); its 1-unit head is dropped.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ganbench.errors import ConfigError

STD_FLOOR = 1e-6  # v1: stddev = 1e-6 + softplus(.)


class GaussianEncoder(nn.Module):
    """``forward(x) -> (mean, std)``, each (N, z_dim): q(z | x) = N(mean, diag(std^2))."""

    def __init__(self, body: nn.Module, z_dim: int):
        super().__init__()
        if not hasattr(body, "features") or not hasattr(body, "feature_dim"):
            raise ConfigError(f"family=vae builds its encoder on model.discriminator's features(); "
                              f"{type(body).__name__} has none")
        body.head = nn.Identity()  # D's logit layer: replaced by the Gaussian head below
        self.body = body
        self.z_dim = int(z_dim)
        self.head = nn.Linear(body.feature_dim, 2 * self.z_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        params = self.head(self.body.features(x))
        mean, raw = params[:, :self.z_dim], params[:, self.z_dim:]
        return mean, STD_FLOOR + F.softplus(raw)
