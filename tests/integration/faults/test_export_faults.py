"""Lost or misplaced reviews, against the real stack (Label Studio 1.23.2, SeaweedFS, Transcribe on moto): each test
fails on the code before the fix, and checks both the outcome in S3 and Label Studio and what the operator sees."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from structlog.testing import capture_logs

from devstack import (
    TRANSCRIBE_FIXTURES,
    TRANSCRIBE_PREFIX,
    Stack,
    SyncdProcess,
    aws_config,
    free_port,
    log_events,
    project_tasks,
    recording_for,
    run_syncd,
    run_until_imported,
    upload_with_results,
)
from devstack.services import wait_http
from syncd import errors
from syncd.config import load
from syncd.labelstudio import layouts
from syncd.services import Services
from syncd.stages import export
from syncd.transcribers.aws import job_name

FORMATS = ("txt", "json", "srt", "vtt")


def _config(stack: Stack, tmp_path: Path, bucket: str, title: str, layout: str = "whole", output: str = "") -> Path:
    path = aws_config(stack, tmp_path, bucket, title, layout=layout)
    path.write_text(path.read_text() + (f"\n[output]\n{output}\n" if output else ""))
    return path


def _once(stack: Stack, config: Path, *, check: bool = True) -> list[dict[str, Any]]:
    return log_events(run_syncd(["once", "-c", str(config)], stack, check=check).stdout)


def _text(s3: Any, bucket: str, key: str) -> str:
    return str(s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode())


def _keys(s3: Any, bucket: str) -> set[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {o["Key"] for page in pages for o in page.get("Contents", ())}


def _whole(text: str) -> list[dict[str, Any]]:
    value = {"text": [text]}
    return [{"from_name": layouts.TEXT, "to_name": layouts.AUDIO, "type": "textarea", "value": value}]


def _tasks(ls: Any, title: str, bucket: str) -> dict[str, dict[str, Any]]:
    return {t["data"]["source"].removeprefix(f"s3://{bucket}/"): t for t in project_tasks(ls, title)}


# --- 3. a Data Manager action stamps one updated_at on every task ------------------------------------------------


def test_bulk_action_ties_export_every_task_once(
    stack: Stack, s3: Any, ls: Any, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = {f"calls/bulk {n:02d}.mp3": "single_speaker.json" for n in range(12)}
    upload_with_results(s3, bucket, keys)
    config = _config(stack, tmp_path, bucket, "faults ties")
    run_until_imported(stack, config, expected=len(keys))
    project = next(int(p.id) for p in ls.projects.list() if p.title == "faults ties")
    # Label Studio's own "Create Annotations From Predictions" over every task: one updated_at for all twelve.
    action = {"id": "predictions_to_annotations", "project": project}
    stack.labelstudio.api("POST", "/api/dm/actions", params=action, json={"selectedItems": {"all": True}})
    tasks = _tasks(ls, "faults ties", bucket)
    assert len({t["updated_at"] for t in tasks.values()}) == 1 and all(t["annotations"] for t in tasks.values())

    for name, value in stack.env().items():
        monkeypatch.setenv(name, value)
    svc = Services.build(load(config))
    svc.connect()
    requests_made = 0
    send = svc.labelstudio._request

    def bounded(*args: Any, **kwargs: Any) -> Any:
        nonlocal requests_made
        requests_made += 1
        assert requests_made < 100, "the export re-reads the same tasks without end"
        return send(*args, **kwargs)

    svc.labelstudio._request = bounded  # type: ignore[method-assign]
    monkeypatch.setattr(export, "READ_PAGE", 5)
    try:
        with capture_logs() as logs:
            assert export.reviews(svc, threading.Event()) == len(keys)
            assert export.reviews(svc, threading.Event()) == 0
    finally:
        svc.close()
    exported = [e["task"] for e in logs if e["event"] == "annotation.exported"]
    assert sorted(exported) == sorted(t["id"] for t in tasks.values()), "every task exactly once"
    for key in keys:
        stem = key.removesuffix(".mp3")
        assert _text(s3, bucket, f"{stem}.transcript.txt").strip(), key
    assert not [e for e in logs if e["event"] in ("export.failed", "export.cursor_held")]


# --- 4. one bad task never holds the cursor; keys obstore cannot express round-trip exactly ----------------------

# Keys S3 (and SeaweedFS) hold exactly but obstore cannot express. A leading "/", "//", "." and ".." segments and "\\"
# are covered by the unit tier: SeaweedFS itself rewrites or refuses those.
ODD_KEYS = ("calls/tab\there.mp3", "calls/new\nline.mp3", "calls/del\x7f.mp3")


def _healthz_and_metrics(stack: Stack, config: Path) -> tuple[dict[str, Any], str]:
    port = free_port()
    text = config.read_text().replace('listen = ""', f'listen = "127.0.0.1:{port}"')
    daemon_config = config.with_name("daemon.toml")
    daemon_config.write_text(text)
    daemon = SyncdProcess(daemon_config, stack)
    try:
        daemon.wait("cycle.completed", timeout=180)
        health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=30)
        metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
        assert health.status_code == 200
        return health.json(), metrics
    finally:
        assert daemon.stop() == 0


def test_failing_task_is_parked_and_the_rest_exported(
    stack: Stack, s3: Any, ls: Any, bucket: str, tmp_path: Path
) -> None:
    recordings = {key: "two_speakers.json" for key in ("calls/bad.mp3", "calls/good.mp3", *ODD_KEYS)}
    upload_with_results(s3, bucket, recordings)
    config = _config(stack, tmp_path, bucket, "faults parked", layout="segments")  # export_attempts = 3
    run_until_imported(stack, config, expected=len(recordings))
    tasks = _tasks(ls, "faults parked", bucket)
    predicted = tasks["calls/good.mp3"]["predictions"][0]["result"]
    broken = [dict(i, value=i["value"] | {"start": "0:00"}) if i["id"] == "seg0000" else i for i in predicted]
    bad_task = tasks["calls/bad.mp3"]["id"]
    bad = ls.annotations.create(id=bad_task, result=broken, was_cancelled=False)
    # A region saved with a start and no end (possible through the API) is exported, not a failure.
    no_end = [dict(i, value={k: v for k, v in i["value"].items() if k != "end"}) for i in predicted]
    ls.annotations.create(id=tasks["calls/good.mp3"]["id"], result=no_end, was_cancelled=False)
    for key in ODD_KEYS:
        ls.annotations.create(id=tasks[key]["id"], result=predicted, was_cancelled=False)

    first = _once(stack, config, check=False) + _once(stack, config, check=False)
    second = _once(stack, config, check=False)
    for key in ("calls/good.mp3", *ODD_KEYS):
        stem = key.removesuffix(".mp3")
        for fmt in FORMATS:
            assert _text(s3, bucket, f"{stem}.transcript.{fmt}"), f"{stem!r}.{fmt}"
    assert not {k for k in _keys(s3, bucket) if k.startswith("calls/bad.")} - {"calls/bad.mp3"}
    failed = [e["task"] for e in first + second if e["event"] == "export.failed"]
    assert failed == [bad_task] * 3
    (parked,) = [e for e in second if e["event"] == "export.parked"]
    assert "'0:00' is not a number of seconds" in parked["reason"]

    status = json.loads(run_syncd(["status", "--json", "-c", str(config)], stack).stdout)
    assert [(p["task"], p["key"]) for p in status["parked"]] == [(bad_task, "calls/bad.mp3")]
    assert "is not a number" in status["parked"][0]["reason"]
    health, metrics = _healthz_and_metrics(stack, config)
    assert health["status"] == "degraded" and health["checks"]["parked"] == {"ok": False, "count": 1}
    assert 'syncd_parked{stage="export"} 1.0' in metrics

    retried = run_syncd(["retry", "-c", str(config)], stack).stdout
    assert "1 parked export(s)" in retried
    assert json.loads(run_syncd(["status", "--json", "-c", str(config)], stack).stdout)["parked"] == []
    again = _once(stack, config, check=False)
    assert [e["task"] for e in again if e["event"] == "export.failed"] == [bad_task], "re-read after retry"

    ls.annotations.update(bad.id, result=predicted)  # the reviewer repairs it
    fixed = _once(stack, config)
    assert [e["key"] for e in fixed if e["event"] == "annotation.exported"] == ["calls/bad.mp3"]
    assert json.loads(run_syncd(["status", "--json", "-c", str(config)], stack).stdout)["parked"] == []


# --- 5 and 6. a shared stem; an upload reverted X -> Y -> X -----------------------------------------------


def test_shared_stem_and_reverted_upload(stack: Stack, s3: Any, ls: Any, bucket: str, tmp_path: Path) -> None:
    upload_with_results(s3, bucket, {"calls/meeting.wav": "single_speaker.json", "calls/meeting.mp3": "spanish.json"})
    config = _config(stack, tmp_path, bucket, "faults versions")
    run_until_imported(stack, config, expected=2)
    tasks = _tasks(ls, "faults versions", bucket)
    for key in ("calls/meeting.wav", "calls/meeting.mp3"):
        ls.annotations.create(id=tasks[key]["id"], result=_whole(f"review of {key}"), was_cancelled=False)
    _once(stack, config)
    assert _text(s3, bucket, "calls/meeting.wav.transcript.txt") == "review of calls/meeting.wav\n"
    assert _text(s3, bucket, "calls/meeting.mp3.transcript.txt") == "review of calls/meeting.mp3\n"
    assert not [k for k in _keys(s3, bucket) if k.startswith("calls/meeting.transcript.")]

    x_body = s3.get_object(Bucket=bucket, Key="calls/meeting.mp3")["Body"].read()
    x_etag = s3.head_object(Bucket=bucket, Key="calls/meeting.mp3")["ETag"].strip('"')
    s3.put_object(Bucket=bucket, Key="calls/meeting.mp3", Body=x_body + b" take two")  # Y
    upload_y = s3.head_object(Bucket=bucket, Key="calls/meeting.mp3")["ETag"].strip('"')
    job = job_name(recording_for(bucket, "calls/meeting.mp3", upload_y))
    body = (TRANSCRIBE_FIXTURES / "two_speakers.json").read_bytes()
    s3.put_object(Bucket=bucket, Key=f"{TRANSCRIBE_PREFIX}{job}.json", Body=body)
    run_until_imported(stack, config, expected=1)
    y_task = next(t for t in project_tasks(ls, "faults versions") if t["id"] not in {t["id"] for t in tasks.values()})
    ls.annotations.create(id=y_task["id"], result=_whole("review of Y"), was_cancelled=False)
    _once(stack, config)
    assert _text(s3, bucket, "calls/meeting.mp3.transcript.txt") == "review of Y\n"

    s3.put_object(Bucket=bucket, Key="calls/meeting.mp3", Body=x_body)  # reverted to X
    events = _once(stack, config)
    (restored,) = [e for e in events if e["event"] == "audio.restored"]
    assert (restored["key"], restored["etag"]) == ("calls/meeting.mp3", x_etag)
    assert _text(s3, bucket, "calls/meeting.mp3.transcript.txt") == "review of calls/meeting.mp3\n"
    head = s3.head_object(Bucket=bucket, Key="calls/meeting.mp3.transcript.json")
    assert head["Metadata"]["syncd-source-etag"] == x_etag
    assert len(project_tasks(ls, "faults versions")) == 3, "X kept its one task"
    status = json.loads(run_syncd(["status", "--json", "-c", str(config)], stack).stdout)
    assert status["recordings"]["superseded"] == 1 and status["recordings"]["exported"] == 2

    # Y's review edited now: Y is not the audio in S3, so nothing of it is written.
    ls.annotations.create(id=y_task["id"], result=_whole("late review of Y"), was_cancelled=False)
    events = _once(stack, config)
    assert _text(s3, bucket, "calls/meeting.mp3.transcript.txt") == "review of calls/meeting.mp3\n"
    assert [e["task"] for e in events if e["event"] == "annotation.stale_audio"] == [y_task["id"]]


# --- 7. a store that ignores conditional writes ----------------------------------------------------------------------

_LEGACY_S3 = """
import sys
from moto.s3.responses import S3Response
from moto.server import main

put = S3Response.put_object

def put_without_conditions(self):
    self.headers = {k: v for k, v in self.headers.items() if k.lower() not in ("if-match", "if-none-match")}
    return put(self)

S3Response.put_object = put_without_conditions
main(["-H", "127.0.0.1", "-p", sys.argv[1]])
"""


@pytest.fixture
def legacy_s3(tmp_path: Path) -> Iterator[str]:
    """moto's S3 taught to ignore If-Match / If-None-Match, as S3 did before late 2024 and older MinIO still do."""
    port = free_port()
    log = tmp_path / "legacy-s3.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", _LEGACY_S3, str(port)], stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/moto-api/", proc, log, 60)  # type: ignore[arg-type]
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_store_without_conditional_writes_is_refused_unless_single_writer(
    stack: Stack, legacy_s3: str, tmp_path: Path
) -> None:
    env = stack.env()
    client = boto3.client(
        "s3",
        endpoint_url=legacy_s3,
        region_name="us-east-1",
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    client.create_bucket(Bucket="legacy-audio")
    config = tmp_path / "legacy.toml"
    text = stack.config(tmp_path, "legacy-audio", project="faults legacy").replace(stack.s3.url, legacy_s3)
    config.write_text(text)

    once = run_syncd(["once", "-c", str(config)], stack, check=False)
    assert once.returncode == errors.CONFIG
    (refused,) = [e for e in log_events(once.stdout) if e["event"] == "once.connect_failed"]
    assert "does not enforce conditional writes" in refused["reason"] and "single-writer" in refused["reason"]
    check = run_syncd(["check", "-c", str(config)], stack, check=False)
    assert check.returncode == errors.CHECK_FAILED
    assert any(line.startswith("FAIL s3.conditional_writes") for line in check.stdout.splitlines())
    assert not client.list_objects_v2(Bucket="legacy-audio").get("Contents"), "the probe object is removed"
    assert "faults legacy" not in {p["title"] for p in _projects(stack)}, "refused before creating anything"

    config.write_text(text + '\n[output]\nconditional_writes = "single-writer"\n')
    check = run_syncd(["check", "-c", str(config)], stack, check=False)
    assert any(
        line.startswith("ok   s3.conditional_writes") and "single-writer" in line for line in check.stdout.splitlines()
    ), check.stdout
    assert run_syncd(["once", "-c", str(config)], stack, check=False).returncode == errors.OK


def _projects(stack: Stack) -> list[dict[str, Any]]:
    response = stack.labelstudio.api("GET", "/api/projects/", params={"page_size": 1000})
    body = response.json()
    return list(body["results"] if isinstance(body, dict) else body)
