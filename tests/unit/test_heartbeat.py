"""Heartbeats: progress reported from a long stage (and from the engine inside it) keeps it from being taken as
stuck."""

from __future__ import annotations

import time
from pathlib import Path

from syncd import heartbeat
from syncd.daemon.jobs import StageJobs
from syncd.stages import BY_NAME, transcribe
from tests.unit.fakes import GO, services


def test_progress_keeps_a_long_stage_from_being_stuck() -> None:
    now = [0.0]
    jobs = StageJobs(lambda _stage: None, clock=lambda: now[0])
    with jobs.tracking("transcribe"):
        now[0] += 100
        assert jobs.stuck(10) == ["transcribe"]
        heartbeat.beat()  # what the transcribe stage's progress callback does
        assert jobs.stuck(10) == []
    heartbeat.beat()  # outside a tracked job: nothing listens, nothing breaks
    assert jobs.running() == []


def _beats_while_transcribing(tmp_path: Path, progress_reports: int) -> int:
    """Heartbeats the transcribe stage gives for one recording whose engine reports progress that many times."""
    svc, _, storage, engine = services(tmp_path)
    engine.progress_reports = progress_reports
    storage.put_audio("b", "a.mp3")
    BY_NAME["scan"].run(svc, GO)
    beats: list[float] = []
    with heartbeat.listening(lambda: beats.append(time.monotonic())):
        transcribe.run(svc, GO)
    return len(beats)


def test_engine_progress_reaches_the_heartbeat(tmp_path: Path) -> None:
    """Each progress report of the engine is one more beat: the stage's own beats (submission, each poll) are the
    same with or without them."""
    quiet = _beats_while_transcribing(tmp_path / "quiet", 0)
    talking = _beats_while_transcribing(tmp_path / "talking", 5)
    assert talking - quiet == 5, (quiet, talking)
