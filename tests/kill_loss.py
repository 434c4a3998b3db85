"""Test-only losses that SIGKILL their own process at the discriminator call named by $GANBENCH_TEST_KILL_AT.

Without the variable each is its base loss, so a killed run and its resumption share one config.
"""

import os
import signal

from ganbench.losses import NonSaturating, Wasserstein


def killing(base: type) -> type:
    """``base`` (an adversarial loss) that SIGKILLs its process at discriminator call $GANBENCH_TEST_KILL_AT."""

    class KillAt(base):
        def __init__(self):
            self.calls = 0

        def discriminator(self, real_logits, fake_logits):
            self.calls += 1
            if self.calls == int(os.environ.get("GANBENCH_TEST_KILL_AT", "0")):
                os.kill(os.getpid(), signal.SIGKILL)
            return super().discriminator(real_logits, fake_logits)

    KillAt.__name__ = KillAt.__qualname__ = f"KillAt{base.__name__}"
    return KillAt


KillAt = killing(NonSaturating)
KillAtWGAN = killing(Wasserstein)
