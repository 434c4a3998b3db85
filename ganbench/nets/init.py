"""Weight initialisations, chosen per network with ``model.generator.init`` / ``model.discriminator.init``.

Each touches the weights and biases of every Linear, Conv and ConvTranspose layer; normalization gains and
biases and embeddings keep their own initialisation (1, 0; N(0, 1)).

- ``pytorch``: torch's layer defaults (Kaiming-uniform), nothing changed.
- ``normal_0.02``: weights ~ N(0, 0.02^2), biases 0: compare_gan's ``linear``/``deconv2d`` and its SNDCGAN
  discriminator's convs (``tf.random_normal_initializer(stddev=0.02)``, google/compare_gan v2@766edb2
  ``compare_gan/src/gans/ops.py``), and DCGAN's (Radford et al. 2016).
- ``truncated_normal_0.02``: N(0, 0.02^2) truncated to +-2 std, biases 0: compare_gan's default ``conv2d``
  initializer (``tf.truncated_normal_initializer(stddev=0.02)``, same file).
- ``compare_gan``: what compare_gan's ``ops`` give each layer kind: convs truncated N(0, 0.02^2), linears and
  transposed convs N(0, 0.02^2), biases 0 (its ResNets; its SNDCGAN is ``normal_0.02`` throughout).
- ``xavier``: Glorot-uniform weights, biases 0.
- ``orthogonal``: orthogonal weights (Saxe et al. 2014, BigGAN's and StudioGAN's choice), biases 0.
"""

from __future__ import annotations

from typing import Callable

from torch import Tensor, nn

from ganbench.errors import ConfigError

LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d)



def _normal(w: Tensor) -> Tensor:
    return nn.init.normal_(w, 0.0, 0.02)


def _truncated(w: Tensor) -> Tensor:
    return nn.init.trunc_normal_(w, 0.0, 0.02, a=-0.04, b=0.04)


def _compare_gan(w: Tensor, module: nn.Module) -> Tensor:
    return _truncated(w) if type(module) in (nn.Conv1d, nn.Conv2d, nn.Conv3d) else _normal(w)


#: name -> f(weight, layer) (None: leave torch's defaults)
INITIALIZERS: dict[str, Callable[[Tensor, nn.Module], object] | None] = {
    "pytorch": None,
    "normal_0.02": lambda w, m: _normal(w),
    "truncated_normal_0.02": lambda w, m: _truncated(w),
    "compare_gan": _compare_gan,
    "xavier": lambda w, m: nn.init.xavier_uniform_(w),
    "orthogonal": lambda w, m: nn.init.orthogonal_(w),
}


def apply_init(net: nn.Module, name: str, which: str = "model") -> nn.Module:
    """Initialise ``net``'s layers with the scheme ``name`` (one of ``INITIALIZERS``); returns ``net``."""
    if name not in INITIALIZERS:
        raise ConfigError(f"{which}.init must be one of {', '.join(INITIALIZERS)}; got {name!r}")
    init = INITIALIZERS[name]
    if init is None:
        return net
    layers = [m for m in net.modules() if isinstance(m, LAYERS)]
    if not layers:
        raise ConfigError(f"{which}.init={name}: {type(net).__name__} has no Linear/Conv layer to initialise (its "
                          f"layers keep their own init, e.g. equalized-lr N(0, 1)); use {which}.init=pytorch")
    for module in layers:
        init(module.weight.data, module)
        if module.bias is not None:
            nn.init.zeros_(module.bias.data)
    return net
