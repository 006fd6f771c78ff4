"""Named crash points for tests that prove crash safety: ``SYNCD_CRASH_AT=import.after_labelstudio`` kills the
process with SIGKILL at that point, the way a power cut or OOM kill would. Unset in production: a no-op."""

from __future__ import annotations

import os
import signal


def fault_point(name: str) -> None:
    if os.environ.get("SYNCD_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
