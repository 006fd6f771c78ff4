"""Task bookkeeping shared by the stages: the task-id cursor, the reads it bounds, the task built for a recording."""

from __future__ import annotations

from syncd.stages import import_, scan, tasks, transcribe
from tests.unit.fakes import (
    GO,
    Stack,
)
from tests.unit.scenarios import upload

KEYS = ("a.mp3", "b.mp3", "c.mp3", "d.mp3")


def test_reconciling_reads_only_tasks_created_since_the_last_look(stack: Stack) -> None:
    svc, ls, storage, _ = stack
    for key in KEYS:
        upload(storage, (key,))
        for stage in (scan, transcribe, import_):
            stage.run(svc, GO)
    # Our own contiguous batches move the cursor without a read; each run's read starts above the newest task.
    assert ls.reads == [0, 1, 2, 3]
    ls.add_foreign(count=2)
    import_.run(svc, GO)
    import_.run(svc, GO)
    assert ls.reads[-2:] == [4, 4]  # the two foreign tasks are read until their ids have settled


def test_task_cursor_settles_only_after_the_overlap() -> None:
    TaskCursor, OVERLAP = tasks.TaskCursor, tasks.OVERLAP  # noqa: N806
    cursor = TaskCursor(floor=10)
    moved = cursor.after_read([11, 12], started=100.0, finished=100.5)
    assert (moved.floor, moved.high) == (10, 12)
    assert moved.after_read([11, 12], started=101.0, finished=101.2).floor == 10
    assert moved.after_read([11, 12], started=100.5 + OVERLAP, finished=106.0).floor == 12
    assert TaskCursor(floor=12).extended([13, 14]) == TaskCursor(floor=14)
    assert TaskCursor(floor=12).extended([14, 15]) == TaskCursor(floor=12)
    assert moved.extended([13]).high == 13 and moved.extended([13]).floor == 10


def test_tasks_get_the_layout_of_the_project_they_go_to(stack: Stack) -> None:
    """An upgrade that changes the default layout leaves a project on the old one: its new tasks keep its layout."""
    svc, ls, storage, _ = stack
    ls.project_layouts[1] = "segments"
    upload(storage, KEYS[:1])
    for stage in (scan, transcribe, import_):
        stage.run(svc, GO)
    (task,) = ls.tasks.values()
    assert {i["from_name"] for i in task["predictions"][0]["result"]} == {"speaker", "transcription"}
    assert "segments" not in task["data"]


def test_a_read_from_a_given_floor_remembers_the_tasks_and_leaves_the_cursor(stack: Stack) -> None:
    svc, ls, storage, _ = stack
    upload(storage, KEYS[:2])
    for stage in (scan, transcribe, import_):
        stage.run(svc, GO)
    before = svc.state.cursors.get(tasks.TaskCursor.name(1))
    ls.add_foreign(count=1)
    found = tasks.see_new_tasks(svc, 1, floor=0)
    assert ls.reads[-1] == 0 and len(found) == 3 and svc.state.tasks.seen_task_count(1) == 3
    assert svc.state.cursors.get(tasks.TaskCursor.name(1)) == before
    assert tasks.task_cursor(svc, 1) == tasks.TaskCursor.load(before)
