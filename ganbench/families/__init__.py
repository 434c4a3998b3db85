"""GAN families: one LightningModule per family, chosen with ``family=<name>`` (conf/family/<name>.yaml).

``gan.GAN`` is the shared loop (D steps, penalties, G step, EMA, divergence, checkpoints). A family is one
subclass in one file here that overrides only what differs from it:

- what G receives: ``sample_inputs(n)`` (in training ``g_inputs(n, real_cond)``: image-to-image families take the
  batch's inputs), ``fixed_inputs()``, ``generate(inputs, net)``;
- what D receives besides the images: ``real_inputs(batch)``, ``fake_condition(inputs)``, ``discriminate(x, cond)``
  (D's output: a logit tensor, or a dict with "logit" and the family's heads), ``penalty_critic``;
- its extra loss terms: ``d_terms``, ``g_terms`` (or ``d_adversarial``/``g_adversarial`` for its own game), and
  state updated after each D step: ``after_d_step``;
- how its networks are built from ``cfg.model`` and the data: the classmethod ``build_networks``;
- its metrics: ``extra_metrics(evaluator)`` and ``extra_protocol()``; its checkpointed state: a registered buffer
  or ``family_state()``/``load_family_state()``.

To add a family: one subclass here and one YAML in conf/family/ with ``_target_`` naming it and
``_partial_: true`` (build() passes the networks, loss, regularizers, augmentation and optimizer settings).
"""
