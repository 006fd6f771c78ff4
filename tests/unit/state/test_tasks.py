"""Projects and the Label Studio tasks seen in them: each task remembered once, waiting recordings adoptable by
the task that already holds them (the lowest id of twins), counts read without asking Label Studio."""

from __future__ import annotations

from pathlib import Path

from syncd.domain.recording import S3Object, Status
from tests.unit.fakes import new_store


def test_tasks_are_remembered_once_and_forgotten(tmp_path: Path) -> None:
    state = new_store(tmp_path)
    assert state.tasks.note_tasks(1, {10: "a", 11: None}) == [10, 11]
    assert state.tasks.note_tasks(1, {10: "a", 12: "c"}) == [12], "only the ids not seen before"
    assert state.tasks.seen_task_count(1) == 3 and state.tasks.seen_tasks(1) == {10: "a", 11: None, 12: "c"}
    state.tasks.forget_tasks(1, [11])
    assert state.tasks.seen_tasks(1) == {10: "a", 12: "c"} and state.tasks.seen_task_count(2) == 0


def test_a_waiting_recording_is_adoptable_by_its_lowest_task(tmp_path: Path) -> None:
    state = new_store(tmp_path)
    [(rec_id, _)] = state.recordings.add_objects([S3Object("b", "a.wav", "e1", 1)])
    rec = state.recordings.get(rec_id)
    state.tasks.note_tasks(1, {21: rec.syncd_id, 20: rec.syncd_id, 22: "someone-else"})
    assert state.tasks.adoptable(1) == [], "a discovered recording is not waiting to be imported"
    state.recordings.move(rec_id, Status.DISCOVERED, Status.TRANSCRIBING)
    state.recordings.move(rec_id, Status.TRANSCRIBING, Status.TRANSCRIBED)
    [(found, task)] = state.tasks.adoptable(1)
    assert (found.id, task) == (rec_id, 20)
    assert state.tasks.adoptable(2) == [], "only tasks seen in that project"


def test_projects_in_order_with_their_task_counts(tmp_path: Path) -> None:
    state = new_store(tmp_path)
    state.tasks.add_project(5, "Review", 1)
    state.tasks.add_project(9, "Review (2)", 2)
    state.tasks.add_project(5, "Review", 1)
    state.tasks.note_tasks(9, {1: None, 2: None})
    assert [(p["id"], p["title"]) for p in state.tasks.projects()] == [(5, "Review"), (9, "Review (2)")]
    assert state.tasks.project_task_counts() == {"5": 0, "9": 2}
