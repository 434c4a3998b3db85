"""Evaluation metrics: FID, KID, IS and precision/recall in Inception or domain-classifier feature space, and
mode metrics for 2-D toy data. ``Evaluator`` runs one named protocol (``conf/metrics/*.yaml``)."""

from ganbench.metrics.evaluator import Evaluator

__all__ = ["Evaluator"]
