"""Small pure pieces shared by the families: latent priors, the EMA update, and D outputs."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

PRIORS: dict[str, Callable[..., Tensor]] = {
    "normal": lambda n, d, **kw: torch.randn(n, d, **kw),
    "uniform": lambda n, d, **kw: torch.rand(n, d, **kw) * 2 - 1,
}
Output = Any  # what D returns: a (N,) logit tensor, or a dict with "logit" and a family's heads

#: how D sees a batch (``family.d_calls``): (real and fake in one call in the D step, and in the G step). One call
#: means batch norm in D normalises reals and fakes together.
#: - ``separate``: one call for reals, one for fakes, in both steps: compare_gan v1 (``GAN.py``) and v2
#:   (``gans_with_penalty.py``), the code of Lucic et al. 2018 and Kurach et al. 2019 (google/compare_gan
#:   v1@d6c5976, v2@766edb2);
#: - ``joint``: cat(real, fake) in both steps (G's step too): compare_gan master's ``ModularGAN.create_loss``
#:   (master@19922d3; ``deprecated_split_disc_calls=False``);
#: - ``joint_in_d_step``: one call in the D step, fakes alone in the G step (ganbench's loop before this option).
D_CALLS = {"separate": (False, False), "joint": (True, True), "joint_in_d_step": (True, False)}


def ema_decay(decay: float, t: int) -> float:
    """The EMA's decay at its t-th average (t >= 1) with the usual warm-up: min(decay, (1 + t) / (10 + t))."""
    return min(decay, (1 + t) / (10 + t))


def ema_avg_fn(decay: float):
    """``AveragedModel``'s ``multi_avg_fn`` for that EMA (the reference ``update_ema`` is tested against)."""

    def update(ema_params, params, num_averaged):
        if not ema_params[0].is_floating_point():  # e.g. batch norm's num_batches_tracked: copied
            torch._foreach_copy_(ema_params, params)
            return
        torch._foreach_lerp_(ema_params, params, 1 - ema_decay(decay, int(num_averaged)))

    return update


def logit(out: Output) -> Tensor:
    return out["logit"] if isinstance(out, dict) else out


def detached(out: Output) -> Output:
    """A tensor, or a dict of tensors (CycleGAN's translations both ways), without its graph."""
    return {k: v.detach() for k, v in out.items()} if isinstance(out, dict) else out.detach()


def split_output(out: Output, n: int) -> tuple[Output, Output]:
    """Split a joint D output (a tensor or a dict of tensors) into its first ``n`` rows and the rest."""
    if isinstance(out, dict):
        parts = {k: v.split([n, v.shape[0] - n]) for k, v in out.items()}
        return {k: p[0] for k, p in parts.items()}, {k: p[1] for k, p in parts.items()}
    return tuple(out.split([n, out.shape[0] - n]))
