"""The stages as APScheduler interval jobs, and which of them are running and for how long.

Each stage is its own job (``max_instances=1``, coalescing), so a slow transcription never delays the export of
finished reviews. A running job is stuck when it has been silent (no heartbeat, see ``syncd.heartbeat``) for longer
than ``schedule.stage_timeout``: the daemon then withholds the watchdog ping. A long job that keeps beating is not.
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
from syncd.heartbeat import listening
from syncd.stages import STAGES, Stage


class StageJobs:
    def __init__(self, run: Callable[[Stage], None], clock: Callable[[], float] = time.monotonic) -> None:
        """``clock`` times the heartbeats (monotonic seconds; a test passes its own)."""
        self._clock = clock
        self._run = run
        self._running: dict[str, float] = {}
        self._lock = threading.Lock()
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=len(STAGES) + 2)},
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
            timezone="UTC",
        )

    def schedule(self, settings: Settings) -> None:
        """One interval job per stage of this instance's roles, each starting now; replaces the jobs of a previous
        config (and drops those of roles it no longer has)."""
        for stage in STAGES:
            if stage.name not in settings.instance.roles:
                if self.scheduler.get_job(stage.name):
                    self.scheduler.remove_job(stage.name)
                continue
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

    def every(self, name: str, seconds: float, fn: Callable[[], None]) -> None:
        """A housekeeping job (not a stage) run every ``seconds``, starting now."""
        self.scheduler.add_job(
            fn, "interval", seconds=seconds, id=name, name=name, replace_existing=True, next_run_time=datetime.now(UTC)
        )

    def cancel(self, name: str) -> None:
        """Drop the job ``name`` if there is one (a reload took its role away)."""
        if self.scheduler.get_job(name):
            self.scheduler.remove_job(name)

    def run_now(self, name: str) -> None:
        """Bring a stage's next run forward to now (its interval goes on from there)."""
        job = self.scheduler.get_job(name)
        if job is not None:
            job.modify(next_run_time=datetime.now(UTC))

    def submit(self, name: str, fn: Callable[..., None], *args: Any) -> None:
        """A one-off job (a webhook's export) on the same executor; a newer one of the same name replaces it."""
        self.scheduler.add_job(fn, args=list(args), id=name, name=name, replace_existing=True)

    def _tracked_run(self, stage: Stage) -> None:
        with self.tracking(stage.name):
            self._run(stage)

    @contextmanager
    def tracking(self, name: str) -> Iterator[None]:
        """Track the job ``name`` while the block runs; heartbeats on this thread refresh it."""
        self._beat(name)
        try:
            with listening(lambda: self._beat(name)):
                yield
        finally:
            with self._lock:
                self._running.pop(name, None)

    def _beat(self, name: str) -> None:
        with self._lock:
            self._running[name] = self._clock()

    def running(self) -> list[str]:
        with self._lock:
            return sorted(self._running)

    def stuck(self, limit: float) -> list[str]:
        """Jobs silent (no heartbeat since they started or last beat) for longer than ``limit`` seconds (none when
        the limit is 0)."""
        now = self._clock()
        with self._lock:
            return sorted(name for name, beat in self._running.items() if limit and now - beat > limit)

    def drain(self, deadline: float, give_up: Callable[[], bool] = lambda: False) -> bool:
        """Wait until no job runs (True), the deadline passes or ``give_up`` says so (False)."""
        while self.running():
            if time.monotonic() >= deadline or give_up():
                return False
            time.sleep(0.05)
        return True
