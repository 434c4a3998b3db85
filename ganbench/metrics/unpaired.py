"""``family=cyclegan``'s metrics: cycle-reconstruction L1 both ways and the class accuracy of translated digits."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor
from torch.utils.data import Dataset, TensorDataset

from ganbench.errors import ConfigError
from ganbench.metrics.evaluator import count_label
from ganbench.metrics.paired import domain_classifier, l1

OTHER = {"a": "b", "b": "a"}


def images_and_labels(ds: Dataset, start: int, stop: int) -> tuple[Tensor, Tensor]:
    if isinstance(ds, TensorDataset):
        return ds.tensors[0][start:stop], ds.tensors[1][start:stop]
    items = [ds[i] for i in range(start, stop)]
    return torch.stack([it[0] for it in items]), torch.tensor([int(it[1]) for it in items])


class CycleMetrics:
    """``__call__(evaluator, translate)`` with ``translate(source, x)`` -> x translated out of domain ``source``
    ("a" or "b"): cycle-reconstruction L1 both ways on the evaluator's split and, with labels and a domain
    classifier, the class accuracy of the translations A -> B (see the module docstring)."""

    def __init__(self, num_images: int | None = None):
        if num_images is not None and (isinstance(num_images, bool) or not isinstance(num_images, int)
                                       or num_images < 1):
            raise ConfigError(f"family.metric_images must be an integer >= 1 or null (every image of the split); "
                              f"got {num_images!r}")
        self.num_images = num_images
        self._protocol: dict = {}

    @torch.no_grad()
    def __call__(self, ev, translate: Callable[[str, Tensor], Tensor]) -> dict[str, float]:
        ev.setup()
        classifier = domain_classifier(ev)
        values, sizes = {}, {}
        for source in ("a", "b"):
            ds = ev.datamodule.domain(source.upper(), ev.split)
            n = sizes[source] = min(self.num_images or len(ds), len(ds))
            l1_sum, correct = 0.0, 0
            for start in range(0, n, ev.batch_size):
                x, y = images_and_labels(ds, start, min(start + ev.batch_size, n))
                x = x.to(ev.device)
                fake = translate(source, x).to(ev.device)
                rec = translate(OTHER[source], fake).to(ev.device)
                if not (torch.isfinite(fake).all() and torch.isfinite(rec).all()):
                    l1_sum = correct = float("nan")
                    break
                l1_sum += float(l1(rec, x).double().sum())
                if classifier is not None and source == "a":
                    correct += int((classifier(fake)["logits"].argmax(1).cpu() == y).sum())
            suffix = f"{ev.split}{count_label(n)}"
            values[f"cycle_l1/{source}{OTHER[source]}{source}_{suffix}"] = l1_sum / n
            if classifier is not None and source == "a":
                values[f"class_acc/domain_ab_{suffix}"] = correct / n
        self._protocol = {
            "split": ev.split, "num_images": sizes, "generator": "evaluation generator (EMA if any), eval mode",
            "cycle_l1": "mean |G_B(G_A(A)) - A| (aba) and |G_A(G_B(B)) - B| (bab) on [-1, 1], per image, mean over "
                        "images",
            "classifier": None if classifier is None else
            {"name": "domain", "applied_to": "G_A(A), against A's labels", "weights_sha256": classifier.weights_sha256,
             **classifier.info}}
        return values

    def protocol(self) -> dict:
        return dict(self._protocol)
