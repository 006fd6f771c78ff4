"""Task bookkeeping shared by the stages: what Label Studio holds, read a little at a time, and the task syncd
imports for a recording.

A cursor on the highest task id seen in a project (ours or not) bounds each read to the tasks created since the last
look; each task seen is remembered, and a group of tasks for one audio version is noted as twins. The import stage
reads it before it imports (``import_reconcile``) and extends it after its own batches; export reads it before it
counts a project's tasks, to notice deleted ones; the scan marks a deleted recording's task with the task it built.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from syncd.domain.recording import Recording
from syncd.labelstudio.tasks import task_for
from syncd.services import Services
from syncd.state import keys


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
        return keys.IMPORT_TASKS.of(project)

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


def task_cursor(svc: Services, project: int) -> TaskCursor:
    """The project's task cursor as the state holds it."""
    return TaskCursor.load(svc.state.cursors.get(TaskCursor.name(project)))


def see_new_tasks(svc: Services, project: int, floor: int | None = None) -> dict[int, str | None]:
    """Read the tasks created since the last look (ours or not) and remember them: one request when nothing is new.
    Export calls it too, before it counts the project's tasks. A ``floor`` given (a batch in doubt) reads from there
    and leaves the cursor as it is."""
    if floor is not None:
        found = svc.labelstudio.new_tasks(project, floor)
        remember(svc, project, found)
        return found
    name = TaskCursor.name(project)
    floor = TaskCursor.load(svc.state.cursors.get(name)).floor
    started = time.time()
    found = svc.labelstudio.new_tasks(project, floor)
    finished = time.time()
    remember(svc, project, found)
    svc.state.cursors.change(name, lambda raw: TaskCursor.load(raw).after_read(found, started, finished).dump())
    return found


def note_imported(svc: Services, project: int, found: dict[int, str | None]) -> None:
    """Our own batch landed as ``found`` (task id -> syncd_id): the tasks are remembered and the cursor moves past
    them without a read when they are the next ids (``TaskCursor.extended``)."""
    svc.state.tasks.note_tasks(project, found)
    task_ids = list(found)
    svc.state.cursors.change(TaskCursor.name(project), lambda raw: TaskCursor.load(raw).extended(task_ids).dump())


def remember(svc: Services, project: int, found: dict[int, str | None]) -> None:
    """Note the tasks seen; a syncd_id that now has more than one task is a twin group, due for repair
    (``import_twins``)."""
    added = set(svc.state.tasks.note_tasks(project, found))
    sids = {sid for task_id, sid in found.items() if sid and task_id in added}
    if not sids:
        return
    _note_twins(svc, sids)
    recs = svc.state.recordings.by_syncd_ids(sorted(sids))
    for task_id in sorted(added):
        rec = recs.get(found[task_id] or "")
        if rec is not None and rec.task_id is not None and rec.task_id != task_id:
            svc.log.warning(
                "task.duplicate", task=task_id, kept=rec.task_id, recording=rec.id, bucket=rec.bucket, key=rec.key
            )


def _note_twins(svc: Services, sids: set[str]) -> None:
    """Groups among ``sids`` holding more than one task become due for repair (``import_twins.repair_twins``)."""
    groups = svc.state.tasks.twin_groups(sorted(sids))
    if not groups:
        return
    svc.state.twins.note({sid: [t for _, t in found] for sid, found in groups.items()})
