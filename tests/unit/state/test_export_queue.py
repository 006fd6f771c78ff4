"""The export queue: a failing task is read again each cycle until it has spent its attempts, then parked until
`syncd retry` (or until it changes); transient failures spend nothing."""

from __future__ import annotations

from pathlib import Path

from tests.unit.fakes import new_store


def test_attempts_park_a_task_and_retry_requeues_it(tmp_path: Path) -> None:
    state = new_store(tmp_path)
    for _ in range(2):
        assert not state.export_queue.queue_export(1, 7, None, "boom", attempt=True, park_after=3, task_updated_at="t1")
    assert state.export_queue.queued(1) == [7] and state.export_queue.parked_counts() == {"export": 0}
    assert state.export_queue.queue_export(1, 7, None, "boom", attempt=True, park_after=3, task_updated_at="t1")
    assert state.export_queue.queued(1) == [] and state.export_queue.parked_tasks(1) == {7: "t1"}
    [parked] = state.export_queue.parked_exports()
    assert (parked["task_id"], parked["reason"], parked["attempts"]) == (7, "boom", 3)
    assert state.export_queue.requeue_parked() == 1
    assert state.export_queue.queued(1) == [7] and state.export_queue.parked_counts() == {"export": 0}


def test_transient_failures_spend_no_attempt_and_done_tasks_leave(tmp_path: Path) -> None:
    state = new_store(tmp_path)
    for _ in range(5):
        assert not state.export_queue.queue_export(1, 8, None, "unreachable", attempt=False, park_after=3)
    state.export_queue.queue_export(2, 9, None, "queued")
    assert state.export_queue.queued(1) == [8] and state.export_queue.queued(2) == [9]
    state.export_queue.unqueue_exports([8, 9])
    assert state.export_queue.queued(1) == [] and state.export_queue.queued(2) == []


def test_a_webhook_delivery_waits_for_the_holder_and_a_newer_one_is_not_lost(tmp_path: Path) -> None:
    state = new_store(tmp_path)
    state.export_queue.queue_webhook(7, 2, received=100.0)
    state.export_queue.queue_webhook(8, None, received=101.0)
    first, second = state.export_queue.webhook_deliveries()
    assert (first.task, first.project, second.task, second.project) == (7, 2, 8, 0)
    assert state.export_queue.webhook_backlog() == (2, 100.0)
    state.export_queue.queue_webhook(
        7, None, received=102.0
    )  # a second review while the first delivery is being exported
    assert not state.export_queue.unqueue_webhook(first), "the newer delivery stays"
    assert [d.task for d in state.export_queue.webhook_deliveries()] == [8, 7] and state.export_queue.queued(2) == [7]
    assert state.export_queue.unqueue_webhook(
        state.export_queue.webhook_deliveries()[1]
    ) and state.export_queue.unqueue_webhook(second)
    assert state.export_queue.webhook_deliveries() == [] and state.export_queue.webhook_backlog() == (0, None)


def test_a_delivery_brings_a_parked_task_back(tmp_path: Path) -> None:
    state = new_store(tmp_path)
    assert state.export_queue.queue_export(1, 7, None, "boom", attempt=True, park_after=1, task_updated_at="t1")
    state.export_queue.queue_webhook(7, 1)
    assert [d.task for d in state.export_queue.webhook_deliveries()] == [7] and state.export_queue.parked_counts() == {
        "export": 0
    }
