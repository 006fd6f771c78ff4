"""Heartbeats: progress reported from a long stage (and from the engine inside it) keeps it from being taken as
stuck."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from syncd import heartbeat
from syncd.daemon.jobs import StageJobs
from syncd.stages import BY_NAME, transcribe
from tests.unit.fakes import services


def test_progress_keeps_a_long_stage_from_being_stuck() -> None:
    jobs = StageJobs(lambda _stage: None)
    with jobs.tracking("transcribe"):
        jobs._running["transcribe"] = time.monotonic() - 100
        assert jobs.stuck(10) == ["transcribe"]
        heartbeat.beat()  # what the transcribe stage's progress callback does
        assert jobs.stuck(10) == []
    heartbeat.beat()  # outside a tracked job: nothing listens, nothing breaks
    assert jobs.running() == []


def test_engine_progress_reaches_the_heartbeat(tmp_path: Path) -> None:
    svc, _, storage, _ = services(tmp_path)
    storage.put_audio("b", "a.mp3")
    BY_NAME["scan"].run(svc, threading.Event())
    jobs = StageJobs(lambda _stage: None)
    beats: list[float] = []
    with jobs.tracking("transcribe"), heartbeat.listening(lambda: beats.append(time.monotonic())):
        transcribe.run(svc, threading.Event())
    assert len(beats) >= 2  # the submission and the fake engine's progress call
