"""End to end with faster-whisper: spoken audio in SeaweedFS -> Label Studio task -> reviewer's fix -> S3 outputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests

from devstack import SENTENCES, Stack, log_events, run_syncd, speak
from syncd.domain.formats import word_error_rate
from syncd.labelstudio import as_dict
from syncd.state import StateStore

AUDIO = {
    "calls/2026/a.mp3": SENTENCES[0],
    "calls/2026/b.wav": SENTENCES[1],
    "calls/c.flac": SENTENCES[2],
    "calls/d.ogg": SENTENCES[3],
}
CORRECTED = "Please send the invoice to the Accounting Department by Friday the 13th."


def _project(ls: Any, title: str) -> int:
    return next(int(p.id) for p in ls.projects.list() if p.title == title)


def _tasks(ls: Any, project: int) -> list[dict[str, Any]]:
    return [as_dict(t) for t in ls.tasks.list(project=project, fields="all", resolve_uri=False)]


def _objects(s3: Any, bucket: str) -> dict[str, tuple[str, Any]]:
    listing = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: (o["ETag"], o["LastModified"]) for o in listing}


def _upload(s3: Any, bucket: str, tmp_path: Path) -> None:
    for key, sentence in AUDIO.items():
        s3.upload_file(str(speak(sentence, tmp_path / "audio" / key)), bucket, key)
    s3.put_object(Bucket=bucket, Key="calls/empty.mp3", Body=b"")
    s3.put_object(Bucket=bucket, Key="calls/corrupt.mp3", Body=b"ID3 this is not an mp3 frame at all" * 50)
    s3.put_object(Bucket=bucket, Key="calls/notes.txt", Body=b"not audio")
    s3.put_object(Bucket=bucket, Key="calls/old.transcript.json", Body=b"{}")


def _review(task: dict[str, Any], text: str) -> list[dict[str, Any]]:
    """A reviewer's result: the prediction with every region's text replaced by one corrected sentence."""
    result = json.loads(json.dumps(task["predictions"][0]["result"]))
    first = True
    for item in result:
        if item["from_name"] == "transcription":
            item["value"]["text"] = [text if first else ""]
            first = False
    return [i for i in result if i["from_name"] != "transcription" or i["value"]["text"] != [""]]


def test_round_trip(stack: Stack, s3: Any, ls: Any, bucket: str, config_file: Path, tmp_path: Path) -> None:
    _upload(s3, bucket, tmp_path)
    title = "syncd e2e whisper"
    config_file.write_text(config_file.read_text().replace('project = "', f'project = "{title}" #'))
    audio_before = {k: v for k, v in _objects(s3, bucket).items() if k in AUDIO}

    first = run_syncd(["once", "-c", str(config_file)], stack)

    # One task per recording, audio as s3:// URI, one prediction scored by mean word confidence.
    project = _project(ls, title)
    tasks = {t["data"]["audio"]: t for t in _tasks(ls, project)}
    assert sorted(tasks) == sorted(f"s3://{bucket}/{k}" for k in AUDIO)
    state = StateStore(str(tmp_path / "state.db"))
    for key, sentence in AUDIO.items():
        task = tasks[f"s3://{bucket}/{key}"]
        (prediction,) = task["predictions"]
        rec = state.recordings.by_syncd_id(task["data"]["syncd_id"])
        assert rec is not None and rec.transcript is not None and rec.task_id == task["id"]
        words = rec.transcript.words
        assert words
        assert prediction["score"] == pytest.approx(sum(w.confidence for w in words) / len(words), abs=1e-4)
        assert prediction["model_version"] == "whisper-tiny.en-int8"
        heard = " ".join(i["value"]["text"][0] for i in prediction["result"] if i["from_name"] == "transcription")
        wer = word_error_rate(sentence, heard)
        assert wer is not None and wer <= 0.35, (key, heard, wer)

    # Bad input is recorded with a reason and did not stop the batch; outputs and non-audio were never picked up.
    by_key = {r.key: r for r in state.recordings.all()}
    assert by_key["calls/empty.mp3"].status == "skipped" and "empty" in (by_key["calls/empty.mp3"].reason or "")
    assert by_key["calls/corrupt.mp3"].status == "failed" and by_key["calls/corrupt.mp3"].reason
    assert "calls/notes.txt" not in by_key and "calls/old.transcript.json" not in by_key
    events = {e["event"] for e in log_events(first.stdout)}
    assert {"audio.discovered", "transcription.completed", "task.imported", "cycle.completed"} <= events

    # Label Studio plays the audio: its resolve URL serves the object's bytes through the registered storage.
    some_key = "calls/2026/a.mp3"
    resolved = next(
        as_dict(t)["data"]["audio"]
        for t in ls.tasks.list(project=project, fields="all")
        if as_dict(t)["id"] == tasks[f"s3://{bucket}/{some_key}"]["id"]
    )
    assert "/resolve/" in resolved
    audio = requests.get(stack.labelstudio.url + resolved, headers=stack.labelstudio.auth_headers(), timeout=30)
    assert audio.status_code == 200
    assert audio.content == s3.get_object(Bucket=bucket, Key=some_key)["Body"].read()

    # A second run imports nothing twice.
    run_syncd(["once", "-c", str(config_file)], stack)
    assert len(_tasks(ls, project)) == len(AUDIO)

    # A reviewer corrects one recording and submits; the next run writes the outputs next to the audio.
    task = tasks[f"s3://{bucket}/{some_key}"]
    ls.annotations.create(id=task["id"], result=_review(task, CORRECTED), was_cancelled=False)
    run_syncd(["once", "-c", str(config_file)], stack)

    txt = s3.get_object(Bucket=bucket, Key="calls/2026/a.transcript.txt")["Body"].read().decode()
    assert txt == f"Speaker 1: {CORRECTED}\n"
    doc = json.loads(s3.get_object(Bucket=bucket, Key="calls/2026/a.transcript.json")["Body"].read())
    assert doc["text"] == CORRECTED
    assert doc["source"] == {"bucket": bucket, "key": some_key, "etag": audio_before[some_key][0].strip('"')}
    assert doc["review"]["task"] == task["id"]
    assert 0 < doc["word_error_rate"] < 1
    for fmt in ("srt", "vtt"):
        assert CORRECTED in s3.get_object(Bucket=bucket, Key=f"calls/2026/a.transcript.{fmt}")["Body"].read().decode()
    after = _objects(s3, bucket)
    assert {k: after[k] for k in AUDIO} == audio_before, "audio objects must never be modified"

    # A third run changes nothing: no new objects, no rewritten outputs, no new tasks.
    third = run_syncd(["once", "-c", str(config_file)], stack)
    assert _objects(s3, bucket) == after
    assert len(_tasks(ls, project)) == len(AUDIO)
    (cycle,) = [e for e in log_events(third.stdout) if e["event"] == "cycle.completed"]
    assert cycle["counts"] == {"scan": 0, "transcribe": 0, "import": 0, "export": 0}
