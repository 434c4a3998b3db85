"""Streaming first and second moments of feature rows, in float64 (the statistics FID compares)."""

from __future__ import annotations

import torch


class StreamingMoments:
    """Running mean and (ddof=1) covariance of rows, updated chunk by chunk; the state does not grow with N.

    State: the count n, a shift s (the first chunk's mean), the sum of (x - s) and the sum of outer products
    (x - s)(x - s)^T, all float64. Then mean = s + S1/n and cov = (S2 - n m m^T) / (n - 1) with m = S1/n, which is
    numpy's ``np.cov(x, rowvar=False)``. Shifting by an early mean keeps the subtraction well conditioned when the
    features have a large mean; covariance does not depend on the shift.
    """

    def __init__(self) -> None:
        self.n = 0
        self.shift: torch.Tensor | None = None
        self.sum: torch.Tensor | None = None
        self.outer: torch.Tensor | None = None

    def update(self, x: torch.Tensor) -> "StreamingMoments":
        """Add the rows of an (n, d) chunk."""
        x = x.to(torch.float64).reshape(len(x), -1)
        if len(x) == 0:
            return self
        if self.shift is None:
            self.shift = x.mean(0)
            self.sum = torch.zeros_like(self.shift)
            self.outer = x.new_zeros(x.shape[1], x.shape[1])
        xs = x - self.shift
        self.sum += xs.sum(0)
        self.outer += xs.T @ xs
        self.n += len(x)
        return self

    @property
    def mean(self) -> torch.Tensor:
        return self.shift + self.sum / self.n

    @property
    def cov(self) -> torch.Tensor:
        if self.n < 2:
            raise ValueError("a covariance needs at least two samples")
        m = self.sum / self.n
        return (self.outer - self.n * torch.outer(m, m)) / (self.n - 1)


def moments(x: torch.Tensor, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance (float64) of the rows of ``x``, streamed over ``chunk`` rows at a time."""
    acc = StreamingMoments()
    for block in x.split(chunk):
        acc.update(block)
    return acc.mean, acc.cov
