"""The import stage: least confident first, paced batches, stranded rows recovered."""

from __future__ import annotations

import dataclasses
import itertools
import random
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from syncd.domain.recording import Status
from syncd.labelstudio.tasks import task_for
from syncd.pipeline import run_stage
from syncd.services import Services
from syncd.stages import BY_NAME, import_, scan, transcribe
from tests.unit.fakes import GO, FakeLabelStudio, FakeStorage, FakeTranscriber, Stack, services
from tests.unit.scenarios import expire_lease, per_syncd_id, second_instance, transcribed_with


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(import_, "_now", clock)
    return clock


def _paced(tmp_path: Path, **labelstudio: Any) -> tuple[Services, FakeLabelStudio, FakeStorage, FakeTranscriber]:
    svc, ls, storage, engine = services(tmp_path, labelstudio={"layout": "whole", **labelstudio})
    svc = dataclasses.replace(svc, paced=True)
    return svc, ls, storage, engine


def _finish_transcription(
    svc: Services, storage: FakeStorage, engine: FakeTranscriber, key: str, score: float, at: float
) -> None:
    """One recording is uploaded and transcribed (with ``score``); it became ready at ``at`` on the test's clock."""
    storage.put_audio("b", key, key.encode())
    engine.confidence = score
    scan.run(svc, GO)
    transcribe.run(svc, GO)
    [rec] = [r for r in svc.state.recordings.all() if r.key == key]
    assert rec.status == Status.TRANSCRIBED
    svc.state.recordings.update(rec.id, ready_at=at)


def _timeline(
    svc: Services, storage: FakeStorage, engine: FakeTranscriber, clock: Clock, scores: list[float], every: float
) -> list[float]:
    """Recordings finish one every ``every`` seconds; the import job ticks every TICK seconds meanwhile and after,
    until nothing waits. Returns the tick times at which an import went out."""
    start, tick = clock.now, import_.TICK
    finish = [start + i * every for i in range(len(scores))]
    ticks, sent = [start + n * tick for n in range(1, 200)], []
    done = 0
    for moment in ticks:
        while done < len(scores) and finish[done] <= moment:
            clock.now = finish[done]
            _finish_transcription(svc, storage, engine, f"r{done:02d}.mp3", scores[done], finish[done])
            done += 1
        clock.now = moment
        before = len(svc.labelstudio.imports)  # type: ignore[attr-defined]
        import_.run(svc, GO)
        if len(svc.labelstudio.imports) > before:  # type: ignore[attr-defined]
            sent.append(moment - start)
        if done == len(scores) and not svc.state.recordings.count(Status.TRANSCRIBED):
            return sent
    raise AssertionError("the timeline never imported everything")


def _check_order_and_waits(ls: FakeLabelStudio, sent: list[float], scores: list[float], every: float) -> None:
    """Least confident first within each batch and across them (no recording waiting when a batch went had a lower
    score than the batch's highest), and no recording waited longer than the interval plus one tick."""
    imported: set[int] = set()
    for batch, at in zip(ls.imports, sent, strict=True):
        numbers = [int(t["data"]["key"][1:3]) for t in batch]
        batch_scores = [scores[n] for n in numbers]
        assert batch_scores == sorted(batch_scores)
        imported.update(numbers)
        left = [scores[n] for n in range(len(scores)) if n * every <= at and n not in imported]
        assert all(score >= max(batch_scores) for score in left)
        assert all(at - n * every <= 30 + import_.TICK for n in numbers)


def test_import_least_confident_first_then_recovers_stranded_rows(stack: Stack) -> None:
    svc, ls, storage, engine = stack
    for key, confidence in (("a.mp3", 0.9), ("b.mp3", 0.3), ("c.mp3", 0.6)):
        storage.put_audio("b", key, key.encode())
        scan.run(svc, GO)
        engine.confidence = confidence
        transcribe.run(svc, GO)
    assert import_.run(svc, GO) == 3
    assert [t["data"]["source"] for t in ls.imports[0]] == ["s3://b/b.mp3", "s3://b/c.mp3", "s3://b/a.mp3"]
    assert ls.model_version == "fake-1"
    assert {r.status for r in svc.state.recordings.all()} == {Status.IMPORTED}
    assert import_.run(svc, GO) == 0 and len(ls.imports) == 1


def test_import_adopts_tasks_that_landed_before_a_crash(stack: Stack) -> None:
    svc, ls, storage, _ = stack
    storage.put_audio("b", "a.mp3")
    scan.run(svc, GO)
    transcribe.run(svc, GO)
    [rec] = svc.state.recordings.due(Status.TRANSCRIBED)
    ls.import_tasks(1, [task_for(rec, "whole", "fake-1")])  # landed; the state commit did not
    svc.state.recordings.move(rec.id, Status.TRANSCRIBED, Status.IMPORTING)
    with capture_logs() as logs:
        assert import_.run(svc, GO) == 1
    assert len(ls.tasks) == 1 and [e["event"] for e in logs].count("task.recovered") == 1
    assert svc.state.recordings.get(rec.id).status == Status.IMPORTED


def test_forty_recordings_over_a_minute_take_at_most_three_requests_lowest_score_first(
    tmp_path: Path, clock: Clock
) -> None:
    svc, ls, storage, engine = _paced(tmp_path)
    assert svc.settings.schedule.import_interval == 30 and svc.settings.labelstudio.import_batch_size == 500
    assert BY_NAME["import"].interval(svc.settings) == import_.TICK == 5
    scores = [round(random.Random(i).uniform(0.3, 0.99), 4) for i in range(40)]

    sent = _timeline(svc, storage, engine, clock, scores, every=1.5)

    assert 1 <= len(ls.imports) <= 3, sent
    assert sum(len(batch) for batch in ls.imports) == 40 and len(ls.tasks) == 40
    _check_order_and_waits(ls, sent, scores, every=1.5)
    assert sent[0] == import_.TICK  # the first after a quiet spell goes at the first tick
    assert all(b - a >= 30 for a, b in itertools.pairwise(sent))  # never more often than the interval
    assert {r.status for r in svc.state.recordings.all()} == {Status.IMPORTED}


def test_full_batches_go_at_once_and_the_confident_ones_left_behind_wait_the_interval(
    tmp_path: Path, clock: Clock
) -> None:
    svc, ls, storage, engine = _paced(tmp_path, import_batch_size=10)
    scores = [round(random.Random(i).uniform(0.3, 0.99), 4) for i in range(40)]

    sent = _timeline(svc, storage, engine, clock, scores, every=1.5)

    sizes = [len(batch) for batch in ls.imports]
    assert sizes[0] == 4 and sent[0] == import_.TICK  # after a quiet spell, what is ready goes at the first tick
    assert sizes[1:4] == [10, 10, 10] and sent[1] - sent[0] < 30  # full: they did not wait for the interval
    assert sum(sizes) == 40  # the confident ones left behind go once no batch has gone for the interval
    _check_order_and_waits(ls, sent, scores, every=1.5)


def test_a_lone_recording_goes_at_once_the_next_waits_the_interval_and_an_idle_tick_asks_nothing(
    tmp_path: Path, clock: Clock
) -> None:
    svc, ls, storage, engine = _paced(tmp_path)
    start = clock.now
    _finish_transcription(svc, storage, engine, "lone.mp3", 0.5, start)
    assert import_.run(svc, GO) == 1  # nothing went for an interval: it goes at once
    reads = len(ls.reads)
    _finish_transcription(svc, storage, engine, "next.mp3", 0.5, start + 1)
    for seconds in range(1, 30, 5):
        clock.now = start + seconds
        assert import_.run(svc, GO) == 0
    assert len(ls.imports) == 1 and len(ls.reads) == reads, "nothing due: no request at all"
    clock.now = start + 30
    assert import_.run(svc, GO) == 1
    assert len(ls.imports) == 2


def test_syncd_once_imports_whatever_is_ready(tmp_path: Path, clock: Clock) -> None:
    svc, _, storage, engine = services(tmp_path)
    _finish_transcription(svc, storage, engine, "now.mp3", 0.5, clock.now)
    assert import_.run(svc, GO) == 1


def test_an_importer_frozen_between_choosing_a_batch_and_sending_it_sends_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Invariant 1 across a freeze: a picks a batch (rows marked importing), freezes past its lease; b takes the
    import lease, settles the doubt and imports the same recordings; a wakes up. a's re-check before the request
    finds the lease taken (a new generation): it sends nothing and writes nothing, so one task per recording."""
    a, ls, storage, engine = services(
        tmp_path, instance={"name": "a"}, labelstudio={"layout": "whole", "import_settle": 0}
    )
    b = second_instance(a, tmp_path, "b")
    transcribed_with(a, storage, engine, {"one.mp3": 0.5, "two.mp3": 0.6, "three.mp3": 0.7})
    frozen: list[str] = []

    def freeze(point: str) -> None:
        if point != "import.before_send" or frozen:
            return
        frozen.append(point)  # a is stopped here; its lease runs out meanwhile and b takes over
        expire_lease(b, "import")
        assert run_stage(b, BY_NAME["import"], GO).count == 3

    monkeypatch.setattr(import_, "fault_point", freeze)
    with capture_logs() as logs:
        run = run_stage(a, BY_NAME["import"], GO)
    assert frozen and run.count == 0
    assert sorted(per_syncd_id(ls).values()) == [1, 1, 1], "one task per recording"
    assert len(ls.imports) == 1, "only b's request went out"
    [fenced] = [e for e in logs if e["event"] == "lease.fenced"]
    assert (fenced["lease"], fenced["stage"]) == ("import", "import")
    assert {r.status for r in b.state.recordings.all()} == {Status.IMPORTED}
