"""A test-only loss that turns NaN after a given number of discriminator calls (to exercise divergence)."""

from ganbench.losses import NonSaturating


class NaNAfter(NonSaturating):
    def __init__(self, calls: int = 3):
        self.calls = int(calls)
        self.seen = 0

    def discriminator(self, real_logits, fake_logits):
        self.seen += 1
        loss = super().discriminator(real_logits, fake_logits)
        return loss * float("nan") if self.seen > self.calls else loss
