"""Export planning: what a task's reviews call for, and the output names (two audio keys sharing a stem never share
outputs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from syncd.labelstudio import layouts
from syncd.pipeline import run_cycle
from syncd.stages import export
from tests.unit.fakes import GO, services


def _region(rid: str, start: float, end: float | None, text: str) -> dict[str, Any]:
    value: dict[str, Any] = {"start": start, "text": [text]}
    if end is not None:
        value["end"] = end
    return {"id": rid, "from_name": layouts.TEXT, "type": "textarea", "value": value}


def test_a_region_without_end_ends_with_its_asr_segment(tmp_path: Path) -> None:
    svc, ls, storage, _ = services(tmp_path, labelstudio={"layout": "segments"})
    storage.put_audio("b", "a.mp3")
    run_cycle(svc)
    ls.annotate(1, "", result=[_region("seg0000", 0.0, None, "kept"), _region("new", 5.0, None, "point")])
    assert export.reviews(svc, GO) == 1
    segments = json.loads(storage.text("b", "a.transcript.json"))["segments"]
    assert [(s["start"], s["end"], s["text"]) for s in segments] == [(0.0, 0.9, "kept"), (5.0, 5.0, "point")]


def test_audio_keys_sharing_a_stem_get_their_own_outputs(tmp_path: Path) -> None:
    svc, ls, storage, _ = services(tmp_path)
    for key in ("calls/meeting.wav", "calls/meeting.mp3", "calls/solo.mp3", "calls/meeting.notes.mp3"):
        storage.put_audio("b", key, key.encode())
    run_cycle(svc)
    by_key = {t["data"]["source"].removeprefix("s3://b/"): i for i, t in ls.tasks.items()}
    for key, task_id in by_key.items():
        ls.annotate(task_id, f"review of {key}")
    assert export.reviews(svc, GO) == 4
    assert storage.text("b", "calls/meeting.wav.transcript.txt") == "review of calls/meeting.wav\n"
    assert storage.text("b", "calls/meeting.mp3.transcript.txt") == "review of calls/meeting.mp3\n"
    assert storage.text("b", "calls/solo.transcript.txt") == "review of calls/solo.mp3\n"
    assert storage.text("b", "calls/meeting.notes.transcript.txt") == "review of calls/meeting.notes.mp3\n"
    assert not [k for k in storage.keys("b") if k.startswith("calls/meeting.transcript.")]


def test_naming_key_always_keeps_the_audio_suffix(tmp_path: Path) -> None:
    svc, ls, storage, _ = services(tmp_path, output={"naming": "key"})
    storage.put_audio("b", "a.mp3")
    run_cycle(svc)
    ls.annotate(1, "hi")
    export.reviews(svc, GO)
    assert storage.text("b", "a.mp3.transcript.txt") == "hi\n"
