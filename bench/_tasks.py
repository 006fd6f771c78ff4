"""Shared set-up for the benchmarks: Label Studio tasks and the state rows the import stage would have left for them.

Transcription and import are not what these benchmarks measure, so tasks are built directly from synthetic
transcripts and bulk-imported in one go."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from syncd.domain.recording import S3Object, Status
from syncd.domain.transcript import Transcript
from syncd.labelstudio.tasks import task_for
from syncd.services import Services
from syncd.stages.tasks import TaskCursor

Result = list[dict[str, Any]]


def put_audio(svc: Services, bucket: str, keys: list[str]) -> list[S3Object]:
    """Stand-in audio objects with their real ETags: the export writes a review only beside the audio version it
    describes, so a task whose audio is not in S3 is never exported."""

    def put(key: str) -> S3Object:
        etag = svc.storage.client.put_object(Bucket=bucket, Key=key, Body=f"audio of {key}".encode())["ETag"]
        return S3Object(bucket, key, etag.strip('"'), 1000)

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(put, keys))


def seed_tasks(
    svc: Services,
    objects: list[S3Object],
    transcript: Callable[[int], Transcript],
    review: Callable[[Result], Result] | None = None,
    chunk: int = 1000,
) -> list[tuple[S3Object, int]]:
    """Import one task per object (with a submitted annotation when ``review`` is given); returns (object, task id).
    Tasks are built as the import stage builds them, on the project's own layout, and noted as seen as it notes them
    (or the first export would read them all again to find out which tasks are new)."""
    project = svc.projects.current
    layout = svc.labelstudio.layout_of(project, svc.settings.labelstudio.layout)
    added = svc.state.recordings.add_objects(objects, status=Status.IMPORTED)
    seeded: list[tuple[S3Object, int]] = []
    for start in range(0, len(added), chunk):
        part = added[start : start + chunk]
        tasks = []
        for rec_id, _ in part:
            rec = replace(svc.state.recordings.get(rec_id), transcript_json=json.dumps(transcript(rec_id).to_dict()))
            task = task_for(rec, layout, "amazon-transcribe")
            if review is not None:
                task["annotations"] = [{"result": review(task["predictions"][0]["result"])}]
            tasks.append(task)
        task_ids = svc.labelstudio.import_tasks(project, tasks)
        with svc.state.batch():
            svc.state.tasks.note_tasks(
                project, {t: svc.state.recordings.get(r).syncd_id for (r, _), t in zip(part, task_ids, strict=True)}
            )
            svc.state.cursors.change(
                TaskCursor.name(project), lambda raw, ids=task_ids: TaskCursor.load(raw).extended(ids).dump()
            )
            for (rec_id, obj), task_id in zip(part, task_ids, strict=True):
                fields = {"transcript": transcript(rec_id), "task_id": task_id, "project_id": project}
                svc.state.recordings.update(rec_id, **fields)
                seeded.append((obj, task_id))
    return seeded
