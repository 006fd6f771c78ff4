"""Named fault points for tests that prove crash and hang safety. Unset in production: a no-op.

* ``SYNCD_CRASH_AT=import.after_labelstudio`` kills the process with SIGKILL at that point, the way a power cut or an
  OOM kill would.
* ``SYNCD_HANG_AT=stage.export`` blocks the thread that reaches the point for ``SYNCD_HANG_SECONDS`` (default 30), the
  way a call stuck in a native library would: nothing interrupts it. It logs ``fault.hang`` first, so a test knows.
"""

from __future__ import annotations

import os
import signal
import time


def fault_point(name: str) -> None:
    if os.environ.get("SYNCD_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get("SYNCD_HANG_AT") == name:
        from syncd.log import get_logger

        seconds = float(os.environ.get("SYNCD_HANG_SECONDS", "30"))
        get_logger().warning("fault.hang", point=name, seconds=seconds)
        time.sleep(seconds)
