"""Reconcile, part of the import stage: what Label Studio holds is read before anything is imported. The tasks created
since the last look are read and remembered (``tasks.see_new_tasks``), a recording whose task Label Studio already
holds is adopted instead of imported (``task.recovered``), and an imported or adopted task that lacks its prediction
gets it back, now or, when Label Studio could not be asked, at the next import run.
"""

from __future__ import annotations

import time
from typing import Any

from syncd.domain.recording import Recording, Status
from syncd.log import describe_error
from syncd.services import Services
from syncd.stages import tasks
from syncd.state import keys


def look(svc: Services, project: int, floor: int | None = None) -> dict[int, str | None]:
    """The tasks created in ``project`` since the last look (or above ``floor``), remembered."""
    return tasks.see_new_tasks(svc, project, floor)


def reconcile(svc: Services, project: int) -> int:
    """One project: new tasks read, waiting recordings whose task is there adopted, unchecked predictions checked
    again. Returns recordings adopted."""
    look(svc, project)
    adopted = adopt(svc, project)
    recheck_predictions(svc, project)
    return adopted


def adopt(svc: Services, project: int) -> int:
    """Recordings waiting to be imported whose task Label Studio already holds become ``imported`` with it."""
    adopted: list[tuple[Recording, int]] = []
    for rec, task_id in svc.state.tasks.adoptable(project):
        fields: dict[str, Any] = {"task_id": task_id, "project_id": project, "reason": None, "next_attempt_at": 0}
        fields |= {"imported_at": time.time()}
        if svc.state.recordings.move(rec.id, rec.status, Status.IMPORTED, **fields):
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
            svc.labelstudio.add_predictions(task_id, tasks.task_of(svc, rec, project)["predictions"])
        except Exception as exc:
            svc.log.error("task.prediction_missing", error=describe_error(exc), **ids)
            left.append(task_id)
            continue
        svc.log.warning("task.prediction_restored", **ids)
    if left:
        unchecked(svc, project, left, None)


def unchecked_name(project: int) -> str:
    """The cursor holding the lowest task id of ``project`` whose prediction is still to be checked (``syncd status``,
    /metrics and /healthz read it through ``StateStore.tasks.unchecked_predictions``)."""
    return keys.UNCHECKED.of(project)


def any_unchecked(svc: Services) -> bool:
    """Some task still waits for its prediction check: one local read, so an idle paced tick stays cheap."""
    return bool(svc.state.cursors.prefixed(keys.UNCHECKED.name))


def unchecked(svc: Services, project: int, task_ids: list[int], exc: Exception | None) -> None:
    """Tasks whose predictions could not be checked or added: the lowest of their ids is kept in the state, and
    every import run checks the project's tasks from there again until it succeeds, so no task keeps lacking its
    prediction (and its place in the least-confident-first order) because Label Studio was down at the wrong time."""
    low = min(task_ids)
    svc.state.cursors.change(unchecked_name(project), lambda raw: str(min(low, int(raw)) if raw else low))
    if exc is not None:
        svc.log.warning("import.predictions_unchecked", project=project, tasks=len(task_ids), error=describe_error(exc))


def recheck_predictions(svc: Services, project: int) -> None:
    """Check again the tasks a failed check left, from the lowest of them on (their recordings' tasks)."""
    low = svc.state.cursors.get(unchecked_name(project))
    if low is None:
        return
    svc.state.cursors.change(unchecked_name(project), lambda raw: None if raw == low else raw)
    held = {
        task_id: rec_id for task_id, rec_id in svc.state.tasks.project_tasks(project).items() if task_id >= int(low)
    }
    restore_predictions(
        svc, project, [(svc.state.recordings.get(rec_id), task_id) for task_id, rec_id in sorted(held.items())]
    )
