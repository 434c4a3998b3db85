"""A test-only loss that SIGKILLs its own process at the discriminator call named by $GANBENCH_TEST_KILL_AT.

Without the variable it is the non-saturating loss, so a killed run and its resumption share one config.
"""

import os
import signal

from ganbench.losses import NonSaturating


class KillAt(NonSaturating):
    def __init__(self):
        self.calls = 0

    def discriminator(self, real_logits, fake_logits):
        self.calls += 1
        if self.calls == int(os.environ.get("GANBENCH_TEST_KILL_AT", "0")):
            os.kill(os.getpid(), signal.SIGKILL)
        return super().discriminator(real_logits, fake_logits)
