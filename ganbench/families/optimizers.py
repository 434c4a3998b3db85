"""The families' optimizers: ``optim.optimizer`` for G and D, StyleGAN2's lazy-regularization correction, and the
learning-rate schedule ``optim.lr_decay``.

Lazy regularization (Karras et al. 2020, NVlabs/stylegan2-ada-pytorch@d72cc7d ``training/training_loop.py``,
"mb_ratio"): a penalty computed every k-th step of a net (``reg.<name>.interval = k > 1``; multiplied by k) is
compensated in that net's optimizer: lr * c and betas ** c with c = k / (k + 1), as if the regularization step were
an extra minibatch. A regularizer names its net with ``lazy_net`` ("discriminator": R1/R2; "generator": path
length). An optimizer without betas (SGD, RMSprop) gets the lr correction only.

``optim.lr_decay``: ``none`` (default) or ``linear``: the learning rate of both optimizers stays constant for the
first ``optim.lr_decay_start`` (0.5) of ``optim.g_steps`` and then falls linearly to 0 at the last G step, as
pytorch-CycleGAN-and-pix2pix's ``linear`` policy (``models/networks.py::get_scheduler``, per epoch there, per G step
here). The rate is a function of the G step alone, so a resumed run continues exactly.
"""

from __future__ import annotations

import inspect
import os
from functools import partial
from typing import Callable, Mapping

import torch

from ganbench.errors import ConfigError

NETS = ("generator", "discriminator")


def lazy_ratio(regularizers: Mapping, net: str) -> float:
    """c = k / (k + 1) for the lazy regularizer of ``net`` (interval k > 1), 1 without one."""
    intervals = {name: int(r.interval) for name, r in regularizers.items()
                 if int(getattr(r, "interval", 1)) > 1 and getattr(r, "lazy_net", "discriminator") == net}
    if len(set(intervals.values())) > 1:
        listed = ", ".join(f"reg.{n}.interval={k}" for n, k in intervals.items())
        raise ConfigError(f"lazy regularizers of the {net} need one interval (the optimizer is corrected for one): "
                          f"got {listed}")
    k = next(iter(intervals.values()), 1)
    return k / (k + 1) if k > 1 else 1.0


def optimizer_factory(optim_cfg: Mapping) -> Callable:
    """params, lr[, betas] -> the torch optimizer ``optim.optimizer`` names (Adam with beta1/beta2 for old configs)."""
    if optim_cfg.get("optimizer"):
        from hydra.utils import instantiate

        return instantiate(optim_cfg["optimizer"])
    return partial(torch.optim.Adam, betas=(float(optim_cfg["beta1"]), float(optim_cfg["beta2"])))


NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"


def drop_nvml_cuda_check() -> None:
    """Lightning's import sets PYTORCH_NVML_BASED_CUDA_CHECK=1 (lightning/fabric/__init__.py: CUDA checks that keep
    fork safe). On a machine without a GPU every ``torch.cuda.is_available()`` then loads NVML (0.13 ms here, 5 us
    without it), and torch's Adam asks it at every step (``_accelerator_graph_capture_health_check``,
    torch/optim/optimizer.py). Without a GPU there is no CUDA to keep fork safe: the variable goes, as in a plain
    PyTorch script. With a GPU it stays (once CUDA is initialized, torch caches the device count)."""
    if os.environ.get(NVML_CHECK) == "1" and not torch.cuda.is_available():
        del os.environ[NVML_CHECK]


def make_optimizer(make: Callable, params, lr: float, c: float = 1.0):
    """The optimizer with lr * c and, if it has betas, betas ** c (StyleGAN2's lazy correction; c = 1: unchanged).

    Unless the config picks an implementation (``foreach`` or ``fused`` in ``optim.optimizer``), torch's foreach one:
    torch's own default for CUDA tensors; on CPU (where torch defaults to a Python loop of ~8 ops per tensor) the
    same numbers, bitwise (tests/test_optimizers.py), in a few multi-tensor ops per step."""
    keywords = getattr(make, "keywords", {})
    betas = keywords.get("betas")
    extra = {"betas": tuple(float(b) ** c for b in betas)} if betas is not None and c != 1 else {}
    drop_nvml_cuda_check()
    if not {"foreach", "fused"} & keywords.keys() and \
            "foreach" in inspect.signature(getattr(make, "func", make)).parameters:
        extra["foreach"] = True
    return make(params, lr=lr * c, **extra)


def linear_decay(start_fraction: float, total: int) -> Callable[[int], float]:
    """Factor of the base lr at G step t: 1 until start_fraction * total, then linear to 0 at ``total``."""
    if not 0 <= start_fraction < 1:
        raise ConfigError(f"optim.lr_decay_start must be a fraction in [0, 1); got {start_fraction}")
    begin = start_fraction * total

    def factor(t: int) -> float:
        return 1.0 if t < begin else max(0.0, 1.0 - (t - begin) / max(total - begin, 1.0))

    return factor


SCHEDULES: dict[str, Callable[..., Callable[[int], float] | None]] = {
    "none": lambda start, total: None,
    "linear": linear_decay,
}


def lr_schedule(optim_cfg: Mapping) -> Callable[[int], float] | None:
    name = str(optim_cfg.get("lr_decay") or "none")
    if name not in SCHEDULES:
        raise ConfigError(f"optim.lr_decay must be one of {', '.join(SCHEDULES)}; got {name!r}")
    return SCHEDULES[name](float(optim_cfg.get("lr_decay_start", 0.5)), int(optim_cfg.get("g_steps", 1)))
