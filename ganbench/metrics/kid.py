"""Kernel Inception Distance (Binkowski et al. 2018, "Demystifying MMD GANs"), torch-fidelity's estimator."""

from __future__ import annotations

import numpy as np
import torch


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor, degree: int = 3, coef: float = 1.0) -> torch.Tensor:
    """k(x, y) = (x.y / d + coef)^degree, the KID kernel (gamma = 1/d), for all row pairs, in float64."""
    x, y = x.to(torch.float64), y.to(torch.float64)
    return (x @ y.T / x.shape[1] + coef) ** degree


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor) -> float:
    """The unbiased MMD^2 estimate of two equal-size samples (Gretton et al. 2012, eq. 3; the KID estimator):

    sum_{i!=j} k(x_i, x_j) / (m(m-1)) + sum_{i!=j} k(y_i, y_j) / (m(m-1)) - 2 sum_{i,j} k(x_i, y_j) / m^2.
    """
    m = len(x)
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within = (kxx.sum() - kxx.diagonal().sum() + kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return float(within - 2 * kxy.sum() / m**2)


def kernel_inception_distance(x: torch.Tensor, y: torch.Tensor, subsets: int = 100, subset_size: int = 1000,
                              seed: int = 2020) -> tuple[float, float]:
    """KID: mean and (population) std of ``mmd2_unbiased`` over ``subsets`` random subsets of
    ``min(subset_size, len(x), len(y))`` rows of each set, drawn without replacement.

    The subsets are drawn exactly as torch-fidelity draws them (``np.random.RandomState(seed).choice``, first from
    ``x`` then from ``y`` in each round), so with x = generated and y = reference features (its input1 and input2)
    and the same seed the two libraries average the same subsets.
    """
    size = min(int(subset_size), len(x), len(y))
    rng = np.random.RandomState(seed)
    values = []
    for _ in range(int(subsets)):
        i = torch.from_numpy(rng.choice(len(x), size, replace=False))
        j = torch.from_numpy(rng.choice(len(y), size, replace=False))
        values.append(mmd2_unbiased(x[i.to(x.device)], y[j.to(y.device)]))
    values = np.asarray(values)
    return float(values.mean()), float(values.std())
