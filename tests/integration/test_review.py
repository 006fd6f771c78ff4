"""The review loop against the real Label Studio and S3: a reviewer works through the API, syncd writes the outputs.

Transcripts come from Amazon Transcribe on moto (real-shaped output with two speakers), so every recording has several
segments; everything else is real: Label Studio 1.23.2, SeaweedFS, the `syncd` CLI as a subprocess.
"""

from __future__ import annotations

import copy
import io
import json
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import srt
import webvtt

from devstack import (
    Stack,
    aws_config,
    log_events,
    project_tasks,
    run_syncd,
    run_until_imported,
    upload_with_results,
)
from syncd.config import S3Settings
from syncd.domain.formats import word_error_rate
from syncd.domain.recording import Recording
from syncd.labelstudio import layouts
from syncd.s3.outputs import put_if_newer
from syncd.s3.storage import Storage
from syncd.state import StateStore

ZOE = "calls/Zoë interview 1.mp3"
SKIPPED = "calls/skipped call.mp3"
FORMATS = ("txt", "json", "srt", "vtt")


def _config(stack: Stack, tmp_path: Path, bucket: str, title: str, layout: str = "segments") -> Path:
    return aws_config(stack, tmp_path, bucket, title, layout=layout)


def _outputs(s3: Any, bucket: str, key: str) -> dict[str, str]:
    """Every output next to ``key`` that exists, by format."""
    stem = key.rsplit(".", 1)[0]
    found = {}
    for fmt in FORMATS:
        try:
            found[fmt] = s3.get_object(Bucket=bucket, Key=f"{stem}.transcript.{fmt}")["Body"].read().decode()
        except s3.exceptions.NoSuchKey:
            continue
    return found


def _once(stack: Stack, config: Path) -> list[dict[str, Any]]:
    return log_events(run_syncd(["once", "-c", str(config)], stack).stdout)


def _recordings(tmp_path: Path) -> dict[str, Recording]:
    return {r.key: r for r in StateStore(str(tmp_path / "state.db")).recordings.all()}


def _vtt(seconds: float) -> str:
    whole, millis = divmod(round(seconds * 1000), 1000)
    return f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}.{millis:03d}"


def _region(rid: str, start: float, end: float, speaker: str, text: str) -> list[dict[str, Any]]:
    """A region as Label Studio's editor saves it: a speaker label and a per-region text sharing one id."""
    span = {"start": start, "end": end, "channel": 0}
    common = {"id": rid, "to_name": layouts.AUDIO, "origin": "manual"}
    return [
        {**common, "from_name": layouts.SPEAKER, "type": "labels", "value": {**span, "labels": [speaker]}},
        {**common, "from_name": layouts.TEXT, "type": "textarea", "value": {**span, "text": [text]}},
    ]


def _set(result: list[dict[str, Any]], rid: str, name: str, field: str, value: Any) -> list[dict[str, Any]]:
    result = copy.deepcopy(result)
    for item in result:
        if item["id"] == rid and item["from_name"] == name:
            item["value"][field] = value
    return result


def test_segments_review_loop(stack: Stack, s3: Any, ls: Any, bucket: str, tmp_path: Path) -> None:
    upload_with_results(s3, bucket, {ZOE: "two_speakers.json", SKIPPED: "single_speaker.json"})
    config = _config(stack, tmp_path, bucket, "review segments")
    config.write_text(config.read_text() + "\n[review]\nflag_words_below = 0.5\n")  # the fixture's doubtful word: 0.4x
    run_until_imported(stack, config, expected=2)
    recs = _recordings(tmp_path)
    asr = recs[ZOE].transcript
    assert asr is not None and len(asr.segments) == 4
    tasks = {t["data"]["source"]: t for t in project_tasks(ls, "review segments")}
    task, skipped = tasks[f"s3://{bucket}/{ZOE}"], tasks[f"s3://{bucket}/{SKIPPED}"]

    # The imported prediction reads back from Label Studio exactly as we built it: regions, speakers, text, scores.
    (prediction,) = task["predictions"]
    assert prediction["result"] == layouts.prediction_result(asr, "segments")

    # A word below review.flag_words_below (0.5 here) is a read-only hint region over exactly its time.
    quiet = recs[SKIPPED].transcript
    assert quiet is not None
    (word,) = [w for w in quiet.words if w.confidence is not None and w.confidence < 0.5]
    (hint,) = [i for i in skipped["predictions"][0]["result"] if i["from_name"] == layouts.WORD]
    assert (hint["value"]["start"], hint["value"]["end"], hint["readonly"]) == (word.start, word.end, True)
    assert hint["value"]["labels"] == [layouts.WORD_LABEL] and skipped["data"]["flagged_words"] == 1
    assert task["data"]["flagged_words"] == 0

    # A draft is not a submission: nothing is written for it.
    predicted = prediction["result"]
    draft = _set(predicted, "seg0000", layouts.TEXT, "text", ["draft text"])
    stack.labelstudio.api("POST", f"/api/tasks/{task['id']}/drafts", json={"result": draft, "lead_time": 1.0})
    _once(stack, config)
    assert _outputs(s3, bucket, ZOE) == {}

    # The reviewer fixes one region's text, deletes a region, relabels a speaker, adds a region, and submits.
    # The other task is skipped.
    s0, _, s2, s3_ = asr.segments
    fixed = "Hello, world, this is Zoë."
    result = _set(predicted, "seg0000", layouts.TEXT, "text", [fixed])
    result = [i for i in result if i["id"] != "seg0001"]
    result = _set(result, "seg0002", layouts.SPEAKER, "labels", ["Speaker 3"])
    result += _region("added01", 8.0, 9.25, "Speaker 2", "Thanks, bye.")
    first = ls.annotations.create(id=task["id"], result=result, was_cancelled=False)
    ls.annotations.create(id=skipped["id"], result=[], was_cancelled=True)
    events = _once(stack, config)

    expected = [
        (s0.start, s0.end, "Speaker 1", fixed, s0.text, s0.confidence),
        (s2.start, s2.end, "Speaker 3", s2.text, s2.text, s2.confidence),
        (s3_.start, s3_.end, "Speaker 1", s3_.text, s3_.text, s3_.confidence),
        (8.0, 9.25, "Speaker 2", "Thanks, bye.", None, None),
    ]
    lines = [f"{speaker}: {text}" for _, _, speaker, text, _, _ in expected]
    out = _outputs(s3, bucket, ZOE)
    assert sorted(out) == sorted(FORMATS)
    assert out["txt"] == "".join(f"{line}\n" for line in lines)
    cues = [(c.start, c.end, c.content) for c in srt.parse(out["srt"])]
    assert cues == [
        (timedelta(seconds=e[0]), timedelta(seconds=e[1]), line) for e, line in zip(expected, lines, strict=True)
    ]
    captions = webvtt.from_buffer(io.StringIO(out["vtt"])).captions
    assert [(c.start, c.end, c.text) for c in captions] == [
        (_vtt(e[0]), _vtt(e[1]), line) for e, line in zip(expected, lines, strict=True)
    ]
    doc = json.loads(out["json"])
    assert doc["source"] == {"bucket": bucket, "key": ZOE, "etag": recs[ZOE].etag}
    assert doc["asr"]["engine"] == "aws" and doc["asr"]["job"] == asr.job and doc["asr"]["text"] == asr.text
    assert doc["asr"]["confidence"] == asr.confidence
    review = doc["review"]
    assert (review["project"], review["task"], review["annotation"]) == (task["project"], task["id"], first.id)
    assert review["annotator"] == stack.labelstudio.user and review["layout"] == "segments"
    assert review["submitted_at"] and review["updated_at"] >= review["submitted_at"]
    assert doc["text"] == " ".join(e[3] for e in expected)
    assert doc["word_error_rate"] == word_error_rate(doc["text"], asr.text) and doc["word_error_rate"] > 0
    fields = ("start", "end", "speaker", "text", "asr_text", "confidence")
    assert doc["segments"] == [dict(zip(fields, e, strict=True)) for e in expected]
    head = s3.head_object(Bucket=bucket, Key="calls/Zoë interview 1.transcript.json")
    assert head["Metadata"]["syncd-annotation"] == str(first.id)
    assert _outputs(s3, bucket, SKIPPED) == {}, "a skipped task writes nothing"
    assert any(e["event"] == "annotation.skipped" and e["task"] == skipped["id"] for e in events)
    (exported,) = [e for e in events if e["event"] == "annotation.exported"]
    assert exported["annotator"] == stack.labelstudio.user and exported["re_export"] is False

    # Re-edit: the same annotation, changed, re-writes every output.
    edited = _set(result, "seg0000", layouts.TEXT, "text", ["Hello world, how can I help you today?"])
    ls.annotations.update(first.id, result=edited)
    events = _once(stack, config)
    out = _outputs(s3, bucket, ZOE)
    assert out["txt"].startswith("Speaker 1: Hello world, how can I help you today?\n")
    assert all("Hello world, how can" in out[fmt] for fmt in FORMATS)
    assert [e["re_export"] for e in events if e["event"] == "annotation.exported"] == [True]

    # A second reviewer's annotation, newer, wins.
    second_result = _set(edited, "seg0003", layouts.TEXT, "text", ["Okay, let me check that for you."])
    second = ls.annotations.create(id=task["id"], result=second_result, was_cancelled=False)
    _once(stack, config)
    out = _outputs(s3, bucket, ZOE)
    assert "Speaker 1: Okay, let me check that for you.\n" in out["txt"]
    assert json.loads(out["json"])["review"]["annotation"] == second.id

    # Deleting that annotation logs it and keeps the transcript: the older one never overwrites the newer outputs.
    ls.annotations.delete(second.id)
    events = _once(stack, config)
    assert _outputs(s3, bucket, ZOE) == out
    (deleted,) = [e for e in events if e["event"] == "annotation.deleted"]
    assert (deleted["annotation"], deleted["key"], deleted["kept"]) == (second.id, ZOE, True)

    # Deleting the task logs it and keeps the transcript; then an idle cycle writes nothing.
    ls.tasks.delete(str(task["id"]))
    events = _once(stack, config)
    (gone,) = [e for e in events if e["event"] == "task.deleted"]
    assert (gone["task"], gone["key"], gone["kept"]) == (task["id"], ZOE, True)
    assert _outputs(s3, bucket, ZOE) == out
    before = {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    (cycle,) = [e for e in _once(stack, config) if e["event"] == "cycle.completed"]
    assert cycle["counts"]["export"] == 0
    assert {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]} == before


def test_whole_layout_review(stack: Stack, s3: Any, ls: Any, bucket: str, tmp_path: Path) -> None:
    upload_with_results(s3, bucket, {ZOE: "two_speakers.json"})
    config = _config(stack, tmp_path, bucket, "review whole", layout="whole")
    run_until_imported(stack, config, expected=1)
    asr = _recordings(tmp_path)[ZOE].transcript
    assert asr is not None
    (task,) = project_tasks(ls, "review whole")
    (prediction,) = task["predictions"]
    assert prediction["result"] == layouts.prediction_result(asr, "whole")
    (item,) = prediction["result"]
    assert item["value"]["text"] == ["\n".join(s.text for s in asr.segments)]

    lines = [s.text for s in asr.segments]
    lines[2] = "Hi, my Wi-Fi router stopped working."
    result = copy.deepcopy(prediction["result"])
    result[0]["value"]["text"] = ["\n".join(lines)]
    ls.annotations.create(id=task["id"], result=result, was_cancelled=False)
    _once(stack, config)

    out = _outputs(s3, bucket, ZOE)
    assert out["txt"] == "".join(f"{line}\n" for line in lines), "whole layout: plain lines, no speakers"
    cues = list(srt.parse(out["srt"]))
    assert [(c.start.total_seconds(), c.content) for c in cues] == [
        (s.start, t) for s, t in zip(asr.segments, lines, strict=True)
    ]
    assert [c.text for c in webvtt.from_buffer(io.StringIO(out["vtt"])).captions] == lines
    doc = json.loads(out["json"])
    assert doc["review"]["layout"] == "whole" and doc["text"] == " ".join(lines)
    assert [s["asr_text"] for s in doc["segments"]] == [s.text for s in asr.segments]


def test_older_review_never_overwrites_a_newer_one(
    stack: Stack, s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two daemons racing: each output is a compare-and-swap on the version in its metadata (If-None-Match /
    If-Match, both enforced by the real S3 here)."""
    for name, value in stack.env().items():
        monkeypatch.setenv(name, value)
    storage = Storage(S3Settings(endpoint_url=stack.s3.url))
    key = "calls/race.transcript.txt"
    newer, older = ("2026-01-02T00:00:02.000000Z", 8), ("2026-01-02T00:00:01.000000Z", 9)

    def meta(version: tuple[str, int]) -> dict[str, str]:
        return {"syncd-updated-at": version[0], "syncd-annotation": str(version[1])}

    def put(body: bytes, version: tuple[str, int], *, fresh: bool) -> str:
        return put_if_newer(storage, bucket, key, body, "txt", meta(version), version, fresh=fresh)

    assert put(b"newer", newer, fresh=True) == "written"
    assert put(b"older", older, fresh=True) == "newer"
    assert put(b"older", older, fresh=False) == "newer"
    assert put(b"newer", newer, fresh=True) == "current"
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"newer"

    # The other daemon writes the newest version between our read of the object and our put: our put fails its
    # If-Match, we read again, see the newer version and leave it.
    newest = ("2026-01-02T00:00:03.000000Z", 10)
    latest = ("2026-01-02T00:00:04.000000Z", 11)
    write = storage.write
    raced: list[str] = []

    def racing_write(*args: Any, **kwargs: Any) -> str:
        if not raced:
            raced.append(s3.put_object(Bucket=bucket, Key=key, Body=b"latest", Metadata=meta(latest))["ETag"])
        return write(*args, **kwargs)

    storage.write = racing_write  # type: ignore[method-assign]
    assert put(b"newest", newest, fresh=False) == "newer"
    assert raced and s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"latest"
    storage.write = write  # type: ignore[method-assign]
    even_newer = ("2026-01-02T00:00:05.000000Z", 12)
    assert put(b"even newer", even_newer, fresh=False) == "written"
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"even newer"


LONG_AGO = "2000-01-01 00:00:00.000000"
"""An ``updated_at`` far behind the export cursor and its overlap window."""


def test_a_review_label_studio_saved_but_never_counted_is_found_by_the_sweep(
    stack: Stack, s3: Any, ls: Any, bucket: str, tmp_path: Path
) -> None:
    """Label Studio saves an annotation first, then stamps its task (``updated_at``) and counts it
    (``total_annotations``, ``is_labeled``) in a second write. The soak test caught a Label Studio stopped between the
    two: the review was in Label Studio's database, but neither the changed-task cursor nor a sweep over counted tasks
    saw it. Here the second write is undone in Label Studio's own database; the next sweep must still export it."""
    upload_with_results(s3, bucket, {ZOE: "two_speakers.json"})
    config = _config(stack, tmp_path, bucket, "review never counted")
    run_until_imported(stack, config, expected=1)
    _once(stack, config)  # the project's first export run reads every task and sets the cursor
    (task,) = project_tasks(ls, "review never counted")
    result = _set(task["predictions"][0]["result"], "seg0000", layouts.TEXT, "text", ["Counted by no one."])
    annotation = ls.annotations.create(id=task["id"], result=result, was_cancelled=False)

    with sqlite3.connect(stack.labelstudio.workdir / "data" / "label_studio.sqlite3", timeout=30) as db:
        db.execute(
            "UPDATE task SET total_annotations = 0, is_labeled = 0, updated_at = ? WHERE id = ?", (LONG_AGO, task["id"])
        )
    (stale,) = project_tasks(ls, "review never counted")
    assert stale["total_annotations"] == 0 and stale["annotations"]  # counted by no one, yet there

    config.write_text(config.read_text() + "\n[schedule]\nexport_sweep_interval = 0.001\n")
    events = _once(stack, config)
    assert "Counted by no one." in _outputs(s3, bucket, ZOE)["txt"]
    (exported,) = [e for e in events if e["event"] == "annotation.exported"]
    assert exported["annotation"] == annotation.id
