"""``reg=pl``: StyleGAN2's path length regularization of the generator (Karras et al. 2020).

As NVlabs/stylegan2-ada-pytorch@d72cc7d ``training/loss.py::StyleGAN2Loss`` (phase ``Greg``) computes it:

    ws = G.styles(z[:N // batch_shrink], y)                  (the mapping, with style mixing as in training)
    img = G.synthesis(ws);  u = randn_like(img) / sqrt(H W)
    g = d <img, u> / d ws                                     (N', num_ws, w_dim), graph kept
    len = sqrt(mean_over_ws(sum_over_wdim g^2))               (N',)
    pl_mean <- lerp(pl_mean, mean(len), decay)                (kept detached; the penalty uses the lerp itself,
                                                                so its gradient reaches mean(len) too, as SG2A)
    term = weight * mean((len - pl_mean)^2) * interval

every ``interval``-th G step (lazy regularization: G steps 0, k, 2k, ...; counted by the family's ``g_step`` so a
resumed run is on the same schedule), on a batch shrunk by ``batch_shrink``. G's optimizer gets the lazy correction
(``lazy_net = "generator"``: lr * c, betas ** c, c = k/(k+1); ``ganbench/families/optimizers.py``). SG2A's defaults:
weight 2, decay 0.01, batch_shrink 2, interval 4 (its ``cifar`` config sets the weight to 0).

The generator must expose ``styles(z[, y]) -> ws`` and ``synthesis(ws) -> images`` (model=stylegan2). ``pl_mean``
is state: ``state_dict()`` / ``load_state_dict()`` carry it in the checkpoint.
"""

from __future__ import annotations

import math
from contextlib import nullcontext

import torch
from torch import Tensor

from ganbench.errors import ConfigError
from ganbench.regularizers import Regularizer, _check_weight


def path_lengths(ws: Tensor, images: Tensor, noise: Tensor) -> Tensor:
    """sqrt(mean_ws sum_wdim (d <images, noise> / d ws)^2) per sample, differentiable."""
    (grad,) = torch.autograd.grad((images * noise).sum(), ws, create_graph=True)
    return grad.square().sum(2).mean(1).sqrt()


def pl_noise(images: Tensor) -> Tensor:
    """N(0, 1) / sqrt(H W), shaped like the images (SG2A ``pl_noise``)."""
    return torch.randn_like(images) / math.sqrt(images.shape[2] * images.shape[3])


class PathLength(Regularizer):
    """``reg=pl`` (see the module docstring)."""

    lazy_net = "generator"

    def __init__(self, weight: float = 2.0, decay: float = 0.01, batch_shrink: int = 2, interval: int = 4):
        self.weight = _check_weight("pl.weight", weight)
        self.decay = float(decay)
        if not 0 <= self.decay <= 1:
            raise ConfigError(f"reg.pl.decay must be a number in [0, 1] (SG2A: 0.01); got {decay}")
        for key, value in (("batch_shrink", batch_shrink), ("interval", interval)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"reg.pl.{key} must be an integer >= 1; got {value!r}")
        self.batch_shrink, self.interval = batch_shrink, interval
        self.pl_mean = torch.zeros(())

    def configure(self, generator, discriminator) -> None:
        if not all(callable(getattr(generator, name, None)) for name in ("styles", "synthesis")):
            raise ConfigError(f"reg=pl needs a generator with a mapping network (model=stylegan2: styles(z) and "
                              f"synthesis(ws)); this one is {type(generator).__name__}")

    def check_data(self, shape) -> None:
        if len(shape) != 3:
            raise ConfigError(f"reg=pl regularizes an image generator; the data has shape {tuple(shape)}")

    def g_step_term(self, gan, inputs: dict, fake: Tensor) -> Tensor | None:
        if self.weight == 0 or gan.g_step % self.interval:
            return None
        extra = sorted(set(inputs) - {"z", "y"})
        if extra:
            raise ConfigError(f"reg=pl maps G's latent z (and labels y); family={gan.family_name()} also feeds G "
                              f"{extra}")
        n = max(1, inputs["z"].shape[0] // self.batch_shrink)
        args = [inputs[k][:n] for k in ("z", "y") if k in inputs]
        device = inputs["z"].device.type
        amp = torch.is_autocast_enabled(device)
        with torch.autocast(device, enabled=False) if amp else nullcontext():
            ws = gan.G.styles(*args)
            if not ws.requires_grad:  # a mapping without trainable weights: differentiate w.r.t. ws itself
                ws = ws.detach().requires_grad_(True)
            images = gan.G.synthesis(ws)
            lengths = path_lengths(ws, images.float(), pl_noise(images.float()))
        pl_mean = self.pl_mean.to(lengths.device).lerp(lengths.mean(), self.decay)
        self.pl_mean = pl_mean.detach()
        return self.weight * (lengths - pl_mean).square().mean() * self.interval

    def state_dict(self) -> dict:
        return {"pl_mean": self.pl_mean.detach().cpu().clone()}

    def load_state_dict(self, state: dict) -> None:
        self.pl_mean = torch.as_tensor(state["pl_mean"], dtype=torch.float32).clone()

    def protocol(self) -> dict:
        return {"weight": self.weight, "decay": self.decay, "batch_shrink": self.batch_shrink,
                "interval": self.interval, "noise": "randn_like(img) / sqrt(H W)",
                "source": "NVlabs/stylegan2-ada-pytorch@d72cc7d training/loss.py (Gpl)"}
