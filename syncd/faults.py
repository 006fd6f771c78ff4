"""Named fault points for tests that prove crash and hang safety. Unset in production: a no-op.

* ``SYNCD_CRASH_AT=import.after_labelstudio`` kills the process with SIGKILL at that point, the way a power cut or an
  OOM kill would.
* ``SYNCD_HANG_AT=stage.export`` blocks the thread that reaches the point for ``SYNCD_HANG_SECONDS`` (default 30), the
  way a call stuck in a native library would: nothing interrupts it. It logs ``fault.hang`` first, so a test knows.
* ``SYNCD_STOP_AT=import.before_send,export.write`` stops the whole process with SIGSTOP the first time it reaches
  each point, the way a long GC pause, a swap stall or a paused VM would; it wakes only when the test sends SIGCONT,
  and then carries on from that line, on whatever authority it had. It logs ``fault.stop`` first (with the pid).
  With ``SYNCD_STOP_ONCE_DIR`` set, only the first process of a fleet to reach a point stops there (it creates the
  point's file in that folder; a test removes the file to let another one stop).
"""

from __future__ import annotations

import os
import signal
import threading
import time

_stopped: set[str] = set()
_lock = threading.Lock()


def fault_point(name: str) -> None:
    if os.environ.get("SYNCD_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get("SYNCD_HANG_AT") == name:
        from syncd.log import get_logger

        seconds = float(os.environ.get("SYNCD_HANG_SECONDS", "30"))
        get_logger().warning("fault.hang", point=name, seconds=seconds)
        time.sleep(seconds)
    if name in os.environ.get("SYNCD_STOP_AT", "").split(","):
        with _lock:
            if name in _stopped:
                return
            _stopped.add(name)
        once = os.environ.get("SYNCD_STOP_ONCE_DIR")
        if once:
            try:
                os.close(os.open(os.path.join(once, name), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return
        from syncd.log import get_logger

        get_logger().warning("fault.stop", point=name, pid=os.getpid())
        os.kill(os.getpid(), signal.SIGSTOP)
