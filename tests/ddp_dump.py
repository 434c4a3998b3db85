"""A test-only regularizer that adds nothing and, after every D step, saves this rank's G and D weights to
``<out>/rank<RANK>.pt`` (so a test can compare the ranks' final weights)."""

import os
from pathlib import Path

import torch

from ganbench.regularizers import Regularizer


class DumpWeights(Regularizer):
    def __init__(self, out: str):
        self.out = Path(out)
        self.G = None

    def configure(self, generator, discriminator):
        self.G = generator

    def after_d_step(self, discriminator):
        self.out.mkdir(parents=True, exist_ok=True)
        rank = int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", 0)))
        state = {"G": {k: v.detach().clone() for k, v in self.G.state_dict().items()},
                 "D": {k: v.detach().clone() for k, v in discriminator.state_dict().items()}}
        torch.save(state, self.out / f"rank{rank}.pt")
