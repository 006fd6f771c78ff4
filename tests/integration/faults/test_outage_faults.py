"""Stops, restarts and outages against the real stack (Label Studio, SeaweedFS, moto for Transcribe, the real `syncd`
process): an outage fails nothing and health names it meanwhile; malformed Transcribe output fails one recording with
its reason until fixed and retried; a reload during a hung stage keeps the watchdog fed; a recording that keeps
killing the daemon ends failed."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from devstack import (
    SENTENCES,
    TRANSCRIBE_PREFIX,
    Stack,
    SyncdProcess,
    aws_config,
    free_port,
    notify_socket,
    project_tasks,
    run_syncd,
    speak,
    upload_with_results,
)
from syncd import errors
from syncd.state import StateStore

FAST = "\n[schedule]\nscan_interval = 1\ntranscribe_interval = 1\nimport_interval = 1\nexport_interval = 1\n"
RECORDINGS = {"out/a.mp3": "single_speaker.json", "out/b.wav": "two_speakers.json", "out/c.flac": "spanish.json"}


def _dependency_up(base: str) -> dict[str, float]:
    text = requests.get(f"{base}/metrics", timeout=10).text
    return {
        s.labels["dependency"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "syncd_dependency_up"
    }


def _status(stack: Stack, config: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(run_syncd(["status", "-c", str(config), "--json"], stack).stdout)
    return result


def test_transcribe_outage_fails_nothing_and_health_names_it(
    stack: Stack, s3: Any, ls: Any, bucket: str, tmp_path: Path
) -> None:
    upload_with_results(s3, bucket, RECORDINGS)
    port = free_port()
    config = aws_config(stack, tmp_path, bucket, "outage transcribe")
    text = config.read_text().replace('engine = "aws"', 'engine = "aws"\nmax_attempts = 2')
    text = text.replace('listen = ""', f'listen = "127.0.0.1:{port}"\ndependency_grace = 0')
    config.write_text(text + FAST + "outage_backoff_max = 1\n")
    base = f"http://127.0.0.1:{port}"

    stack.moto.stop()  # Transcribe unreachable before the daemon even starts
    daemon = SyncdProcess(config, stack)
    try:
        marked = daemon.wait("dependency.down", timeout=120)
        assert daemon.events[marked]["dependency"] == "transcribe"
        # Many more tries than max_attempts while it stays down.
        failed = daemon.wait("stage.failed", stage="transcribe", cause="unavailable", timeout=60)
        for _ in range(4):
            failed = daemon.wait("stage.failed", stage="transcribe", after=failed + 1, timeout=60)

        health = requests.get(f"{base}/healthz", timeout=10)
        assert health.status_code == 503 and health.json()["status"] == "failing"
        assert health.json()["down"] == ["transcribe"] and health.json()["checks"]["transcribe"]["ok"] is False
        assert _dependency_up(base) == {"labelstudio": 1.0, "s3": 1.0, "state": 1.0, "transcribe": 0.0}
        status = _status(stack, config)
        assert status["dependencies"]["transcribe"]["ok"] is False and status["recordings"]["failed"] == 0
        cycles = [e for e in daemon.events[marked:] if e["event"] == "cycle.completed"]
        assert cycles and not any(c["ok"] for c in cycles), "cycle.ok stayed true while Transcribe was down"
    finally:
        stack.moto.start()
        stack.moto.wait()

    try:
        back = daemon.wait("dependency.up", dependency="transcribe", timeout=120)
        for _ in RECORDINGS:
            back = daemon.wait("task.imported", after=back + 1, timeout=120)
        assert daemon.stop() == errors.OK
    finally:
        daemon.kill()
    names = [e["event"] for e in daemon.events]
    assert "transcription.failed" not in names and "transcription.retrying" not in names
    assert sorted(t["data"]["source"] for t in project_tasks(ls, "outage transcribe")) == sorted(
        f"s3://{bucket}/{key}" for key in RECORDINGS
    )
    state = StateStore(str(tmp_path / "state.db"))
    assert {r.status for r in state.recordings.all()} == {"imported"} and {
        r.attempts for r in state.recordings.all()
    } == {0}
    state.close()
    assert _status(stack, config)["dependencies"]["transcribe"]["ok"] is True


def test_malformed_transcribe_output_fails_with_its_reason_until_retried(
    stack: Stack, s3: Any, ls: Any, bucket: str, tmp_path: Path
) -> None:
    names = upload_with_results(s3, bucket, {"bad/a.mp3": "single_speaker.json"})
    output = f"{TRANSCRIBE_PREFIX}{names['bad/a.mp3']}.json"
    good = s3.get_object(Bucket=bucket, Key=output)["Body"].read()
    s3.put_object(Bucket=bucket, Key=output, Body=b'{"results": {"items": [{"type": "pronunciation"}]}}')
    config = aws_config(stack, tmp_path, bucket, "outage malformed")

    for _ in range(4):  # QUEUED -> IN_PROGRESS -> COMPLETED on moto, then the output is read
        run_syncd(["once", "-c", str(config)], stack)
    status = _status(stack, config)
    assert status["recordings"]["failed"] == 1
    (error,) = status["last_errors"]
    assert error["attempts"] == 1 and error["reason"].startswith(f"malformed output s3://{bucket}/{output}")

    s3.put_object(Bucket=bucket, Key=output, Body=good)
    run_syncd(["retry", "-c", str(config)], stack)
    for _ in range(4):
        run_syncd(["once", "-c", str(config)], stack)
    assert _status(stack, config)["recordings"]["imported"] == 1
    assert len(project_tasks(ls, "outage malformed")) == 1


def test_reload_while_a_stage_hangs_keeps_the_watchdog_fed(stack: Stack, config_file: Path, tmp_path: Path) -> None:
    config_file.write_text(config_file.read_text() + FAST)
    path = tmp_path / "notify.sock"
    env = {
        "NOTIFY_SOCKET": str(path),
        "WATCHDOG_USEC": "2000000",  # a ping every second
        "SYNCD_HANG_AT": "stage.export",
        "SYNCD_HANG_SECONDS": "8",
    }
    with notify_socket(path) as messages:
        daemon = SyncdProcess(config_file, stack, env=env)
        try:
            hang = daemon.wait("fault.hang", timeout=60)
            daemon.proc.send_signal(signal.SIGHUP)
            reloaded = daemon.wait("config.reloaded", after=hang, timeout=60)
            daemon.wait("fault.hang", after=reloaded, timeout=60)  # the stages run again on the new config
            assert daemon.proc.poll() is None
        finally:
            daemon.kill()

    names = [e["event"] for e in daemon.events]
    assert "stage.stuck" not in names
    start = next(i for i, m in enumerate(messages) if m.startswith("RELOADING=1"))
    end = next(i for i, m in enumerate(messages[start:], start=start) if m.startswith("READY=1"))
    pings = messages[start:end].count("WATCHDOG=1")
    assert pings >= 3, f"watchdog starved while reloading: {messages[start : end + 1]}"


def test_a_recording_that_keeps_killing_the_daemon_ends_failed(
    stack: Stack, s3: Any, ls: Any, bucket: str, config_file: Path, tmp_path: Path
) -> None:
    s3.upload_file(str(speak(SENTENCES[0], tmp_path / "a.wav")), bucket, "crash/a.wav")
    text = config_file.read_text()
    config_file.write_text(text.replace('engine = "whisper"', 'engine = "whisper"\nmax_attempts = 2'))
    crash = {"SYNCD_CRASH_AT": "transcribe.attempt_started"}

    for _ in range(2):
        assert run_syncd(["once", "-c", str(config_file)], stack, env=crash, check=False).returncode == -9
    last = run_syncd(["once", "-c", str(config_file)], stack, env=crash, check=False)
    assert last.returncode == errors.OK, last.stdout[-3000:]
    status = _status(stack, config_file)
    (error,) = status["last_errors"]
    assert status["recordings"]["failed"] == 1 and error["status"] == "failed"
    assert "the daemon stopped 2 times while transcribing it" in error["reason"]

    run_syncd(["retry", "-c", str(config_file)], stack)
    run_syncd(["once", "-c", str(config_file)], stack)
    assert _status(stack, config_file)["recordings"]["imported"] == 1
    assert len(project_tasks(ls, config_file.read_text().split('project = "')[1].split('"')[0])) == 1
