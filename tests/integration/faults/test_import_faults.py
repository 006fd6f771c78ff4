"""Import exactly once under faults, against the real stack: a state restored from an old backup, a state DB lost
under `syncd run`, an import request that times out while Label Studio keeps committing, and a task deleted while
another tool adds one. Each asserts the tasks Label Studio holds and what an operator sees."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from devstack import (
    Stack,
    SyncdProcess,
    aws_config,
    free_port,
    log_events,
    project_tasks,
    run_syncd,
    run_until_imported,
    upload_with_results,
)
from devstack.transcribe import TRANSCRIBE_FIXTURES
from syncd.config import load
from syncd.daemon.metrics import Metrics
from syncd.domain.recording import S3Object, Status
from syncd.labelstudio import LabelStudioClient
from syncd.services import Services
from syncd.stages import import_
from syncd.state import StateStore
from syncd.transcribers.aws import MODEL
from syncd.transcribers.aws_output import parse_transcribe_output

FIXTURES = ("two_speakers.json", "single_speaker.json", "two_speakers_new.json", "spanish.json")
FIRST = {f"calls/{name}.mp3": FIXTURES[i] for i, name in enumerate(("a", "b"))}
SECOND = {f"calls/{name}.mp3": FIXTURES[i + 2] for i, name in enumerate(("c", "d"))}
GO = threading.Event()


def _once_per_syncd_id(tasks: list[dict[str, Any]]) -> bool:
    return set(Counter(t["data"]["syncd_id"] for t in tasks).values()) == {1}


def _status(stack: Stack, config: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(run_syncd(["status", "--json", "-c", str(config)], stack).stdout)
    return report


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_state_restored_from_an_old_backup_imports_nothing_twice(
    stack: Stack, s3: Any, ls: Any, bucket: str, tmp_path: Path
) -> None:
    config = aws_config(stack, tmp_path, bucket, "restored backup")
    upload_with_results(s3, bucket, FIRST)
    run_until_imported(stack, config, expected=2)
    state_db, backup = tmp_path / "state.db", tmp_path / "backup.db"
    with sqlite3.connect(state_db) as live, sqlite3.connect(backup) as copy:
        live.backup(copy)
    upload_with_results(s3, bucket, SECOND)
    run_until_imported(stack, config, expected=2)
    assert len(project_tasks(ls, "restored backup")) == 4

    with sqlite3.connect(backup) as old, sqlite3.connect(state_db) as live:
        old.backup(live)
    assert _status(stack, config)["recordings"]["imported"] == 2
    events = run_until_imported(stack, config, expected=2)

    tasks = project_tasks(ls, "restored backup")
    assert len(tasks) == 4 and _once_per_syncd_id(tasks)
    assert sum(e["event"] == "task.recovered" for e in events) == 2
    assert not any(e["event"] == "task.imported" for e in events)
    report = _status(stack, config)
    assert report["recordings"]["imported"] == 4 and report["pending"] == 0


def test_lost_state_db_under_syncd_run_imports_each_file_once(
    stack: Stack, s3: Any, ls: Any, bucket: str, tmp_path: Path
) -> None:
    # One Transcribe job at a time: the import job runs between transcriptions, as it did when 4 files became 7 tasks.
    # Fresh jobs (moto's finished ones would complete at the first poll) finish one every few seconds.
    config = aws_config(stack, tmp_path, bucket, "lost state", aws="max_in_flight = 1")
    jobs = upload_with_results(s3, bucket, FIRST | SECOND)
    # One job in flight, and each moto job needs three polls (one per `once` run at most): up to 12 runs.
    run_until_imported(stack, config, expected=4, runs=15)
    for path in tmp_path.glob("state.db*"):
        path.unlink()
    transcribe = stack.moto.client()
    for job in jobs.values():
        transcribe.delete_transcription_job(TranscriptionJobName=job)

    port = free_port()
    text = config.read_text().replace('listen = ""', f'listen = "127.0.0.1:{port}"')
    config.write_text(text + "\n[schedule]\nscan_interval = 1\ntranscribe_interval = 1\nimport_interval = 1\n")
    daemon = SyncdProcess(config, stack)
    try:
        seen = -1
        for _ in range(4):
            seen = daemon.wait("task.recovered", timeout=120, after=seen + 1)
        metrics = _samples(requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)
        health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
    finally:
        daemon.stop()

    tasks = project_tasks(ls, "lost state")
    assert len(tasks) == 4 and _once_per_syncd_id(tasks)
    assert not any(e["event"] == "task.imported" for e in daemon.events)
    assert metrics[("syncd_recordings", (("state", "imported"),))] == 4
    assert metrics[("syncd_log_events_total", (("event", "task.recovered"), ("level", "info")))] == 4
    assert ("syncd_log_events_total", (("event", "task.imported"), ("level", "info"))) not in metrics
    assert health.status_code == 200, health.text


def _seed_transcribed(state: StateStore, bucket: str, count: int) -> None:
    """Recordings already transcribed (Amazon Transcribe's real output shape), so the test spends its time on the
    import: Label Studio only stores the audio URI, it never reads the audio here."""
    doc = json.loads((TRANSCRIBE_FIXTURES / "two_speakers.json").read_text())
    transcript = parse_transcribe_output(doc, job="seed", model=MODEL)
    added = state.recordings.add_objects(S3Object(bucket, f"bulk/{i:05}.mp3", f"etag{i}", 100) for i in range(count))
    ids = [rec_id for rec_id, _ in added]
    state.recordings.transition(ids, Status.DISCOVERED, Status.TRANSCRIBING)
    state.recordings.transition(ids, Status.TRANSCRIBING, Status.TRANSCRIBED, transcript=transcript, score=0.5)


def test_import_that_times_out_while_label_studio_commits_lands_once(
    stack: Stack, ls: Any, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    count = 1000
    for name, value in stack.env().items():
        monkeypatch.setenv(name, value)
    config = aws_config(stack, tmp_path, bucket, "import timeout")
    config.write_text(config.read_text().replace("[labelstudio]\n", "[labelstudio]\nimport_batch_size = 1000\n"))
    svc = Services.build(load(config))
    svc.connect()
    _seed_transcribed(svc.state, bucket, count)
    # The client gives up long before Label Studio has validated and stored 1000 predictions; reads stay quick.
    hasty = svc.settings.labelstudio.model_copy(update={"timeout": 0.5})
    impatient = Services.assemble(
        svc.settings, svc.state, svc.storage, svc.transcriber, LabelStudioClient(hasty, stack.labelstudio.token)
    )
    impatient.projects.current_id = svc.projects.current  # the same connected project, through the hasty client

    with capture_logs() as logs:
        with pytest.raises(requests.ReadTimeout):
            import_.run(impatient, GO)
        status = _status(stack, config)
        rounds = 0
        while (
            svc.state.recordings.count(Status.IMPORTING) and rounds < 240
        ):  # Label Studio is asked again until it has committed
            import_.run(svc, GO)
            rounds += 1
            time.sleep(0.5)

    tasks = project_tasks(ls, "import timeout")
    assert len(tasks) == count and _once_per_syncd_id(tasks)
    assert {r.status for r in svc.state.recordings.all()} == {Status.IMPORTED}
    events = Counter(e["event"] for e in logs)
    assert events["task.recovered"] == count and not events["task.imported"]
    assert events["import.in_doubt"] >= 1 and not events["import.doubt_resolved"]

    assert status["recordings"]["importing"] == count
    assert "import in doubt (ReadTimeout" in status["last_errors"][0]["reason"]
    metrics = Metrics()
    for event in logs:
        metrics.observe(event["log_level"], event["event"], event)
    samples = _samples(metrics.render().decode())
    assert samples[("syncd_log_events_total", (("event", "import.in_doubt"), ("level", "warning")))] >= 1


def test_task_deleted_while_another_tool_adds_one_is_noticed(
    stack: Stack, s3: Any, ls: Any, bucket: str, tmp_path: Path
) -> None:
    config = aws_config(stack, tmp_path, bucket, "deleted task")
    upload_with_results(s3, bucket, FIRST)
    run_until_imported(stack, config, expected=2)
    run_syncd(["once", "-c", str(config)], stack)
    victim, *_ = sorted(project_tasks(ls, "deleted task"), key=lambda t: t["id"])
    ls.tasks.delete(str(victim["id"]))
    ls.tasks.create(project=victim["project"], data={"audio": "s3://elsewhere/other.mp3"})

    events = log_events(run_syncd(["once", "-c", str(config)], stack).stdout)

    [deleted] = [e for e in events if e["event"] == "task.deleted"]
    assert deleted["task"] == victim["id"] and deleted["level"] == "warning"
    key = victim["data"]["source"].removeprefix(f"s3://{bucket}/")
    [row] = [e for e in _status(stack, config)["last_errors"] if e["key"] == key]
    assert f"task {victim['id']} deleted in Label Studio" in row["reason"]
    # Nothing was imported again to stand in for it, and the other tool's task is left alone.
    tasks = project_tasks(ls, "deleted task")
    assert len(tasks) == 2 and sum("syncd_id" in t["data"] for t in tasks) == 1
