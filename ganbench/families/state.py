"""Exact resume for every family: counters, divergence and the global random streams in the checkpoint.

The data stream restarts after ``d_step`` batches (see ``ResumableBatchSampler``) and the global random streams
(latents, codes, labels, penalties' interpolation noise, augmentation) are saved here and restored when training
restarts; sample grids and evaluation run on their own streams (``callbacks.isolated_rng``). A family's own state
is a registered buffer (in the state dict) or what ``family_state`` returns.
"""

from __future__ import annotations

import math
from typing import Mapping

import torch
from torch import Tensor


class ResumableState:
    """Mixin of the family LightningModules (``GAN`` and its subclasses)."""

    def family_state(self) -> dict:
        return {}

    def load_family_state(self, state: dict) -> None:
        pass

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        checkpoint["ganbench"] = {"g_step": self.g_step, "d_step": self.d_step, "diverged": self.diverged,
                                  "rng": rng, "family": self.family_name(), "family_state": self.family_state(),
                                  "regularizers": {name: reg.state_dict() for name, reg in self.regularizers.items()},
                                  **getattr(self, "checkpoint_extra", {})}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("ganbench", {})
        self.g_step = int(state.get("g_step", 0))
        self.d_step = int(state.get("d_step", 0))
        self.diverged = state.get("diverged")
        self.load_family_state(state.get("family_state") or {})
        for name, reg_state in (state.get("regularizers") or {}).items():  # e.g. path length's running mean
            if name in self.regularizers:
                self.regularizers[name].load_state_dict(reg_state)
        self._rng_to_restore = state.get("rng")

    def on_train_start(self) -> None:
        rng, self._rng_to_restore = getattr(self, "_rng_to_restore", None), None
        if self.trainer.world_size > 1:
            # seed_everything gave every rank the same streams (and a checkpoint holds rank 0's): reseed each rank
            # from (seed, g_step, rank) so that ranks draw different latents
            import numpy as np

            torch.manual_seed(int(np.random.SeedSequence([self.seed, self.g_step, self.global_rank])
                                  .generate_state(1)[0]))
            return
        if rng is None:
            return
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])

    # -- divergence (recorded in the checkpoint and result.json) -------------------------------------------------------------------------------------------------
    def _check_finite(self, total: Tensor, terms: Mapping[str, Tensor]) -> bool:
        """False (and the run is stopped, recorded as diverged) when a loss is NaN or infinite."""
        if self.diverged is not None:
            return False
        if math.isfinite(total.item()):  # one sync, as bool(torch.isfinite(total)), without its kernels (0.3 vs 11 us)
            return True
        bad = {k: float(v.detach()) for k, v in terms.items() if not math.isfinite(float(v.detach()))}
        self.diverged = {"g_step": self.g_step, "d_step": self.d_step, "non_finite": bad}
        self.trainer.should_stop = True
        return False
