"""Running stages and reporting cycles: the one code path `syncd once`, the daemon and the webhook export share.

A stage run logs ``stage.completed`` (or ``stage.failed`` first); the metrics are fed from those events, so every way
of running a stage is counted alike. A cycle is a round in which every stage ran at least once; it is reported as one
``cycle.completed`` event, at info when it did something or failed and at debug when it was idle.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from syncd import errors
from syncd.errors import classify
from syncd.log import describe_error
from syncd.services import Services
from syncd.stages import STAGE_NAMES, STAGES, Stage
from syncd.state import outages
from syncd.state.cluster import SINGLE_WRITER
from syncd.state.db import FencedError

# stage.failed's `cause`: what an alert on the logs can tell apart without parsing error text.
CAUSES = {errors.UNAVAILABLE: "unavailable", errors.NOPERM: "denied"}


@dataclass(frozen=True)
class StageRun:
    stage: str
    count: int
    seconds: float
    ok: bool


def run_stage(svc: Services, stage: Stage, stop: threading.Event, work: Callable[[], int] | None = None) -> StageRun:
    """Run one stage (or ``work`` on its behalf, as the webhook does); an error is logged and never raised, so the
    stages after it still run. A stage this instance has no role for, or whose lease another instance holds, does
    nothing (its run counts, with nothing done). A single-writer stage runs fenced with its lease (see
    ``syncd.state.cluster``): when another instance took the lease meanwhile (this one froze), its state changes and
    side effects are refused, the work is given up for the new holder, and ``lease.fenced`` says so."""
    started = time.monotonic()
    if not svc.instance.may_run(stage.name):
        return StageRun(stage.name, 0, 0.0, True)
    fence: AbstractContextManager[Any] = (
        svc.instance.fence(stage.name) if stage.name in SINGLE_WRITER else nullcontext()
    )
    try:
        with fence:
            count, ok = (work() if work else stage.run(svc, stop)), True
    except FencedError as exc:
        svc.instance.lost(exc.fence.name)
        svc.log.warning(
            "lease.fenced", stage=stage.name, lease=exc.fence.name, generation=exc.fence.generation, reason=exc.why
        )
        count, ok = 0, True
    except Exception as exc:
        svc.log.error(
            "stage.failed",
            stage=stage.name,
            cause=CAUSES.get(classify(exc), "error"),
            error=exc,
            exc_info=svc.settings.log.level == "debug",
        )
        count, ok = 0, False
        _token_refused(svc, exc)
    if ok:
        _token_accepted(svc)
    done = StageRun(stage.name, count, round(time.monotonic() - started, 3), ok)
    svc.log.debug("stage.completed", stage=done.stage, count=done.count, seconds=done.seconds, ok=done.ok)
    return done


def _token_refused(svc: Services, exc: Exception) -> None:
    """Label Studio refused the token mid-run even with a fresh access token: a Label Studio outage with that reason
    (in /healthz, `syncd status`, ``syncd_dependency_up``), not a failure of the work. The stages keep trying."""
    if getattr(exc, "status_code", None) != 401 or not svc.labelstudio.refused:
        return
    reason = f"Label Studio refuses the token (HTTP 401 after a fresh access token): {describe_error(exc)}"
    svc.state.outages.mark_down(outages.LABELSTUDIO, reason, svc.settings.schedule.outage_backoff_max, svc.log)
    _REFUSED.add(svc.labelstudio)


def _token_accepted(svc: Services) -> None:
    if svc.labelstudio in _REFUSED and not svc.labelstudio.refused:
        svc.state.outages.mark_up([outages.LABELSTUDIO], svc.log)
        _REFUSED.discard(svc.labelstudio)


_REFUSED: weakref.WeakSet[Any] = weakref.WeakSet()
"""The Label Studio clients whose refused token this process recorded as an outage, until Label Studio accepts it
again (only then is the outage ended here: another instance's record is its own). A reload's new client starts
afresh."""


class Cycle:
    """What the stages did since the last report; thread-safe, since the daemon's stages run in parallel jobs."""

    def __init__(self, stages: tuple[str, ...] = STAGE_NAMES) -> None:
        self._stages = stages
        self._lock = threading.Lock()
        self._reset(time.monotonic())

    def _reset(self, now: float) -> None:
        self._since = now
        self._counts = dict.fromkeys(self._stages, 0)
        self._seconds = dict.fromkeys(self._stages, 0.0)
        self._ran: set[str] = set()
        self._ok = True

    def add(self, run: StageRun) -> bool:
        """Count a stage run; True once every stage (of this instance's roles) has run since the last report."""
        with self._lock:
            self._counts[run.stage] += run.count
            self._seconds[run.stage] = round(self._seconds[run.stage] + run.seconds, 3)
            self._ran.add(run.stage)
            self._ok &= run.ok
            return self._ran.issuperset(self._stages)

    def take(self) -> dict[str, Any]:
        """The report since the last take, then start afresh."""
        with self._lock:
            now = time.monotonic()
            report = {
                "ok": self._ok,
                "counts": self._counts,
                "stage_seconds": self._seconds,
                "seconds": round(now - self._since, 3),
            }
            self._reset(now)
        return report


def report_cycle(svc: Services, report: dict[str, Any], *, quiet_when_idle: bool = True) -> None:
    """Idle daemon cycles go to debug (one every few seconds would drown the journal); `syncd once` always says."""
    busy = not report["ok"] or any(report["counts"].values())
    log = svc.log.debug if quiet_when_idle and not busy else svc.log.info
    log("cycle.completed", **report, states=svc.state.recordings.counts())


def run_cycle(svc: Services, stop: threading.Event | None = None) -> bool:
    """Every stage once, in order; True when every stage succeeded."""
    stop = stop or threading.Event()
    cycle = Cycle(svc.instance.roles)
    for stage in STAGES:
        if stop.is_set():
            break
        if not svc.instance.runs(stage.name):
            continue
        cycle.add(run_stage(svc, stage, stop))
    report = cycle.take()
    report_cycle(svc, report, quiet_when_idle=False)
    return bool(report["ok"])
