"""A test-only family: the unconditional loop under another name (checkpoints of one family must not resume
another)."""

from ganbench.families.gan import GAN


class OtherFamily(GAN):
    pass
