"""Twins, part of the import stage: two or more tasks for one audio version (another tool re-imported it, a person
duplicated it, an import landed twice) are repaired, never left in the reviewers' queue. ``tasks.remember`` notes each
group as it is seen; ``repair_twins`` deletes the unreviewed twins (or keeps and names them) and points the recording
at the newest reviewed one.
"""

from __future__ import annotations

import time
from typing import Any

from syncd.domain.recording import Recording
from syncd.labelstudio.client import not_found
from syncd.services import Services

TWIN_RECHECK = 300.0
"""Seconds between two looks at a twin group left standing (kept, or reviewed on more than one task): a person may
resolve it at any time, and each look reads its tasks."""


def twins_due(svc: Services, now: float | None = None) -> bool:
    """A twin group waits for ``repair_twins`` (one local read)."""
    now = time.time() if now is None else now
    return any(now - float(g.get("checked", 0)) >= TWIN_RECHECK for g in svc.state.twins.all().values())


def _reviewed(task: dict[str, Any]) -> bool:
    return any(not a.get("was_cancelled") and a.get("result") is not None for a in task.get("annotations") or [])


def repair_twins(svc: Services, now: float | None = None) -> None:
    """Every twin group due: unreviewed twins are deleted (``labelstudio.on_duplicate = "delete-unreviewed"``, the
    default) or kept and named; twins with reviews are kept and named, and the recording points at the newest reviewed
    one (export writes the newest review among them, as it would edits of one task). A group left standing is listed
    until it is resolved (a person deletes the extra tasks), and looked at again every ``TWIN_RECHECK`` seconds."""
    now = time.time() if now is None else now
    groups = {sid: g for sid, g in svc.state.twins.all().items() if now - float(g.get("checked", 0)) >= TWIN_RECHECK}
    if not groups:
        return
    located = svc.state.tasks.twin_groups(sorted(groups))
    recs = svc.state.recordings.by_syncd_ids(sorted(groups))
    outcome: dict[str, dict[str, Any] | None] = {}
    for sid in sorted(groups):
        outcome[sid] = _repair(svc, sid, dict((t, p) for p, t in located.get(sid, [])), recs.get(sid), now)

    svc.state.twins.store(outcome)


def _repair(svc: Services, sid: str, where: dict[int, int], rec: Recording | None, now: float) -> dict[str, Any] | None:
    """One group (task id -> project): what is left standing of it, or None once one task is left."""
    found: dict[int, dict[str, Any]] = {}
    for task_id in sorted(where):
        try:
            found[task_id] = svc.labelstudio.task(task_id)
        except Exception as exc:
            if not not_found(exc):
                raise
            svc.state.tasks.forget_tasks(where[task_id], [task_id])  # gone meanwhile
    reviewed = sorted(t for t, task in found.items() if _reviewed(task))
    original = rec.task_id if rec is not None and rec.task_id in found else min(found, default=None)
    keep = set(reviewed) or ({original} if original is not None else set())
    ids = {"syncd_id": sid} | ({"recording": rec.id, "key": rec.key} if rec is not None else {})
    if svc.settings.labelstudio.on_duplicate == "delete-unreviewed":
        for task_id in sorted(set(found) - keep):
            svc.instance.sure("import", svc.settings.labelstudio.lease_margin)
            svc.labelstudio.delete_task(task_id)
            svc.state.tasks.forget_tasks(where[task_id], [task_id])
            del found[task_id]
            svc.log.warning("task.twin_deleted", task=task_id, kept=sorted(keep), **ids)
    if rec is not None and found and rec.task_id not in found:
        newest = max(reviewed) if reviewed else min(found)
        svc.state.recordings.update(rec.id, task_id=newest, project_id=where[newest])
    if len(found) <= 1:
        svc.log.info("task.twins_resolved", tasks=sorted(found), **ids)
        return None
    group = {"tasks": sorted(found), "reviewed": reviewed, "key": rec.key if rec else None, "checked": now}
    svc.log.warning("task.twins_kept", tasks=sorted(found), reviewed=reviewed, **ids)
    return group
