"""Inception Score (Salimans et al. 2016, "Improved Techniques for Training GANs")."""

from __future__ import annotations

import numpy as np
import torch


def split_inception_score(logits: torch.Tensor) -> float:
    """IS of one split: exp(E_x KL(p(y|x) || p(y))), with p(y|x) = softmax(logits) and p(y) = E_x p(y|x)."""
    log_p = torch.log_softmax(logits.to(torch.float64), dim=1)
    p = log_p.exp()
    log_marginal = p.mean(0).log()
    kl = (p * (log_p - log_marginal)).sum(1)
    return float(kl.mean().exp())


def inception_score(logits: torch.Tensor, splits: int = 10, shuffle_seed: int | None = 2020) -> tuple[float, float]:
    """Mean and (population) std of the IS over ``splits`` consecutive splits of the (N, classes) ``logits``.

    Rows are first permuted with ``np.random.RandomState(shuffle_seed)`` (None: kept in order), and split i holds
    rows [i N / splits, (i + 1) N / splits): exactly torch-fidelity's protocol, so the same seed gives the same splits.
    """
    n = len(logits)
    if shuffle_seed is not None:
        logits = logits[torch.from_numpy(np.random.RandomState(shuffle_seed).permutation(n)).to(logits.device)]
    scores = np.asarray([split_inception_score(logits[i * n // splits:(i + 1) * n // splits])
                         for i in range(int(splits))])
    return float(scores.mean()), float(scores.std())
