"""One sync cycle: scan -> transcribe -> import -> export, each stage timed and counted."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from syncd import exitcodes
from syncd.probe import classify
from syncd.services import Services
from syncd.stages import exporter, importer, scan, transcribe

STAGES = ("scan", "transcribe", "import", "export")
# stage.failed's `cause`: what an alert on the logs can tell apart without parsing error text.
CAUSES = {exitcodes.UNAVAILABLE: "unavailable", exitcodes.NOPERM: "denied"}


def stage_functions(svc: Services, stop: threading.Event) -> dict[str, Callable[[], int]]:
    return {
        "scan": lambda: scan.run(svc),
        "transcribe": lambda: transcribe.run(svc, stop),
        "import": lambda: importer.run(svc),
        "export": lambda: exporter.run(svc),
    }


def run_stage(svc: Services, name: str, fn: Callable[[], int]) -> tuple[int, float, bool]:
    """Run one stage; an error is logged with the stage name and the next stage still runs."""
    started = time.monotonic()
    try:
        count, ok = fn(), True
    except Exception as exc:
        svc.log.error(
            "stage.failed",
            stage=name,
            cause=CAUSES.get(classify(exc), "error"),
            error=exc,
            exc_info=svc.settings.log.level == "debug",
        )
        count, ok = 0, False
    return count, round(time.monotonic() - started, 3), ok


def run_cycle(svc: Services, stop: threading.Event | None = None) -> bool:
    """All stages once; returns True when every stage succeeded."""
    stop = stop or threading.Event()
    started = time.monotonic()
    counts: dict[str, int] = {}
    seconds: dict[str, float] = {}
    healthy = True
    for name, fn in stage_functions(svc, stop).items():
        if stop.is_set():
            break
        counts[name], seconds[name], ok = run_stage(svc, name, fn)
        healthy &= ok
    svc.log.info(
        "cycle.completed",
        ok=healthy,
        counts=counts,
        stage_seconds=seconds,
        seconds=round(time.monotonic() - started, 3),
        states=svc.state.counts(),
    )
    return healthy
