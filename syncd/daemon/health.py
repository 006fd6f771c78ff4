"""/healthz: Label Studio and S3 reachable now, and a recent cycle in which every stage ran cleanly."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from syncd.config import Settings
from syncd.probe import ProbeError, buckets_readable, labelstudio_alive, quick_s3_client


def max_cycle_age(settings: Settings) -> float:
    """Three missed export polls (a cycle ends with each) plus a minute of slack, unless configured."""
    return settings.http.max_cycle_age or 3 * settings.schedule.export_interval + 60


def _probe(fn: Callable[[], None]) -> dict[str, Any]:
    try:
        fn()
    except ProbeError as exc:
        return {"ok": False, "error": str(exc)}
    return {"ok": True}


def health_report(
    settings: Settings, phase: str, last_good_age: float | None, parked: int = 0
) -> tuple[bool, dict[str, Any]]:
    """(healthy, body): healthy only while running with every check passing; the body says which failed. Parked
    items (work that cannot progress until a person acts) make a passing report "degraded", still 200."""
    limit = max_cycle_age(settings)
    checks = {
        "labelstudio": _probe(lambda: labelstudio_alive(settings, timeout=2)),
        "s3": _probe(lambda: buckets_readable(settings, quick_s3_client(settings))),
        "cycle": {
            "ok": last_good_age is not None and last_good_age <= limit,
            "last_good_age_seconds": last_good_age,
            "max_age_seconds": limit,
        },
    }
    ok = phase == "running" and all(check["ok"] for check in checks.values())
    checks["parked"] = {"ok": parked == 0, "count": parked}
    status = ("ok" if not parked else "degraded") if ok else phase if phase != "running" else "failing"
    return ok, {"status": status, "checks": checks}
