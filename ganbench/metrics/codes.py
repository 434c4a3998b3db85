"""How well a generator's categorical code matches the data's classes (InfoGAN's "the code is the digit class").

Which code value stands for which class is arbitrary, so the samples generated with code value k are classified,
counted in a (codes x classes) table, and scored after the best one-to-one assignment of code values to classes
(the Hungarian method, ``scipy.optimize.linear_sum_assignment``): accuracy = matched counts / all samples. With
more code values than classes the unmatched values count as wrong; with fewer, some classes are never matched.

Classifiers (``code_classifier``): 2-D Gaussian mixtures (a datamodule with ``modes``) by the nearest mode; labelled
images whose default extractor is the domain classifier (digits, MNIST, Fashion-MNIST) by that classifier's
argmax (``ganbench.metrics.extractors.DomainExtractor``, trained once and cached); anything else has none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor


def confusion(codes: Tensor, classes: Tensor, num_codes: int, num_classes: int) -> Tensor:
    """(num_codes, num_classes) int64 counts of (code value, predicted class) pairs."""
    index = codes.long().cpu() * num_classes + classes.long().cpu()
    return torch.bincount(index, minlength=num_codes * num_classes).reshape(num_codes, num_classes)


def matched_accuracy(codes: Tensor, classes: Tensor, num_codes: int, num_classes: int) -> float:
    """Accuracy of ``classes`` predicted from ``codes`` under the best one-to-one code -> class assignment."""
    from scipy.optimize import linear_sum_assignment

    table = confusion(codes, classes, num_codes, num_classes).numpy()
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum()) / max(1, len(codes))


def nearest_mode(samples: Tensor, modes: Tensor) -> Tensor:
    """The index of each 2-D sample's nearest mode."""
    samples = samples.reshape(len(samples), -1).to(torch.float64)
    return torch.cdist(samples, modes.to(samples.device, torch.float64)).argmin(dim=1)


@dataclass
class CodeClassifier:
    """A classifier of generated samples: ``kind`` names it in the metric, ``classify`` maps a batch in the data's
    range to class indices, ``info`` goes to the protocol."""

    kind: str
    num_classes: int
    classify: Callable[[Tensor], Tensor]
    info: dict = field(default_factory=dict)


def mode_classifier(datamodule, cache_dir) -> CodeClassifier:
    modes = datamodule.modes
    return CodeClassifier("modes", len(modes), lambda x: nearest_mode(x, modes),
                          {"classifier": "nearest mode", "num_modes": len(modes)})


def domain_classifier(datamodule, cache_dir) -> CodeClassifier:
    from ganbench.metrics.extractors import EXTRACTORS

    extractor = EXTRACTORS["domain"](datamodule=datamodule, cache_dir=cache_dir)

    def classify(x: Tensor) -> Tensor:
        extractor.to(x.device)
        return torch.cat([extractor(part)["logits"].argmax(1) for part in x.split(extractor.max_batch)])

    return CodeClassifier("domain", int(datamodule.num_classes), classify,
                          {"classifier": "domain", "weights_sha256": extractor.weights_sha256, **extractor.info})


def code_classifier(datamodule, cache_dir) -> CodeClassifier | None:
    """The classifier this data offers for the code metric, or None (data without modes or a domain classifier)."""
    if getattr(datamodule, "modes", None) is not None:
        return mode_classifier(datamodule, cache_dir)
    if datamodule.num_classes and getattr(datamodule, "default_extractor", None) == "domain":
        return domain_classifier(datamodule, cache_dir)
    return None
