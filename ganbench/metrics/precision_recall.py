"""Improved precision and recall (Kynkaanniemi et al. 2019), written from the paper's formulas.

Each set's manifold is the union of balls around its points, each ball's radius the distance to the point's k-th
nearest neighbour in the same set. precision = the fraction of generated points inside the real manifold,
recall = the fraction of real points inside the generated manifold. Distances are computed ``chunk`` rows at a
time (``torch.cdist`` of a block against the whole set), so memory is O(N * chunk), never N x N.
"""

from __future__ import annotations

import torch


def knn_radii(x: torch.Tensor, k: int = 3, chunk: int = 1024) -> torch.Tensor:
    """Distance from each row of ``x`` to its k-th nearest other row (the point itself, at distance 0, is skipped,
    as in the paper's code: the (k+1)-th smallest distance including itself). With fewer than k+1 rows, the
    farthest one is used."""
    kth = min(int(k), len(x) - 1)
    return torch.cat([torch.cdist(block, x).topk(kth + 1, dim=1, largest=False).values[:, kth]
                      for block in x.split(chunk)])


def manifold_coverage(query: torch.Tensor, support: torch.Tensor, radii: torch.Tensor, chunk: int = 1024) -> float:
    """The fraction of ``query`` rows within ``radii[j]`` of some ``support`` row j: f(q, S) = 1 iff there is an
    s_j in S with ||q - s_j|| <= ||s_j - NN_k(s_j, S)|| (Kynkaanniemi et al. 2019, eq. 1)."""
    inside = sum(int((torch.cdist(block, support) <= radii).any(dim=1).sum()) for block in query.split(chunk))
    return inside / len(query)


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3, chunk: int = 1024,
                     real_radii: torch.Tensor | None = None) -> tuple[float, float]:
    """(precision, recall) of ``fake`` against ``real`` features; ``real_radii`` may be passed precomputed."""
    real, fake = real.float(), fake.float()
    if real_radii is None:
        real_radii = knn_radii(real, k, chunk)
    precision = manifold_coverage(fake, real, real_radii.to(real), chunk)
    recall = manifold_coverage(real, fake, knn_radii(fake, k, chunk), chunk)
    return precision, recall
