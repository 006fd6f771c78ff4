"""Outages: transient errors wait and retry with back-off without spending a recording's attempts, and health, metrics
and status name the dependency that is down."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from syncd.commands.status import format_status, status_report
from syncd.daemon.health import health_report
from syncd.domain.recording import Status
from syncd.pipeline import run_stage
from syncd.stages import BY_NAME
from syncd.transcribers.base import OutageError
from tests.unit.fakes import healthy_probes, services

KEYS = ["a.mp3", "b.mp3", "c.mp3"]


def _discover(svc: Any, storage: Any) -> None:
    for key in KEYS:
        storage.put_audio("b", key, key.encode())
    BY_NAME["scan"].run(svc, threading.Event())


_probes = healthy_probes


def _due_again(svc: Any) -> None:
    """Let the back-off run out now, as `syncd retry` does (the test does not wait for it)."""
    svc.state.outages.retry_now()


def test_outage_spends_no_attempts_fails_the_cycle_and_health_names_it(tmp_path: Path) -> None:
    svc, _, storage, engine = services(
        tmp_path, transcriber={"max_attempts": 2}, http={"dependency_grace": 0}, schedule={"outage_backoff_max": 60}
    )
    _discover(svc, storage)
    down = OutageError("transcribe", "GetTranscriptionJob: EndpointConnectionError: could not connect")
    engine.fail = dict.fromkeys(KEYS, down)

    with capture_logs() as logs:
        runs = []
        for _ in range(10):  # far more tries than max_attempts
            runs.append(run_stage(svc, BY_NAME["transcribe"], threading.Event()))
            _due_again(svc)
    assert not any(run.ok for run in runs), "cycle.ok must not stay true while Transcribe is down"
    failed = [e for e in logs if e["event"] == "stage.failed"]
    assert len(failed) == 10 and {e["cause"] for e in failed} == {"unavailable"}
    assert [e["event"] for e in logs].count("dependency.down") == 1
    assert not [e for e in logs if e["event"] in ("transcription.failed", "transcription.retrying")]
    assert {r.status for r in svc.state.recordings.all()} == {Status.TRANSCRIBING}
    assert {r.attempts for r in svc.state.recordings.all()} == {0}

    # While waiting for the back-off, the stage does not call the engine at all.
    polls = len(engine.started)
    svc.state.outages.mark_down("transcribe", "still down", 60, svc.log)
    assert not run_stage(svc, BY_NAME["transcribe"], threading.Event()).ok
    assert len(engine.started) == polls

    # What the operator sees: /healthz failing naming Transcribe, syncd status, the metric's source.
    ok, body = health_report(svc.settings, "running", 1.0, _probes(svc.settings), svc.state)
    assert not ok and body["status"] == "failing" and body["down"] == ["transcribe"]
    check = body["checks"]["transcribe"]
    assert check["ok"] is False and check["up"] is False and check["error"] == "still down"
    assert check["down_since"] and check["down_seconds"] >= 0
    report = status_report(svc.state)
    assert report["dependencies"]["transcribe"]["ok"] is False
    assert "transcribe DOWN since" in format_status(report)

    # Back: every recording finishes, nothing failed, Transcribe is up again.
    engine.fail = {}
    _due_again(svc)
    with capture_logs() as logs:
        assert run_stage(svc, BY_NAME["transcribe"], threading.Event()).ok
    assert {r.status for r in svc.state.recordings.all()} == {Status.TRANSCRIBED}
    assert [e["dependency"] for e in logs if e["event"] == "dependency.up"] == ["transcribe"]
    ok, body = health_report(svc.settings, "running", 1.0, _probes(svc.settings), svc.state)
    assert ok and body["checks"]["transcribe"]["up"] is True and "down" not in body


def test_health_tolerates_a_short_outage_within_the_grace(tmp_path: Path) -> None:
    svc, *_ = services(tmp_path, http={"dependency_grace": 3600})
    svc.state.outages.mark_down("transcribe", "ThrottlingException", 60, svc.log)
    ok, body = health_report(svc.settings, "running", 1.0, _probes(svc.settings), svc.state)
    assert ok and body["checks"]["transcribe"]["up"] is False and body["down"] == ["transcribe"]


def test_backoff_doubles_up_to_the_cap(tmp_path: Path) -> None:
    svc, *_ = services(tmp_path)
    delays = []
    for _ in range(8):
        dep = svc.state.outages.mark_down("transcribe", "down", 40, svc.log)
        delays.append(round(dep.retry_at - time.time()))
    assert delays == [5, 10, 20, 40, 40, 40, 40, 40]
