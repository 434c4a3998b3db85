"""2-D toy metrics: mode coverage of Gaussian mixtures (VEEGAN, Srivastava et al. 2017; PacGAN, Lin et al. 2018)
and the energy distance for data without discrete modes (swiss roll)."""

from __future__ import annotations

import math

import torch


def mode_metrics(samples: torch.Tensor, modes: torch.Tensor, std: float, threshold: float = 3.0) -> dict[str, float]:
    """Mode statistics of 2-D ``samples`` against a mixture of isotropic Gaussians (``modes`` (K, 2), ``std``).

    A sample is *high quality* (HQ) if it lies within ``threshold`` std of its nearest mode (VEEGAN/PacGAN use 3).

    - ``modes``: the number of modes with at least one HQ sample (PacGAN counts a mode as captured from a minimum
      number of HQ samples; ganbench uses the simplest rule, >= 1, so the count never depends on the sample size
      through a hand-picked threshold).
    - ``hq_frac``: the fraction of samples that are HQ.
    - ``reverse_kl``: KL(p || u) between the histogram p of the HQ samples over the modes and the uniform target u,
      = sum_k p_k log(K p_k). Empty modes contribute 0 log 0 = 0, which ``torch.xlogy`` computes exactly, so no
      epsilon is added (an epsilon is needed only in the forward KL(u || p)). Without any HQ sample p is undefined
      and ``reverse_kl`` is log K, the largest value KL(p || u) takes (all mass on one mode).
    """
    samples, modes = samples.to(torch.float64), modes.to(samples.device, torch.float64)
    k = len(modes)
    dist, nearest = torch.cdist(samples, modes).min(dim=1)
    hq = dist <= threshold * std
    counts = torch.bincount(nearest[hq], minlength=k).to(torch.float64)
    n_hq = float(counts.sum())
    if n_hq == 0:
        reverse_kl = math.log(k)
    else:
        p = counts / n_hq
        reverse_kl = float(torch.xlogy(p, p * k).sum())
    return {"modes": float((counts > 0).sum()), "hq_frac": n_hq / len(samples), "reverse_kl": reverse_kl}


def mean_distance(x: torch.Tensor, y: torch.Tensor, chunk: int = 2048) -> float:
    """The mean Euclidean distance over all pairs (x_i, y_j), summed in float64 blocks of ``chunk`` rows."""
    x, y = x.to(torch.float64), y.to(torch.float64)
    return sum(float(torch.cdist(block, y).sum()) for block in x.split(chunk)) / (len(x) * len(y))


def energy_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """The energy distance (Szekely & Rizzo 2013) between the empirical distributions of ``x`` and ``y``:
    2 E|X - Y| - E|X - X'| - E|Y - Y'| over all pairs (a V-statistic): >= 0, and 0 iff the two point sets have the
    same empirical distribution."""
    return 2 * mean_distance(x, y) - mean_distance(x, x) - mean_distance(y, y)
