"""Imports in doubt: a batch whose request timed out, failed with HTTP 5xx or was cut off by a crash may still land.

Its rows stay ``importing`` until Label Studio is asked again ``labelstudio.import_settle`` seconds later, and only the
recordings it still lacks then are imported again. The doubt record (a state cursor per project) holds the task id a
later read starts from, when to ask again, why, and whether a request is out (found set at start: a crash).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from typing import Any

from syncd.domain.moments import iso
from syncd.domain.recording import Status
from syncd.services import Services
from syncd.stages import import_reconcile, tasks
from syncd.state import StateStore, keys


@dataclass(frozen=True)
class Doubt:
    """Batches sent whose outcome is unknown. Any of their tasks has an id above ``floor``; Label Studio is asked
    again at ``until``; ``in_flight`` is set while a request is out, so finding it set at start means a crash."""

    floor: int
    until: float | None = None
    reason: str = ""
    in_flight: bool = False

    @staticmethod
    def name(project: int) -> str:
        return keys.IMPORT_DOUBT.of(project)

    @classmethod
    def load(cls, raw: str | None) -> Doubt | None:
        return cls(**json.loads(raw)) if raw else None

    def dump(self) -> str:
        return json.dumps(self.__dict__)


def in_doubt(state: StateStore) -> dict[str, Any] | None:
    """Recordings whose import is in doubt, why, and when Label Studio is asked again (for `/healthz`)."""
    waiting = state.recordings.count(Status.IMPORTING)
    doubts = [d for d in map(Doubt.load, state.cursors.prefixed(keys.IMPORT_DOUBT.name).values()) if d and d.until]
    if not waiting or not doubts:
        return None
    first = min(doubts, key=lambda d: d.until or 0)
    return {"recordings": waiting, "reason": first.reason, "retry_at": first.until}


def sending(project: int, svc: Services) -> None:
    """Before a batch goes out: whatever happens to it, a later read from ``floor`` finds its tasks."""
    floor = tasks.task_cursor(svc, project).floor

    def begin(raw: str | None) -> str:
        doubt = Doubt.load(raw)
        if doubt is None:
            return Doubt(floor, in_flight=True).dump()
        return replace(doubt, floor=min(doubt.floor, floor), in_flight=True).dump()

    svc.state.cursors.change(Doubt.name(project), begin)


def enter_doubt(svc: Services, project: int, reason: str, floor: int = 0) -> Doubt:
    """Every ``importing`` row waits ``import_settle`` seconds, with the reason shown in `syncd status`."""
    until = time.time() + svc.settings.labelstudio.import_settle

    def wait(raw: str | None) -> str:
        old = Doubt.load(raw) or Doubt(floor)
        return Doubt(old.floor, max(old.until or 0, until), reason).dump()

    doubt = Doubt.load(svc.state.cursors.change(Doubt.name(project), wait))
    assert doubt is not None and doubt.until is not None
    rows = svc.state.recordings.due(Status.IMPORTING, limit=100_000)
    note = f"import in doubt ({reason}); Label Studio is asked again at {iso(doubt.until)}"
    with svc.state.batch():
        for rec in rows:
            svc.state.recordings.update(rec.id, reason=note, next_attempt_at=doubt.until)
    svc.log.warning("import.in_doubt", project=project, recordings=len(rows), reason=reason, retry_at=iso(doubt.until))
    return doubt


def landed(raw: str | None) -> str | None:
    """The doubt record once no request is out."""
    doubt = Doubt.load(raw)
    return None if doubt is None else replace(doubt, in_flight=False).dump()


def settle_doubt(svc: Services, project: int) -> int:
    """Rows still ``importing`` after adoption: wait while in doubt, then ask Label Studio again and re-queue only
    the recordings it proved to lack. Returns recordings adopted."""
    name = Doubt.name(project)
    doubt = Doubt.load(svc.state.cursors.get(name))
    waiting = svc.state.recordings.count(Status.IMPORTING)
    if not waiting:
        if doubt is not None:  # a run starts with no request out: a set in_flight is a crash whose batch landed
            svc.state.cursors.change(name, lambda _: None)
        return 0
    if doubt is None or doubt.until is None or doubt.in_flight:
        reason = "syncd stopped while an import request was out"
        doubt = enter_doubt(svc, project, reason, doubt.floor if doubt else 0)
        if time.time() < (doubt.until or 0):
            return 0
    elif time.time() < doubt.until:
        svc.log.warning(
            "import.in_doubt", project=project, recordings=waiting, reason=doubt.reason, retry_at=iso(doubt.until)
        )
        return 0
    import_reconcile.look(svc, project, doubt.floor)
    adopted = import_reconcile.adopt(svc, project)
    absent = [r.id for r in svc.state.recordings.due(Status.IMPORTING, limit=100_000)]
    requeued = svc.state.recordings.transition(
        absent, Status.IMPORTING, Status.TRANSCRIBED, reason=None, next_attempt_at=0
    )
    svc.state.cursors.change(name, lambda _: None)
    svc.log.info("import.doubt_resolved", project=project, adopted=adopted, reimport=len(requeued), reason=doubt.reason)
    return adopted
