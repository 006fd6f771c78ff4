"""Export planning: what a task's reviews call for, and the output names (two audio keys sharing a stem never share
outputs)."""

from __future__ import annotations

import json
from pathlib import Path

from syncd.pipeline import run_cycle
from syncd.stages import export, export_plan
from tests.unit.fakes import GO, services
from tests.unit.scenarios import region


def test_a_region_without_end_ends_with_its_asr_segment(tmp_path: Path) -> None:
    svc, ls, storage, _ = services(tmp_path, labelstudio={"layout": "segments"})
    storage.put_audio("b", "a.mp3")
    run_cycle(svc)
    ls.annotate(1, "", result=[region("seg0000", 0.0, None, "kept"), region("new", 5.0, None, "point")])
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


def test_the_newest_submitted_annotation_wins_and_skipped_ones_never_count() -> None:
    task = {
        "annotations": [
            {"id": 1, "updated_at": "2026-01-01T00:00:02.000000Z", "result": []},
            {"id": 2, "updated_at": "2026-01-01T00:00:05.000000Z", "result": [], "was_cancelled": True},
            {"id": 3, "updated_at": "2026-01-01T00:00:02.000000Z", "result": []},
            {"id": 4, "updated_at": "2026-01-01T00:00:09.000000Z", "result": None},
        ]
    }
    newest = export_plan.newest_submitted(task)
    assert newest is not None and newest["id"] == 3, "same time: the higher id is newer"
    assert export_plan.version_of(newest) == (export_plan.moment("2026-01-01T00:00:02.000000Z"), 3)
    assert export_plan.newest_submitted({"annotations": task["annotations"][1:2]}) is None


def test_a_version_already_exported_plans_nothing(tmp_path: Path) -> None:
    svc, ls, storage, _ = services(tmp_path)
    storage.put_audio("b", "a.mp3")
    run_cycle(svc)
    ls.annotate(1, "hello there")
    planned = export_plan.plan(svc, ls.task(1))
    assert (
        planned is not None and planned.base == "a.transcript" and set(planned.bodies) == {"txt", "json", "srt", "vtt"}
    )
    assert export.reviews(svc, GO) == 1
    assert export_plan.plan(svc, ls.task(1)) is None
