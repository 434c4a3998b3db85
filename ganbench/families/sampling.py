"""The evaluation generator of the families: G's exponential moving average and sampling with truncation.

A mixin of ``GAN``. EMA (``ema.decay``, ``ema.start``): the averaged copy follows G's parameters with decay
``min(decay, (1 + t) / (10 + t))`` (t = updates averaged) and copies G's buffers; until G step ``ema.start`` it is
an exact copy of G, as BigGAN-PyTorch's ``utils.py::ema`` (``start_itr``, ajbrock/BigGAN-PyTorch@9845943).
``ema.half_life_kimg`` (StyleGAN2's, NVlabs/stylegan2-ada-pytorch@d72cc7d ``training/training_loop.py``) replaces
the decay: beta = 0.5 ** (batch / n) with n = half_life_kimg * 1000 images, and with ``ema.rampup`` r,
n = min(n, images seen * r) (images seen = G steps done * batch), so the average starts as a copy.

Truncation (``samples.truncation`` = t, ``samples.truncation_mode``), of a normal prior, wherever samples are drawn
for grids and metrics (never in training):

- ``resample``: every entry of z outside [-t, t] is drawn again until all are inside: z ~ N(0, 1) truncated to
  [-t, t] (StudioGAN's ``utils/sample.py::truncated_normal`` with ``scipy.stats.truncnorm``,
  POSTECH-CVLab/PyTorch-StudioGAN@947b35e);
- ``reduced_std``: z ~ N(0, t^2): BigGAN-PyTorch's truncation curves set the sampler's std (``z_.var = t``, which
  its ``Distribution`` passes to ``normal_`` as the std; ``sample.py``, ``utils.py::Distribution``), "not exactly
  identical to using tf.truncated_normal".
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Mapping

import torch
from torch import Tensor, nn

from ganbench.errors import ConfigError
from ganbench.families.common import ema_decay


def resampled_normal(n: int, d: int, t: float, **kw) -> Tensor:
    """N(0, 1) truncated to [-t, t] by redrawing the entries outside it."""
    z = torch.randn(n, d, **kw)
    outside = z.abs() > t
    while bool(outside.any()):
        z = torch.where(outside, torch.randn(n, d, **kw), z)
        outside = z.abs() > t
    return z


def reduced_std_normal(n: int, d: int, t: float, **kw) -> Tensor:
    """N(0, t^2)."""
    return torch.randn(n, d, **kw) * t


TRUNCATIONS: dict[str, Callable[..., Tensor]] = {"resample": resampled_normal, "reduced_std": reduced_std_normal}


def check_truncation(truncation, mode: str, prior: str) -> float | None:
    """The truncation t (None: none) after checking it and its mode."""
    if mode not in TRUNCATIONS:
        raise ConfigError(f"samples.truncation_mode must be one of {', '.join(TRUNCATIONS)}; got {mode!r}")
    if truncation is None:
        return None
    t = float(truncation)
    if not (t > 0 and t < float("inf")):
        raise ConfigError(f"samples.truncation must be a number > 0 (or null: no truncation); got {truncation!r}")
    if prior != "normal":
        raise ConfigError(f"samples.truncation truncates a normal prior; optim.prior={prior} (use optim.prior=normal "
                          f"or samples.truncation=null)")
    return t


class EMASampling:
    """EMA of G and sampling for grids and metrics (mixin of ``GAN``; expects G, G_ema, z_dim, device)."""

    ema_start: int = 0
    ema_half_life_kimg: float | None = None
    ema_rampup: float | None = None
    truncation: float | None = None
    truncation_mode: str = "resample"
    _truncating: bool = False
    _ema_tensors: tuple | None = None

    def setup_half_life(self, half_life_kimg, rampup) -> None:
        for key, value in (("half_life_kimg", half_life_kimg), ("rampup", rampup)):
            if value is not None and not (float(value) > 0 and float(value) < float("inf")):
                raise ConfigError(f"ema.{key} must be a number > 0 or null; got {value!r}")
        self.ema_half_life_kimg = None if half_life_kimg is None else float(half_life_kimg)
        self.ema_rampup = None if rampup is None else float(rampup)

    def half_life_beta(self) -> float:
        """StyleGAN2's EMA beta at this G step."""
        batch = int(self.optim_cfg["batch_size"])
        n = self.ema_half_life_kimg * 1000
        if self.ema_rampup is not None:
            n = min(n, self.g_step * batch * self.ema_rampup)
        return 0.5 ** (batch / max(n, 1e-8))

    def setup_truncation(self, truncation, mode: str) -> None:
        self.truncation = check_truncation(truncation, mode, self.optim_cfg["prior"])
        self.truncation_mode = mode

    def draw_prior(self, n: int, **kw) -> Tensor:
        """z for ``n`` samples: truncated inside ``evaluation_prior()`` when samples.truncation is set."""
        if self._truncating and self.truncation is not None:
            return TRUNCATIONS[self.truncation_mode](n, self.z_dim, self.truncation, **kw)
        return self._prior(n, self.z_dim, **kw)

    @contextmanager
    def evaluation_prior(self):
        """Within it, ``sample_z`` draws the (truncated) evaluation prior."""
        before, self._truncating = self._truncating, True
        try:
            yield
        finally:
            self._truncating = before

    def truncation_protocol(self) -> dict:
        """samples.truncation (of z), and what the generator itself applies when sampling (a net's
        ``sampling_protocol()``, e.g. StyleGAN2's truncation psi toward w_avg)."""
        parts = {} if self.truncation is None else {"truncation": self.truncation,
                                                    "truncation_mode": self.truncation_mode}
        net = getattr(self.G, "sampling_protocol", None)
        return {**parts, **net()} if callable(net) else parts

    @torch.no_grad()
    def update_ema(self) -> None:
        """The EMA generator follows G: parameters averaged, buffers (batch norm statistics, spectral norm's u and v)
        copied, as StyleGAN2-ADA does (NVlabs/stylegan2-ada-pytorch@d72cc7d ``training/training_loop.py``): an
        averaged u/v would no longer be unit vectors and would underestimate sigma. Before G step ``ema.start``
        the parameters are copied too. One foreach op per step: the values ``AveragedModel.update_parameters`` with
        ``ema_avg_fn`` computes (tested bitwise equal), without its per-tensor Python loop and second buffer copy."""
        if self.G_ema is None:
            return
        ema, params, ema_buffers, buffers = self.ema_tensors()
        n_averaged = self.G_ema.n_averaged
        if self.g_step < self.ema_start:
            torch._foreach_copy_(ema, params)
            n_averaged.fill_(1)  # averaging starts from this copy at step ema.start
        else:
            if self.ema_half_life_kimg is not None:
                torch._foreach_lerp_(ema, params, 1 - self.half_life_beta())
            elif (t := int(n_averaged)) == 0:
                torch._foreach_copy_(ema, params)
            else:
                torch._foreach_lerp_(ema, params, 1 - ema_decay(self.ema_decay, t))
            n_averaged += 1
        if buffers:
            torch._foreach_copy_(ema_buffers, buffers)

    def ema_tensors(self) -> tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor]]:
        """(G_ema's parameters, G's, G_ema's buffers, G's), listed once: walking both modules every G step costs
        about half of the update on the toy MLP. Listed again after the module is moved or cast (``_apply``
        replaces buffers)."""
        if self._ema_tensors is None:
            ema, g = self.G_ema.module, self.G
            self._ema_tensors = (list(ema.parameters()), list(g.parameters()), list(ema.buffers()), list(g.buffers()))
        return self._ema_tensors

    def _apply(self, fn, *args, **kwargs):
        self._ema_tensors = None  # .to(), .cuda(), .half() and the like give buffers new tensors
        return super()._apply(fn, *args, **kwargs)

    @property
    def sampler(self) -> nn.Module:
        """The generator used for samples and evaluation: the EMA copy when there is one."""
        return self.G_ema.module if self.G_ema is not None else self.G

    @torch.no_grad()
    def sample(self, n: int | None = None, z: Tensor | None = None, batch_size: int = 256,
               inputs: Mapping[str, Tensor] | None = None) -> Tensor:
        """``n`` samples from the evaluation generator (eval mode), in chunks; the training mode is restored.
        ``inputs`` (or ``z``) fixes G's inputs; otherwise they are drawn with ``sample_inputs`` (z truncated when
        samples.truncation is set)."""
        net = self.sampler
        was_training = net.training
        net.eval()
        try:
            if inputs is None:
                with self.evaluation_prior():
                    inputs = self.sample_inputs(int(n)) if z is None else {"z": z}
            inputs = {k: v.to(self.device) for k, v in inputs.items()}
            total = len(next(iter(inputs.values())))
            chunks = [{k: v[i:i + batch_size] for k, v in inputs.items()} for i in range(0, total, batch_size)]
            return torch.cat([self.generate(chunk, net) for chunk in chunks]).float()
        finally:
            net.train(was_training)
