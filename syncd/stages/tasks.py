"""Task bookkeeping shared by the import and export stages: what Label Studio holds, read a little at a time.

A cursor on the highest task id seen in a project (ours or not) bounds each read to the tasks created since the last
look; each task seen is remembered, and a recording whose task Label Studio already holds is adopted instead of
imported. An imported or adopted task that lacks its prediction gets it back. Export reads the same cursor before it
counts a project's tasks, to notice deleted ones.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from syncd.domain.recording import Recording, Status
from syncd.labelstudio.client import LabelStudioError
from syncd.labelstudio.tasks import task_for
from syncd.log import describe_error
from syncd.services import Services
from syncd.state import tasks as state_tasks


def not_found(exc: Exception) -> bool:
    """Label Studio answered 404 (the SDK's errors and ours alike): the task is gone."""
    return getattr(exc, "status_code", None) == 404 or (isinstance(exc, LabelStudioError) and "HTTP 404" in str(exc))


def task_of(svc: Services, rec: Recording, project: int | None = None) -> dict[str, Any]:
    """The task syncd imports for this recording into ``project``, with the current settings and model version, in
    the layout of that project (a project keeps the layout it was created with; no project: the configured one)."""
    settings = svc.settings
    layout: str = settings.labelstudio.layout
    if project:
        layout = svc.labelstudio.layout_of(project, layout)
    return task_for(rec, layout, svc.transcriber.model_version, settings.review.flag_words_below)


OVERLAP = 5.0
"""Seconds within which a task id handed out earlier may still become visible after a higher one (a database that
numbers rows before it commits them, like PostgreSQL): the reconciling read settles past an id only this long after
it first saw it."""


@dataclass(frozen=True)
class TaskCursor:
    """Reads start above ``floor``; ``marks`` are higher ids seen (with when) that have not settled yet."""

    floor: int = 0
    marks: tuple[tuple[int, float], ...] = ()

    @staticmethod
    def name(project: int) -> str:
        return f"import-tasks:{project}"

    @property
    def high(self) -> int:
        return max([self.floor, *(mark for mark, _ in self.marks)])

    @classmethod
    def load(cls, raw: str | None) -> TaskCursor:
        if not raw:
            return cls()
        doc = json.loads(raw)
        return cls(int(doc["floor"]), tuple((int(m), float(t)) for m, t in doc["marks"]))

    def dump(self) -> str:
        return json.dumps({"floor": self.floor, "marks": [list(m) for m in self.marks]})

    def after_read(self, found: Iterable[int], started: float, finished: float) -> TaskCursor:
        """The cursor after a read of everything above ``floor`` that ran from ``started`` to ``finished``."""
        newest = max(found, default=0)
        marks = [*self.marks, (newest, finished)] if newest > self.high else list(self.marks)
        floor = max([self.floor, *(mark for mark, seen in marks if started - seen >= OVERLAP)])
        return TaskCursor(floor, tuple(m for m in marks if m[0] > floor))

    def extended(self, task_ids: list[int]) -> TaskCursor:
        """After our own import: ids exactly ``high``+1..``high``+n hold nobody else's task, so they need no read."""
        high = self.high
        if sorted(task_ids) != list(range(high + 1, high + len(task_ids) + 1)):
            return self
        if not self.marks:
            return TaskCursor(high + len(task_ids))
        return TaskCursor(self.floor, (*self.marks, (high + len(task_ids), self.marks[-1][1])))


def see_new_tasks(svc: Services, project: int) -> dict[int, str | None]:
    """Read the tasks created since the last look (ours or not) and remember them: one request when nothing is new.
    Export calls it too, before it counts the project's tasks."""
    name = TaskCursor.name(project)
    floor = TaskCursor.load(svc.state.cursor(name)).floor
    started = time.time()
    found = svc.labelstudio.new_tasks(project, floor)
    finished = time.time()
    remember(svc, project, found)
    svc.state.change_cursor(name, lambda raw: TaskCursor.load(raw).after_read(found, started, finished).dump())
    return found


def remember(svc: Services, project: int, found: dict[int, str | None]) -> None:
    """Note the tasks seen; a syncd_id that now has more than one task is a twin group, due for ``repair_twins``."""
    added = set(svc.state.note_tasks(project, found))
    sids = {sid for task_id, sid in found.items() if sid and task_id in added}
    if not sids:
        return
    _note_twins(svc, sids)
    recs = svc.state.by_syncd_ids(sorted(sids))
    for task_id in sorted(added):
        rec = recs.get(found[task_id] or "")
        if rec is not None and rec.task_id is not None and rec.task_id != task_id:
            svc.log.warning(
                "task.duplicate", task=task_id, kept=rec.task_id, recording=rec.id, bucket=rec.bucket, key=rec.key
            )


def adopt(svc: Services, project: int) -> int:
    """Recordings waiting to be imported whose task Label Studio already holds become ``imported`` with it."""
    adopted: list[tuple[Recording, int]] = []
    for rec, task_id in svc.state.adoptable(project):
        fields: dict[str, Any] = {"task_id": task_id, "project_id": project, "reason": None, "next_attempt_at": 0}
        fields |= {"imported_at": time.time()}
        if svc.state.move(rec.id, rec.status, Status.IMPORTED, **fields):
            svc.log.info("task.recovered", recording=rec.id, task=task_id, bucket=rec.bucket, key=rec.key)
            adopted.append((rec, task_id))
    restore_predictions(svc, project, adopted)
    return len(adopted)


def restore_predictions(svc: Services, project: int, adopted: list[tuple[Recording, int]]) -> None:
    """An imported or adopted task may lack its prediction. Label Studio 1.23 drops all of a batch's predictions when
    it cannot store one of them, commits the tasks all the same and answers HTTP 500 (the batch is then in doubt, and
    its tasks are adopted with no score), and has been seen to commit a batch's tasks without theirs: reviewers would
    not see them least-confident-first. One read finds them and they get their prediction; a read or an addition
    that fails is done again by the next import run (``unchecked``)."""
    if not adopted:
        return
    left: list[int] = []
    try:
        lacking = svc.labelstudio.without_predictions(project, [task_id for _, task_id in adopted])
    except Exception as exc:
        unchecked(svc, project, [task_id for _, task_id in adopted], exc)
        return
    for rec, task_id in adopted:
        if task_id not in lacking:
            continue
        ids = {"recording": rec.id, "task": task_id, "bucket": rec.bucket, "key": rec.key}
        try:
            svc.labelstudio.add_predictions(task_id, task_of(svc, rec, project)["predictions"])
        except Exception as exc:
            svc.log.error("task.prediction_missing", error=describe_error(exc), **ids)
            left.append(task_id)
            continue
        svc.log.warning("task.prediction_restored", **ids)
    if left:
        unchecked(svc, project, left, None)


UNCHECKED = state_tasks.UNCHECKED
"""Cursor prefix: per project, the lowest task id whose prediction is still to be checked (``syncd status``,
/metrics and /healthz read it through ``StateStore.unchecked_predictions``)."""


def unchecked_name(project: int) -> str:
    return f"{UNCHECKED}{project}"


def any_unchecked(svc: Services) -> bool:
    """Some task still waits for its prediction check: one local read, so an idle paced tick stays cheap."""
    return bool(svc.state.cursors(UNCHECKED))


def unchecked(svc: Services, project: int, task_ids: list[int], exc: Exception | None) -> None:
    """Tasks whose predictions could not be checked or added: the lowest of their ids is kept in the state, and
    every import run checks the project's tasks from there again until it succeeds, so no task keeps lacking its
    prediction (and its place in the least-confident-first order) because Label Studio was down at the wrong time."""
    low = min(task_ids)
    svc.state.change_cursor(unchecked_name(project), lambda raw: str(min(low, int(raw)) if raw else low))
    if exc is not None:
        svc.log.warning("import.predictions_unchecked", project=project, tasks=len(task_ids), error=describe_error(exc))


def recheck_predictions(svc: Services, project: int) -> None:
    """Check again the tasks a failed check left, from the lowest of them on (their recordings' tasks)."""
    low = svc.state.cursor(unchecked_name(project))
    if low is None:
        return
    svc.state.change_cursor(unchecked_name(project), lambda raw: None if raw == low else raw)
    tasks = {task_id: rec_id for task_id, rec_id in svc.state.project_tasks(project).items() if task_id >= int(low)}
    restore_predictions(svc, project, [(svc.state.get(rec_id), task_id) for task_id, rec_id in sorted(tasks.items())])


# --- twins: two or more tasks for one audio version -----------------------------------------------------------

TWIN_RECHECK = 300.0
"""Seconds between two looks at a twin group left standing (kept, or reviewed on more than one task): a person may
resolve it at any time, and each look reads its tasks."""


def twins_due(svc: Services, now: float | None = None) -> bool:
    """A twin group waits for ``repair_twins`` (one local read)."""
    now = time.time() if now is None else now
    return any(now - float(g.get("checked", 0)) >= TWIN_RECHECK for g in svc.state.twins().values())


def _note_twins(svc: Services, sids: set[str]) -> None:
    """Groups among ``sids`` holding more than one task become due for repair (``repair_twins``)."""
    groups = svc.state.twin_groups(sorted(sids))
    if not groups:
        return

    def add(raw: str | None) -> str:
        doc = json.loads(raw) if raw else {}
        for sid, found in groups.items():
            doc[sid] = doc.get(sid, {}) | {"tasks": sorted(t for _, t in found), "reviewed": [], "checked": 0}
        return json.dumps(doc, sort_keys=True)

    svc.state.change_cursor(state_tasks.TWINS, add)


def _reviewed(task: dict[str, Any]) -> bool:
    return any(not a.get("was_cancelled") and a.get("result") is not None for a in task.get("annotations") or [])


def repair_twins(svc: Services, now: float | None = None) -> None:
    """Every twin group due: unreviewed twins are deleted (``labelstudio.on_duplicate = "delete-unreviewed"``, the
    default) or kept and named; twins with reviews are kept and named, and the recording points at the newest reviewed
    one (export writes the newest review among them, as it would edits of one task). A group left standing is listed
    until it is resolved (a person deletes the extra tasks), and looked at again every ``TWIN_RECHECK`` seconds."""
    now = time.time() if now is None else now
    groups = {sid: g for sid, g in svc.state.twins().items() if now - float(g.get("checked", 0)) >= TWIN_RECHECK}
    if not groups:
        return
    located = svc.state.twin_groups(sorted(groups))
    recs = svc.state.by_syncd_ids(sorted(groups))
    outcome: dict[str, dict[str, Any] | None] = {}
    for sid in sorted(groups):
        outcome[sid] = _repair(svc, sid, dict((t, p) for p, t in located.get(sid, [])), recs.get(sid), now)

    def store(raw: str | None) -> str | None:
        doc = json.loads(raw) if raw else {}
        for sid, group in outcome.items():
            if group is None:
                doc.pop(sid, None)
            else:
                doc[sid] = group
        return json.dumps(doc, sort_keys=True) if doc else None

    svc.state.change_cursor(state_tasks.TWINS, store)


def _repair(svc: Services, sid: str, where: dict[int, int], rec: Recording | None, now: float) -> dict[str, Any] | None:
    """One group (task id -> project): what is left standing of it, or None once one task is left."""
    found: dict[int, dict[str, Any]] = {}
    for task_id in sorted(where):
        try:
            found[task_id] = svc.labelstudio.task(task_id)
        except Exception as exc:
            if not not_found(exc):
                raise
            svc.state.forget_tasks(where[task_id], [task_id])  # gone meanwhile
    reviewed = sorted(t for t, task in found.items() if _reviewed(task))
    original = rec.task_id if rec is not None and rec.task_id in found else min(found, default=None)
    keep = set(reviewed) or ({original} if original is not None else set())
    ids = {"syncd_id": sid} | ({"recording": rec.id, "key": rec.key} if rec is not None else {})
    if svc.settings.labelstudio.on_duplicate == "delete-unreviewed":
        for task_id in sorted(set(found) - keep):
            svc.instance.sure("import", svc.settings.labelstudio.lease_margin)
            svc.labelstudio.delete_task(task_id)
            svc.state.forget_tasks(where[task_id], [task_id])
            del found[task_id]
            svc.log.warning("task.twin_deleted", task=task_id, kept=sorted(keep), **ids)
    if rec is not None and found and rec.task_id not in found:
        newest = max(reviewed) if reviewed else min(found)
        svc.state.update(rec.id, task_id=newest, project_id=where[newest])
    if len(found) <= 1:
        svc.log.info("task.twins_resolved", tasks=sorted(found), **ids)
        return None
    group = {"tasks": sorted(found), "reviewed": reviewed, "key": rec.key if rec else None, "checked": now}
    svc.log.warning("task.twins_kept", tasks=sorted(found), reviewed=reviewed, **ids)
    return group
