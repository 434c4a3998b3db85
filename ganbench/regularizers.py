"""Regularizers of the discriminator: gradient penalties, weight constraints and normalizations.

Every regularizer is one class deriving from ``Regularizer`` and overriding what applies to it:

    reg.penalty(D, real, fake) -> Tensor | None   # a term added to D's loss (already weighted); None: no term
    reg.interval                                  # lazy regularization: the term is computed every
                                                  # ``interval`` D steps and multiplied by ``interval``
    reg.after_d_step(D)                           # a constraint applied after every D update (weight clipping)
    reg.d_norm                                    # a normalization-layer factory for D's hidden layers (bn, ln)
    reg.configure(G, D)                           # a change to the networks at build time (spectral norm)
    reg.check_data(shape)                         # refuse data it cannot apply to (CR on 2-D vectors)
    reg.d_step_term(gan, inputs, fake, fake_out)  # a D-loss term that needs G or the family (zCR)
    reg.g_step_term(gan, inputs, fake)            # a G-loss term (zCR's, orthogonal regularization)
    reg.protocol()                                # what the run used, recorded in result.json
    reg.state_dict() / reg.load_state_dict(state) # running state in the checkpoint (path length's mean)

``D`` is any callable from a batch to logits of shape (N,): the trainer passes the discriminator composed with the
augmentation, so penalties see what the discriminator sees; ``critic.fake`` is the same critic with the fakes'
condition (class labels of the conditional family; the critic itself elsewhere). Several regularizers compose (``reg=[gp,sn]``).

To add one: write one subclass here (or anywhere importable) and one YAML in conf/reg/ with the header
``# @package reg.<name>`` and a ``_target_`` naming the class. Nothing else changes.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Callable

import torch
from torch import Tensor, nn

from ganbench.errors import ConfigError
from ganbench.nets.layers import NormFactory, batch_norm, layer_norm

Critic = Callable[[Tensor], Tensor]


def _check_weight(name: str, value: float) -> float:
    value = float(value)
    if not (value >= 0 and math.isfinite(value)):
        raise ConfigError(f"reg.{name} must be a finite number >= 0; got {value}")
    return value


def input_gradients(critic: Critic, x: Tensor) -> Tensor:
    """d critic(x) / dx for every sample (the graph is kept so a penalty on it can be backpropagated).

    Under mixed precision (autocast on) the critic runs here in float32 with autocast off, so the gradient is exact
    and unscaled; a GradScaler then scales only the total D loss that includes the penalty, as PyTorch's AMP
    gradient-penalty recipe requires.
    """
    amp = torch.is_autocast_enabled(x.device.type)
    x = (x.detach().float() if amp else x.detach()).requires_grad_(True)
    with torch.autocast(x.device.type, enabled=False) if amp else nullcontext():
        (grad,) = torch.autograd.grad(critic(x).float().sum(), x, create_graph=True)
    return grad


def per_sample_norm(grad: Tensor, eps: float = 0.0) -> Tensor:
    """||g||_2 over all non-batch axes; ``eps`` is added under the square root (compare_gan uses 1e-4).

    With ``eps = 0`` a sample whose gradient is exactly zero has norm 0 and a zero gradient through the norm
    (the plain sqrt would backpropagate 0 * inf = NaN into D's weights)."""
    squared = grad.flatten(1).square().sum(1) + eps
    if eps > 0:
        return squared.sqrt()
    positive = squared > 0
    return torch.where(positive, squared, torch.ones_like(squared)).sqrt() * positive


def _uniform_like_batch(x: Tensor) -> Tensor:
    """One U[0, 1) number per sample, broadcastable against x."""
    return torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), device=x.device, dtype=x.dtype)


class Regularizer:
    """Base class: does nothing. Subclasses override what applies."""

    interval: int = 1
    #: the net whose optimizer a lazy interval > 1 corrects (StyleGAN2; families/optimizers.py)
    lazy_net: str = "discriminator"
    d_norm: NormFactory | None = None
    #: the interval D sees images in (``data.range``; set by the family): DRAGAN clips its perturbations to it
    data_range: tuple[float, float] = (-1.0, 1.0)

    def configure(self, generator: nn.Module, discriminator: nn.Module) -> None:
        """Change the networks once, at build time."""

    def penalty(self, critic: Critic, real: Tensor, fake: Tensor) -> Tensor | None:
        """The (weighted) term added to the discriminator's loss, or None."""
        return None

    def after_d_step(self, discriminator: nn.Module) -> None:
        """A constraint applied after every discriminator update."""

    def check_data(self, shape: tuple) -> None:
        """Raise ConfigError when the data (its sample ``shape``: (C, H, W) or (D,)) is not something this applies to."""

    def d_step_term(self, gan, inputs: dict, fake: Tensor, fake_out) -> Tensor | None:
        """A (weighted) term of D's loss that needs the family module ``gan`` (its ``generate``, ``discriminate``):
        ``inputs`` made ``fake`` (no grad), on which D output ``fake_out``. Called once per D step."""
        return None

    def g_step_term(self, gan, inputs: dict, fake: Tensor) -> Tensor | None:
        """A (weighted) term of G's loss; ``fake = gan.generate(inputs)`` with its graph. Called once per G step."""
        return None

    def protocol(self) -> dict:
        """What this regularizer did, for result.json (empty: nothing beyond its config)."""
        return {}

    def state_dict(self) -> dict:
        """Running state kept in the checkpoint (path length's pl_mean); empty for most."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore ``state_dict()``'s state on resume."""

    def __call__(self, critic: Critic, real: Tensor, fake: Tensor) -> Tensor:
        """The penalty as a tensor (zero for regularizers without one): the documented Python API."""
        term = self.penalty(critic, real, fake)
        return real.new_zeros(()) if term is None else term

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


class NoRegularizer(Regularizer):
    """``reg=none``: an unregularized discriminator."""


class GradientPenalty(Regularizer):
    """WGAN-GP (Gulrajani et al. 2017): lambda * E[(||grad D(x_hat)||_2 - 1)^2],
    x_hat = a * x + (1 - a) * G(z), a ~ U[0, 1] per sample.

    The norm is sqrt(||g||^2 + eps): ``eps = 1e-4`` (default) as compare_gan's ``wgangp_penalty``
    (google/compare_gan master@19922d3 ``compare_gan/gans/penalty_lib.py``, the code of Kurach et al. 2019 and
    Lucic et al. 2018); ``eps = 0`` is Gulrajani et al.'s exact form, with a zero gradient where ||g|| = 0.
    """

    def __init__(self, weight: float = 10.0, eps: float = 1e-4):
        self.weight = _check_weight("gp.weight", weight)
        self.eps = _check_weight("gp.eps", eps)

    def penalty(self, critic, real, fake):
        a = _uniform_like_batch(real)
        x_hat = a * real.detach() + (1 - a) * fake.detach()
        return self.weight * (per_sample_norm(input_gradients(critic, x_hat), self.eps) - 1).square().mean()


class DRAGAN(Regularizer):
    """DRAGAN (Kodali et al. 2017) as implemented in compare_gan for Kurach et al. 2019:

        x_noisy = clip(x + std(x) * (U[0,1) - 1/2) * noise, data range),  std over the whole batch
        penalty = lambda * E[(sqrt(||grad D(x_noisy)||^2 + 1e-4) - 1)^2]

    Images are clipped to D's range (``data.range``: [-1, 1], or [0, 1] as compare_gan); vectors are not clipped.
    """

    def __init__(self, weight: float = 1.0, noise: float = 1.0):
        self.weight = _check_weight("dragan.weight", weight)
        self.noise = _check_weight("dragan.noise", noise)

    def perturb(self, real: Tensor) -> Tensor:
        x = real.detach()
        x_noisy = x + self.noise * x.std(unbiased=False) * (torch.rand_like(x) - 0.5)
        return x_noisy.clamp(*self.data_range) if x.dim() == 4 else x_noisy

    def penalty(self, critic, real, fake):
        grad = input_gradients(critic, self.perturb(real))
        return self.weight * (per_sample_norm(grad, eps=1e-4) - 1).square().mean()


class DRAGANLucic(Regularizer):
    """DRAGAN as in Lucic et al. 2018 (compare_gan v1, after the DRAGAN authors' code): perturb x by a one-sided
    uniform noise, then penalise the gradient of D's *sigmoid output* at a random point between x and its
    perturbation:

        x_p = x + noise * std(x) * U[0, 1)          (noise = 0.5; std over the whole batch)
        x_hat = x + alpha * (x_p - x), alpha ~ U[0, 1] per sample
        penalty = lambda * E[(sqrt(||grad sigmoid(D(x_hat))||^2 + 1e-4) - 1)^2]

    ``output=logits`` penalises the logits' gradient instead (as reg=dragan does), for a loss whose D has no
    sigmoid (WGAN, hinge).
    """

    OUTPUTS = ("sigmoid", "logits")

    def __init__(self, weight: float = 10.0, noise: float = 0.5, output: str = "sigmoid"):
        self.weight = _check_weight("dragan_lucic.weight", weight)
        self.noise = _check_weight("dragan_lucic.noise", noise)
        if output not in self.OUTPUTS:
            raise ConfigError(f"reg.dragan_lucic.output must be one of {', '.join(self.OUTPUTS)}; got {output!r}")
        self.output = output

    def penalty(self, critic, real, fake):
        x = real.detach()
        x_p = x + self.noise * x.std(unbiased=False) * torch.rand_like(x)
        x_hat = x + _uniform_like_batch(x) * (x_p - x)
        scored = (lambda z: torch.sigmoid(critic(z))) if self.output == "sigmoid" else critic
        return self.weight * (per_sample_norm(input_gradients(scored, x_hat), eps=1e-4) - 1).square().mean()


class R1(Regularizer):
    """Zero-centred gradient penalty on real data (Mescheder et al. 2018): gamma/2 * E_x[||grad D(x)||^2].
    ``interval`` > 1 gives StyleGAN2's lazy regularization (every k-th D step, term multiplied by k, D's optimizer
    corrected: lr * c, betas ** c, c = k / (k + 1))."""

    on_fake = False

    def __init__(self, gamma: float = 10.0, interval: int = 1):
        self.gamma = _check_weight("r1.gamma", gamma)
        self.interval = int(interval)
        if self.interval < 1:
            raise ConfigError(f"reg.{type(self).__name__.lower()}.interval must be an integer >= 1; got {interval}")

    def penalty(self, critic, real, fake):
        x = fake if self.on_fake else real
        return self.gamma / 2 * input_gradients(critic, x).flatten(1).square().sum(1).mean()


class R2(R1):
    """Zero-centred gradient penalty on generated data (Mescheder et al. 2018): gamma/2 * E_G(z)[||grad D||^2]."""

    on_fake = True


class WeightClipping(Regularizer):
    """WGAN's weight clipping (Arjovsky et al. 2017): every D parameter clamped to [-c, c] after each D step."""

    def __init__(self, clip: float = 0.01):
        self.clip = float(clip)
        if not self.clip > 0:
            raise ConfigError(f"reg.wclip.clip must be a number > 0; got {clip}")

    @torch.no_grad()
    def after_d_step(self, discriminator):
        for p in discriminator.parameters():
            p.clamp_(-self.clip, self.clip)


def kernel_weights(module: nn.Module) -> list[Tensor]:
    """The weight matrices/kernels of every Linear and Conv layer (no biases, no norm gains)."""
    layers = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d)
    return [m.weight for m in module.modules() if isinstance(m, layers)]


class L2(Regularizer):
    """L2 weight penalty on D's kernels (Kurach et al. 2019): lambda * reduce_l(||W_l||^2 / 2).

    ``reduction: mean`` (default) averages the per-layer terms as compare_gan's l2_penalty does; ``sum`` adds them
    (classic weight decay). Biases and normalization gains are not penalised.
    """

    def __init__(self, weight: float = 0.01, reduction: str = "mean"):
        self.weight = _check_weight("l2.weight", weight)
        reducers = {"mean": torch.mean, "sum": torch.sum}
        if reduction not in reducers:
            raise ConfigError(f"reg.l2.reduction must be one of {', '.join(reducers)}; got {reduction!r}")
        self.reduction = reduction
        self._reduce = reducers[reduction]
        self._discriminator: nn.Module | None = None

    def configure(self, generator, discriminator):
        if not kernel_weights(discriminator):
            raise ConfigError(f"reg=l2: {type(discriminator).__name__} has no Linear/Conv layer to penalise (its "
                              f"layers are its own, e.g. equalized-lr); use another regularizer")
        self._discriminator = discriminator

    def penalty(self, critic, real, fake):
        weights = kernel_weights(self._discriminator)
        return self.weight * self._reduce(torch.stack([w.square().sum() / 2 for w in weights]))


class SpectralNorm(Regularizer):
    """Spectral normalization (Miyato et al. 2018): every Linear/Conv weight of D (and of G if ``generator``)
    divided by its largest singular value, estimated by ``power_iterations`` of power iteration per step."""

    def __init__(self, generator: bool = False, power_iterations: int = 1):
        self.generator = bool(generator)
        self.power_iterations = int(power_iterations)
        if self.power_iterations < 1 or self.power_iterations != power_iterations:
            raise ConfigError(f"reg.sn.power_iterations must be an integer >= 1; got {power_iterations}")

    def configure(self, generator, discriminator):
        nets = [discriminator, generator] if self.generator else [discriminator]
        for net in nets:
            apply_spectral_norm(net, self.power_iterations)


def apply_spectral_norm(net: nn.Module, power_iterations: int = 1) -> nn.Module:
    """Spectral norm on every Linear/Conv of ``net`` not normalised yet (a model that declares ``spectral_norm``
    and ``reg=sn`` together normalise each layer once)."""
    from torch.nn.utils import parametrize
    from torch.nn.utils.parametrizations import spectral_norm

    layers = [m for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d))]
    if not layers:
        raise ConfigError(f"spectral norm: {type(net).__name__} has no Linear/Conv layer to normalise (its layers are "
                          f"its own, e.g. equalized-lr); drop reg=sn / model.spectral_norm for it")
    for module in layers:
        if not parametrize.is_parametrized(module, "weight"):
            spectral_norm(module, n_power_iterations=power_iterations)
    return net


class BatchNormD(Regularizer):
    """Batch normalization (Ioffe & Szegedy 2015) after D's hidden layers, as in Kurach et al. 2019."""

    d_norm = staticmethod(batch_norm)


class LayerNormD(Regularizer):
    """Layer normalization (Ba et al. 2016) over (C, H, W) after D's hidden layers, as in Kurach et al. 2019."""

    d_norm = staticmethod(layer_norm)
