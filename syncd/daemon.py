"""`syncd run`: repeat the cycle until SIGINT/SIGTERM; the current stage finishes before exit."""

from __future__ import annotations

import signal
import threading
from types import FrameType

from syncd.pipeline import run_cycle
from syncd.services import Services


def run_forever(svc: Services, interval: float) -> None:
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        svc.log.info("daemon.stopping", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    svc.log.info("daemon.started", interval=interval)
    while not stop.is_set():
        run_cycle(svc, stop)
        stop.wait(interval)
    svc.log.info("daemon.stopped")
