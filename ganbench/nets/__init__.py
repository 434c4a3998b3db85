"""Architectures. Every module here exposes ``Generator`` and ``Discriminator`` nn.Modules.

Contract (shared by every architecture, relied on by the training families):

- ``Generator(z_dim, data_shape, **arch_options)``: ``forward(z: (N, z_dim)) -> (N, *data_shape)``, images in
  [-1, 1] (tanh); ``data_shape`` is ``(C, H, W)`` for images or ``(D,)`` for vectors.
- ``Discriminator(data_shape, norm=identity_norm, **arch_options)``: ``forward(x: (N, *data_shape)) -> (N,)``
  raw logits, computed as ``head(features(x)).flatten()``: ``features(x) -> (N, feature_dim)`` is D's pooled or
  flattened last hidden layer and ``head`` the ``nn.Linear(feature_dim, 1)`` on it. Families attach their own
  heads to ``features`` (projection, auxiliary classifier, InfoGAN's Q). ``norm`` is a factory ``channels -> nn.Module`` inserted after every hidden layer the architecture
  normalises (the regularizer decides: none, batch norm, layer norm); it must work on (N, C) and (N, C, H, W).
- An architecture that cannot serve ``data_shape`` raises ``ganbench.errors.ConfigError`` with one line naming
  what it serves.
Nets know nothing of losses or regularizers.
"""
