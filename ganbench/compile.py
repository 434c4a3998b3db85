"""``trainer.compile=true``: torch.compile of G and D, checked once before training, with a fallback.

Each net is compiled in place (``nn.Module.compile``: its state_dict keys and checkpoints stay those of the plain
net); the critic the penalties call is D itself, so it runs compiled too. A failed compilation usually shows only
when the compiled graph first runs (gradient penalties need a double backward, which AOTAutograd does not
support), so ``CompileNetworks`` runs one trial D loss (with every penalty due at step 0) and one G loss, backward
included, right before training. The trial leaves no trace: the random state, every buffer (batch norm
statistics, spectral norm's u and v) and the gradients are restored. A net whose trial fails runs uncompiled,
with one line in the log saying why.
"""

from __future__ import annotations

import logging

import lightning as L
import torch
from torch import nn

from ganbench.errors import ConfigError

log = logging.getLogger("ganbench")

#: ``trainer.compile_mode`` values torch.compile accepts (null: its default)
MODES = (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def uncompile(net: nn.Module) -> None:
    net._compiled_call_impl = None  # what nn.Module.compile sets; None restores the eager forward


def _trial_g(module) -> None:
    inputs = module.sample_inputs(2)
    fake = module.generate(inputs)
    fake.float().square().mean().backward()


def _trial_d(module) -> None:
    inputs = module.sample_inputs(2)
    with torch.no_grad():
        fake = module.generate(inputs)
    cond = module.fake_condition(inputs)
    saved_step, module.d_step = module.d_step, 0  # every lazy penalty is due at step 0
    try:
        _, _, terms = module.d_loss_terms(fake.clone(), cond, fake, cond, inputs)
    finally:
        module.d_step = saved_step
    sum(terms.values()).backward()


class CompileNetworks(L.Callback):
    """Compiles G and D at the start of training (see the module docstring)."""

    def __init__(self, backend: str = "inductor", mode: str | None = None):
        if mode not in MODES:
            raise ConfigError(f"trainer.compile_mode must be one of {', '.join(map(str, MODES))}; got {mode!r}")
        self.backend, self.mode = backend, mode  # a name, or a callable backend
        self.compiled: dict[str, bool] = {}

    def on_train_start(self, trainer, module) -> None:
        rng = torch.get_rng_state()
        cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
        buffers = {k: v.detach().clone() for k, v in module.state_dict().items()}
        try:
            with trainer.precision_plugin.forward_context():
                for name, net, trial in (("G", module.G, _trial_g), ("D", module.D, _trial_d)):
                    self.compiled[name] = self._compile(name, net, lambda: trial(module))
        finally:
            module.load_state_dict(buffers)
            module.zero_grad(set_to_none=True)
            torch.set_rng_state(rng)
            if cuda_rng is not None:
                torch.cuda.set_rng_state_all(cuda_rng)

    def _compile(self, name: str, net: nn.Module, trial) -> bool:
        net.compile(backend=self.backend, mode=self.mode)
        try:
            trial()
        except Exception as exc:  # noqa: BLE001 - any compiler failure: run this net uncompiled
            uncompile(net)
            root = exc
            while getattr(root, "inner_exception", None) or root.__cause__:  # the compiler's own error
                root = getattr(root, "inner_exception", None) or root.__cause__
            first = (str(root).strip().splitlines() or [""])[0][:200]
            log.warning("trainer.compile: %s runs uncompiled (torch.compile with backend=%s failed: %s: %s)",
                        name, getattr(self.backend, "__name__", self.backend), type(root).__name__, first)
            return False
        log.info("trainer.compile: %s compiled (backend=%s, mode=%s)", name, self.backend, self.mode)
        return True
