"""/healthz: Label Studio and S3 reachable, no service a stage needs down for long, a recent good cycle, and no import
stuck in doubt (in doubt is shown while it waits to be settled; failing once it has not been settled in time).

The reachability probes make outbound calls, so their results are cached for ``PROBE_TTL`` seconds and refreshed by
one caller at a time: a scrape storm (or an attacker) costs at most one probe round per TTL, never one per request.
Outages that the stages met (``syncd.state.outages``) are read from the state store on each request (a local read).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from syncd.config import Settings
from syncd.domain.moments import iso
from syncd.errors import ProbeError
from syncd.labelstudio.probe import labelstudio_alive
from syncd.s3.probe import buckets_readable, quick_s3_client
from syncd.stages import import_doubt
from syncd.state import StateStore, refusals

PROBE_TTL = 5.0


def max_cycle_age(settings: Settings) -> float:
    """Three missed export polls (a cycle ends with each) plus a minute of slack, unless configured."""
    return settings.http.max_cycle_age or 3 * settings.schedule.export_interval + 60


def _probe(fn: Callable[[], None]) -> dict[str, Any]:
    try:
        fn()
    except ProbeError as exc:
        return {"ok": False, "error": str(exc)}
    return {"ok": True}


class Probes:
    """The reachability checks of /healthz, run at most once per ``ttl`` seconds however many requests ask."""

    def __init__(
        self,
        settings: Settings,
        ttl: float = PROBE_TTL,
        checks: Callable[[Settings], dict[str, dict[str, Any]]] | None = None,
    ) -> None:
        """``checks`` runs one round (``reachability``, or a test's own)."""
        self.settings = settings
        self.ttl = ttl
        self._checks = checks or reachability
        self.rounds = 0
        self._lock = threading.Lock()
        self._checked = -float("inf")
        self._results: dict[str, dict[str, Any]] = {}

    def results(self) -> dict[str, dict[str, Any]]:
        with self._lock:  # a request arriving while a round runs waits for it and shares its answer
            if time.monotonic() - self._checked >= self.ttl:
                self._results = self._checks(self.settings)
                self._checked = time.monotonic()
                self.rounds += 1
            return {name: dict(check) for name, check in self._results.items()}


def reachability(settings: Settings) -> dict[str, dict[str, Any]]:
    """One round of /healthz's probes: Label Studio answers, the source buckets are readable."""
    return {
        "labelstudio": _probe(lambda: labelstudio_alive(settings, timeout=2)),
        "s3": _probe(lambda: buckets_readable(settings, quick_s3_client(settings))),
    }


def dependency_checks(settings: Settings, state: StateStore | None) -> dict[str, dict[str, Any]]:
    """Each service a stage has met, as a check: failing once it has been down longer than http.dependency_grace."""
    if state is None:
        return {}
    checks = {}
    for name, dep in sorted(state.outages.all_known().items()):
        down = round(dep.down_seconds(), 3)
        checks[name] = {
            "ok": dep.ok or down <= settings.http.dependency_grace,
            "up": dep.ok,
            "down_since": iso(dep.down_since),
            "down_seconds": None if dep.ok else down,
            "error": dep.error,
        }
    return checks


def dependencies_up(probes: Probes, state: StateStore) -> dict[str, bool]:
    """What ``syncd_dependency_up`` shows: Label Studio and S3 as the probes of /healthz last found them (cached, so a
    scrape costs at most one probe round per TTL), each service a stage met down as the state records it, and the state
    database itself (down when it cannot be read)."""
    up = {name: bool(check["ok"]) for name, check in probes.results().items()}
    try:
        known = state.outages.all_known()
    except Exception:
        return up | {"state": False}
    for name, dep in known.items():
        up[name] = up.get(name, True) and dep.ok
    return up | {"state": True}


def refusals_check(state: StateStore) -> dict[str, Any]:
    """What Label Studio refused to register (webhook, audio storage), with its reason and what that means: syncd
    works on without it, so it makes the report "degraded", never failing."""
    refused = [
        {"what": r.what, "project": r.project, "target": r.target, "reason": r.reason, "means": r.consequence}
        for r in state.refusals.all_known()
    ]
    return {"ok": not refused, "refused": refused} | ({"remedy": refusals.REMEDY} if refused else {})


def webhook_wait_limit(settings: Settings) -> float:
    """How long a webhook delivery may wait for the export holder before health says so: past this the export poll
    would have found the review anyway, so the holder is missing or its webhook job is stuck."""
    return max(30.0, settings.schedule.export_interval + settings.labelstudio.timeout)


def health_report(
    settings: Settings,
    phase: str,
    last_good_age: float | None,
    probes: Probes | None = None,
    state: StateStore | None = None,
    parked: int = 0,
) -> tuple[bool, dict[str, Any]]:
    """(healthy, body): healthy only while running with every check passing; the body says which failed. Parked
    items (work that cannot progress until a person acts), twins reviewed on more than one task (a person should look),
    predictions left unchecked, webhook deliveries left waiting past ``webhook_wait_limit`` and a webhook or storage
    Label Studio refused make a passing report "degraded", still 200."""
    limit = max_cycle_age(settings)
    checks = (probes or Probes(settings)).results()
    for name, check in dependency_checks(settings, state).items():
        merged = checks.get(name, {"ok": True}) | check
        checks[name] = merged | {"ok": bool(checks.get(name, {"ok": True})["ok"] and check["ok"])}
    checks["cycle"] = {
        "ok": last_good_age is not None and last_good_age <= limit,
        "last_good_age_seconds": last_good_age,
        "max_age_seconds": limit,
    }
    doubt = import_doubt.in_doubt(state) if state is not None else None
    if doubt is not None:
        checks["import"] = {
            "ok": time.time() <= doubt["retry_at"] + limit,
            "in_doubt": doubt["recordings"],
            "reason": doubt["reason"],
            "retry_at": iso(doubt["retry_at"]),
        }
    ok = phase == "running" and all(check["ok"] for check in checks.values())
    down = sorted(name for name, check in checks.items() if check.get("up") is False)
    checks["parked"] = {"ok": parked == 0, "count": parked}
    attention = bool(parked)
    if state is not None:
        twins = state.twins.counts()
        conflicts = twins.get("reviewed", 0)
        checks["twins"] = {"ok": conflicts == 0, "reviewed": conflicts, "unreviewed": twins.get("unreviewed", 0)}
        unchecked = state.tasks.unchecked_predictions()
        checks["predictions"] = {"ok": not unchecked, "unchecked_tasks": sum(unchecked.values())}
        refused = refusals_check(state)
        checks["labelstudio_refused"] = refused
        waiting, oldest = state.export_queue.webhook_backlog()
        age = None if oldest is None else round(max(0.0, time.time() - oldest), 3)
        late = age is not None and age > webhook_wait_limit(settings)
        checks["webhooks"] = {"ok": not late, "waiting": waiting, "oldest_age_seconds": age}
        attention = attention or bool(conflicts) or bool(unchecked) or late or not refused["ok"]
    status = ("ok" if not attention else "degraded") if ok else phase if phase != "running" else "failing"
    body = {"status": status, "checks": checks}
    return ok, body | ({"down": down} if down else {})
