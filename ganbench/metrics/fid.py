"""Frechet Inception Distance (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule ...")."""

from __future__ import annotations

import torch


def psd_eigenvalues(evals: torch.Tensor) -> torch.Tensor:
    """Eigenvalues of a symmetric PSD matrix with rounding noise removed: values below d * eps * max (the
    numerical-rank cutoff of ``numpy.linalg.matrix_rank``), negative ones included, are exactly 0.

    This matters when N < d (few samples of 2048-d features): the ~d - N null eigenvalues come out as +-1e-16 * max,
    and the square roots of the positive ones would add d * sqrt(1e-16 * max) of pure noise to the trace.
    """
    cutoff = evals.abs().max() * len(evals) * torch.finfo(evals.dtype).eps
    return torch.where(evals > cutoff, evals, torch.zeros_like(evals))


def sqrtm_psd(a: torch.Tensor) -> torch.Tensor:
    """The symmetric square root of a symmetric PSD matrix by ``torch.linalg.eigh``:
    A = V diag(l) V^T  ->  A^1/2 = V diag(sqrt(l)) V^T, with eigenvalues cleaned by ``psd_eigenvalues``."""
    evals, evecs = torch.linalg.eigh(a)
    return (evecs * psd_eigenvalues(evals).sqrt()) @ evecs.T


def trace_sqrt_product(sigma1: torch.Tensor, sigma2: torch.Tensor) -> torch.Tensor:
    """tr((S1 S2)^1/2) computed as tr((S1^1/2 S2 S1^1/2)^1/2): the inner matrix is symmetric PSD and similar to
    S1 S2, so its eigenvalues (from ``eigvalsh``, cleaned) are exactly the ones needed. No scipy ``sqrtm``."""
    root = sqrtm_psd(sigma1)
    inner = root @ sigma2 @ root
    inner = (inner + inner.T) / 2
    return psd_eigenvalues(torch.linalg.eigvalsh(inner)).sqrt().sum()


def frechet_distance(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor) -> float:
    """FID = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1^1/2 S2 S1^1/2)^1/2), the Frechet (2-Wasserstein)
    distance between the Gaussians N(mu1, S1) and N(mu2, S2), in float64."""
    mu1, mu2, sigma1, sigma2 = (t.to(torch.float64) for t in (mu1, mu2, sigma1, sigma2))
    diff = mu1 - mu2
    value = diff @ diff + sigma1.trace() + sigma2.trace() - 2 * trace_sqrt_product(sigma1, sigma2)
    return float(value)
