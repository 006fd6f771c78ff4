"""Splitting long recordings into review units: units imported as tasks with their clips; a recording that cannot be cut
reviewed whole; corrupt audio failed with its reason."""

from __future__ import annotations

import json
from pathlib import Path

from structlog.testing import capture_logs

from syncd.domain import units
from syncd.domain.recording import S3Object, Status
from syncd.domain.transcript import Segment, Transcript
from syncd.stages import export, export_stitch, import_, import_split, scan
from tests.unit.fakes import GO, services
from tests.unit.scenarios import KEY, SECONDS, SplitUp, review_all, stem_outputs, tone_wav, transcript


def test_units_are_tasks_with_clips_and_the_recording_is_written_once_all_are_reviewed(split_up: SplitUp) -> None:
    svc, ls, storage, parent = split_up
    assert parent.status == Status.SPLIT
    keys = sorted(t["data"]["key"] for t in ls.tasks.values())
    assert keys == [
        f"{KEY} (part {n} of 3, {span})" for n, span in ((1, "0:00-0:29"), (2, "0:29-0:59"), (3, "0:59-1:30"))
    ]
    clips = [k for k in storage.keys("b") if k.startswith("syncd/units/")]
    assert len(clips) == 3 and all(k.startswith(f"syncd/units/{parent.syncd_id}/") for k in clips)
    assert scan.run(svc, GO) == 0, "clips are never taken for new audio"

    review_all(svc, ls, but=1)
    with capture_logs() as logs:
        assert export.reviews(svc, GO) == 0 and export_stitch.run(svc, GO) == 0
    assert [e["event"] for e in logs].count("unit.reviewed") == 2
    assert stem_outputs(storage) == [], "nothing partial beside the audio"

    review_all(svc, ls, text="late")  # unit 2 reviewed, and units 1 and 3 edited
    with capture_logs() as logs:
        export.reviews(svc, GO)
        assert export_stitch.run(svc, GO) == 1
    (stitched,) = [e for e in logs if e["event"] == "transcript.stitched"]
    assert stitched["units"] == 3
    doc = json.loads(storage.text("b", "calls/long.transcript.json"))
    asr = transcript()
    assert [(s["start"], s["end"]) for s in doc["segments"]] == [(s.start, s.end) for s in asr.segments]
    assert [s["text"] for s in doc["segments"]][:4] == ["late 0 0", "late 0 1", "late 0 2", "late 1 0"]
    assert [u["start"] for u in doc["review"]["units"]] == [0.0, 29.0, 59.0]
    assert svc.state.recordings.get(parent.id).status == Status.EXPORTED
    assert export_stitch.run(svc, GO) == 0, "written once per change"


def test_a_recording_with_no_pause_to_cut_at_is_reviewed_whole(tmp_path: Path) -> None:
    svc, ls, storage, _ = services(tmp_path, review={"max_task_minutes": 0.5})
    storage.put_audio("b", KEY, tone_wav(SECONDS))
    scan.run(svc, GO)
    (rec,) = svc.state.recordings.all()
    one = Transcript(segments=(Segment(0.0, 80.0, "one long turn"),), engine="fake", model="fake-1", duration=80.0)
    svc.state.recordings.move(rec.id, Status.DISCOVERED, Status.TRANSCRIBING)
    svc.state.recordings.move(rec.id, Status.TRANSCRIBING, Status.TRANSCRIBED, transcript=one, duration=80.0)
    with capture_logs() as logs:
        assert import_.run(svc, GO) == 1
    assert "recording.not_split" in [e["event"] for e in logs]
    assert [t["data"]["key"] for t in ls.tasks.values()] == [KEY]


def test_corrupt_audio_fails_the_split_with_its_reason(tmp_path: Path) -> None:
    svc, _, storage, _ = services(tmp_path, review={"max_task_minutes": 0.5})
    storage.put_audio("b", KEY, b"not audio at all" * 100)
    scan.run(svc, GO)
    (rec,) = svc.state.recordings.all()
    svc.state.recordings.move(rec.id, Status.DISCOVERED, Status.TRANSCRIBING)
    svc.state.recordings.move(rec.id, Status.TRANSCRIBING, Status.TRANSCRIBED, transcript=transcript(), duration=87.0)
    assert import_.run(svc, GO) == 0
    failed = svc.state.recordings.get(rec.id)
    assert (
        failed.status == Status.FAILED and failed.reason and failed.reason.startswith("cannot split into review units")
    )
    assert not [k for k in storage.keys("b") if k.startswith("syncd/units/")]


def test_a_clip_is_named_by_its_recordings_version_and_its_span(tmp_path: Path) -> None:
    svc, *_ = services(tmp_path)
    [(rec_id, _)] = svc.state.recordings.add_objects([S3Object("b", "calls/long.wav", "e1", 5)])
    parent = svc.state.recordings.get(rec_id)
    unit = units.Unit(index=1, count=3, start=900.25, end=1800.5, segments=())
    key = import_split.clip_key("syncd/units/", parent, unit)
    assert key == f"syncd/units/{parent.syncd_id}/000900250-001800500.flac"
