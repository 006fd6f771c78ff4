"""Which outside services are down right now, since when, and when to try them again.

A stage that meets an outage (connection refused, timeout, throttling, 5xx) records it here instead of failing the
recording it was working on: the recording keeps its attempt budget and waits, and the stage tries the service again
after a back-off that doubles up to ``schedule.outage_backoff_max`` for as long as the outage lasts. The records live in
the state store (cursor rows named ``dependency:<name>``), so `syncd status` in another process sees them, /healthz
turns "failing" naming the service once it has been down longer than ``http.dependency_grace``, and
``syncd_dependency_up{dependency}`` follows them.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

from syncd.state import StateStore

PREFIX = "dependency:"
FIRST_BACKOFF = 5.0
LABELSTUDIO = "labelstudio"
"""Label Studio, recorded down while it refuses syncd's token mid-run (a 401 after a fresh access token); the stages
that call it keep trying each interval, the others never wait for it."""


class DependencyDownError(ConnectionError):
    """A stage is waiting for a service to come back; it fails the stage run (cause "unavailable"), not a recording."""


@dataclass(frozen=True)
class Dependency:
    name: str
    ok: bool
    error: str | None = None
    down_since: float | None = None  # unix time
    failures: int = 0
    retry_at: float = 0.0  # unix time

    def down_seconds(self, now: float | None = None) -> float:
        return 0.0 if self.down_since is None else max((now or time.time()) - self.down_since, 0.0)


def get(state: StateStore, name: str) -> Dependency:
    raw = state.cursor(PREFIX + name)
    return Dependency(**json.loads(raw)) if raw else Dependency(name, ok=True)


def all_known(state: StateStore) -> dict[str, Dependency]:
    return {key.removeprefix(PREFIX): Dependency(**json.loads(value)) for key, value in state.cursors(PREFIX).items()}


def _save(state: StateStore, dep: Dependency) -> None:
    state.set_cursor(PREFIX + dep.name, json.dumps(asdict(dep)))


def mark_down(state: StateStore, name: str, error: str, backoff_max: float, log: Any) -> Dependency:
    """Record one more failed try; logs ``dependency.down`` when the service was up until now."""
    now = time.time()
    was = get(state, name)
    failures = was.failures + 1
    delay = min(FIRST_BACKOFF * 2 ** (failures - 1), backoff_max)
    dep = Dependency(name, False, error[:500], was.down_since or now, failures, now + delay)
    _save(state, dep)
    if was.ok:
        log.warning("dependency.down", dependency=name, error=dep.error, retry_in=delay)
    else:
        log.debug("dependency.still_down", dependency=name, error=dep.error, retry_in=delay, failures=failures)
    return dep


def mark_up(state: StateStore, names: list[str], log: Any) -> None:
    """The services answered again; logs ``dependency.up`` with how long each was down."""
    for name in names:
        was = get(state, name)
        if not was.ok:
            _save(state, Dependency(name, ok=True))
            log.info("dependency.up", dependency=name, down_seconds=round(was.down_seconds(), 3))


def waiting(state: StateStore) -> list[Dependency]:
    """Services that are down and not due for another try yet."""
    now = time.time()
    return [dep for dep in all_known(state).values() if not dep.ok and dep.retry_at > now]


def retry_now(state: StateStore) -> int:
    """`syncd retry`: every service that is down is tried again at the stages' next run, not after its back-off."""
    down = [dep for dep in all_known(state).values() if not dep.ok]
    for dep in down:
        _save(state, replace(dep, retry_at=0.0))
    return len(down)
