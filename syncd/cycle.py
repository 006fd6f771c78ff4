"""What the daemon's independent stage jobs did between two `cycle.completed` events, and when all last went well."""

from __future__ import annotations

import threading
import time
from typing import Any

from syncd.pipeline import STAGES
from syncd.state import PENDING


class CycleTracker:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._since = time.monotonic()
        self._counts = dict.fromkeys(STAGES, 0)
        self._seconds = dict.fromkeys(STAGES, 0.0)
        self._ok = True
        self.last_good: float | None = None  # unix time
        self._last_good_mono: float | None = None

    def add(self, stage: str, count: int, seconds: float, ok: bool) -> None:
        with self._lock:
            self._counts[stage] += count
            self._seconds[stage] = round(self._seconds[stage] + seconds, 3)
            self._ok &= ok

    def take(self) -> dict[str, Any]:
        """The report since the last take (fields as in `syncd once`'s cycle.completed), then start afresh."""
        with self._lock:
            now = time.monotonic()
            report = {
                "ok": self._ok,
                "counts": self._counts,
                "stage_seconds": self._seconds,
                "seconds": round(now - self._since, 3),
            }
            if self._ok:
                self.last_good, self._last_good_mono = time.time(), now
            self._since, self._ok = now, True
            self._counts = dict.fromkeys(STAGES, 0)
            self._seconds = dict.fromkeys(STAGES, 0.0)
        return report

    def last_good_age(self) -> float | None:
        mono = self._last_good_mono
        return None if mono is None else round(time.monotonic() - mono, 3)

    def status_line(self, states: dict[str, int]) -> str:
        """The one-line summary systemctl status shows (STATUS=)."""
        pending = sum(states.get(s, 0) for s in PENDING)
        done = ", ".join(f"{states.get(s, 0)} {s}" for s in ("imported", "exported", "failed"))
        age = self.last_good_age()
        last = "no good cycle yet" if age is None else f"last good cycle {age:.0f}s ago"
        return f"{pending} pending, {done}; {last}"
