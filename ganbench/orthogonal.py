"""Orthogonal regularization (Brock et al. 2019, BigGAN): ``reg=ortho``.

Reference: ajbrock/BigGAN-PyTorch@98459431a5d618d644d54cd1e9fceb1e5045648d ``utils.py::ortho`` (L643-656) and
``default_ortho`` (L658-671), applied in ``train_fns.py`` L51-55 (D, ``--D_ortho``) and L75-80 (G, ``--G_ortho``).

BigGAN adds a gradient directly to ``.grad`` after the backward pass, for every parameter W with >= 2 axes,
reshaped to (out, -1):

    modified (``ortho``):        2 * beta * ((W W^T) * (1 - I)) W
    default  (``default_ortho``): 2 * beta * (W W^T - I) W

ganbench adds instead a loss term whose autograd gradient is exactly that:

    modified: (beta / 2) * sum_W ||(W W^T) * (1 - I)||_F^2
    default:  (beta / 2) * sum_W ||W W^T - I||_F^2

Derivation: for A = (W W^T) * M with M symmetric and binary (M = 1 - I; or A = W W^T - I), A is symmetric and
f = ||A||_F^2 = sum_ij M_ij (W W^T)_ij^2 (resp. sum_ij (W W^T - I)_ij^2), so df = 2 <A, dW W^T + W dW^T> =
4 <A W, dW>: d f / d W = 4 A W, and d (beta / 2) f / d W = 2 beta A W, BigGAN's gradient. Under a GradScaler the
term is scaled with the loss and unscaled with it, so the update is the same.

Scope: every parameter with >= 2 axes of G (and of D with ``discriminator: true``), except every ``nn.Embedding``'s
weight (BigGAN blacklists G's shared embedding: "Don't ortho reg shared, it makes no sense. Really we should
blacklist any embeddings"). 1-D parameters (biases, batch-norm gains) are skipped, as in BigGAN. Linear layers read
as class tables (conditional batch norm from a shared embedding, a normalisable projection table) are Linear
layers, so they are regularised, as BigGAN's ccbn gain/bias linears are. Differences: BigGAN's D_ortho has no
blacklist, so D's projection embedding is regularised there; ganbench skips every embedding in both nets.

Spectral norm: ``reg=sn`` (torch parametrizations) keeps the unnormalised weight as the parameter
``parametrizations.weight.original`` and normalises it in forward, as BigGAN's SN layers do (``layers.py::SN``
normalises ``self.weight`` in forward), so both regularise the unnormalised W.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from ganbench.errors import ConfigError
from ganbench.regularizers import Regularizer, _check_weight


def modified_ortho(w: Tensor) -> Tensor:
    """||(W W^T) * (1 - I)||_F^2 for W (out, k): only the rows' mutual inner products are penalised."""
    gram = w @ w.t()
    return (gram * (1 - torch.eye(w.shape[0], device=w.device, dtype=w.dtype))).square().sum()


def default_ortho(w: Tensor) -> Tensor:
    """||W W^T - I||_F^2 for W (out, k)."""
    return (w @ w.t() - torch.eye(w.shape[0], device=w.device, dtype=w.dtype)).square().sum()


VARIANTS: dict[str, Callable[[Tensor], Tensor]] = {"modified": modified_ortho, "default": default_ortho}


def ortho_parameters(net: nn.Module) -> list[Tensor]:
    """The parameters BigGAN's ortho touches: >= 2 axes, no embedding's."""
    skip = {id(p) for m in net.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
    return [p for p in net.parameters() if p.dim() >= 2 and id(p) not in skip]


def ortho_value(net: nn.Module, beta: float, variant: Callable[[Tensor], Tensor] = modified_ortho) -> Tensor:
    """(beta / 2) * sum_W variant(W reshaped (out, -1)), in float32 (autocast off): its gradient is BigGAN's."""
    params = ortho_parameters(net)
    if not params:
        return torch.zeros(())
    device = params[0].device
    with torch.autocast(device.type, enabled=False):
        total = sum(variant(p.float().reshape(p.shape[0], -1)) for p in params)
    return beta / 2 * total


class OrthogonalReg(Regularizer):
    """``reg=ortho``: BigGAN's orthogonal regularization of G (``generator``) and/or D (``discriminator``).

    beta: the strength (BigGAN's ``--G_ortho``/``--D_ortho``; 1e-4 "is default for BigGAN" per its comment).
    variant: ``modified`` (BigGAN's ``ortho``) or ``default`` (``default_ortho``).
    """

    def __init__(self, beta: float = 1e-4, variant: str = "modified", generator: bool = True,
                 discriminator: bool = False):
        self.beta = _check_weight("ortho.beta", beta)
        if variant not in VARIANTS:
            raise ConfigError(f"reg.ortho.variant must be one of {', '.join(VARIANTS)}; got {variant!r}")
        self.variant = variant
        self.generator, self.discriminator = bool(generator), bool(discriminator)
        if not (self.generator or self.discriminator):
            raise ConfigError("reg.ortho: generator=false and discriminator=false regularise nothing; "
                              "set one of them to true")
        self._nets: dict[str, nn.Module] = {}

    def configure(self, generator, discriminator):
        self._nets = {"G": generator, "D": discriminator}

    def _term(self, who: str) -> Tensor:
        if who not in self._nets:
            raise RuntimeError("reg.ortho needs configure(G, D) before it is used")
        return ortho_value(self._nets[who], self.beta, VARIANTS[self.variant])

    def penalty(self, critic, real, fake):
        return self._term("D") if self.discriminator else None

    def g_step_term(self, gan, inputs, fake):
        return self._term("G") if self.generator else None

    def protocol(self) -> dict:
        return {"beta": self.beta, "variant": self.variant, "generator": self.generator,
                "discriminator": self.discriminator,
                "value": "(beta/2) * sum ||W W^T * (1 - I)||_F^2 (modified) or ||W W^T - I||_F^2 (default); "
                         "gradient 2 * beta * A W as BigGAN's direct .grad update",
                "scope": "parameters with >= 2 axes reshaped (out, -1), nn.Embedding weights skipped",
                "source": "ajbrock/BigGAN-PyTorch@9845943 utils.py::ortho, default_ortho"}
