"""The stages as APScheduler interval jobs, and which of them are running and for how long.

Each stage is its own job (``max_instances=1``, coalescing), so a slow transcription never delays the export of
finished reviews. A stage running past ``schedule.stage_timeout`` is stuck: the daemon withholds the watchdog ping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from syncd.config import Settings
from syncd.stages import STAGES, Stage


class StageJobs:
    def __init__(self, run: Callable[[Stage], None]) -> None:
        self._run = run
        self._running: dict[str, float] = {}
        self._lock = threading.Lock()
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=len(STAGES) + 2)},
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
            timezone="UTC",
        )

    def schedule(self, settings: Settings) -> None:
        """One interval job per stage, each starting now; replaces the jobs of a previous config."""
        for stage in STAGES:
            self.scheduler.add_job(
                self._tracked_run,
                "interval",
                seconds=stage.interval(settings),
                args=[stage],
                id=stage.name,
                name=stage.name,
                replace_existing=True,
                next_run_time=datetime.now(UTC),
            )

    def submit(self, name: str, fn: Callable[..., None], *args: Any) -> None:
        """A one-off job (a webhook's export) on the same executor; a newer one of the same name replaces it."""
        self.scheduler.add_job(fn, args=list(args), id=name, name=name, replace_existing=True)

    def _tracked_run(self, stage: Stage) -> None:
        with self.tracking(stage.name):
            self._run(stage)

    @contextmanager
    def tracking(self, name: str) -> Iterator[None]:
        with self._lock:
            self._running[name] = time.monotonic()
        try:
            yield
        finally:
            with self._lock:
                self._running.pop(name, None)

    def running(self) -> list[str]:
        with self._lock:
            return sorted(self._running)

    def stuck(self, limit: float) -> list[str]:
        """Jobs running longer than ``limit`` seconds (none when the limit is 0)."""
        now = time.monotonic()
        with self._lock:
            return sorted(name for name, since in self._running.items() if limit and now - since > limit)

    def drain(self, deadline: float) -> None:
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.05)
