"""Recording an export: a unit's review goes back to its recording's clock exactly."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from structlog.testing import capture_logs

from devstack.transcribe import recording_for
from syncd.domain import units
from syncd.domain.recording import Status
from syncd.pipeline import run_cycle
from syncd.s3.outputs import Written
from syncd.stages import export_plan, export_record
from syncd.stages.export_record import unit_review
from tests.unit.fakes import services
from tests.unit.scenarios import long


def test_a_unit_is_on_its_clip_clock_and_its_review_goes_back_exactly() -> None:
    transcript = long(40)
    unit = units.plan(transcript, 15 * 60)[1]
    on_clip = units.unit_transcript(transcript, unit, "calls/long.wav")
    assert on_clip.duration == round(unit.end - unit.start, 3)
    assert on_clip.segments[0].start == round(unit.segments[0].start - unit.start, 3)
    assert on_clip.segments[0].words[0].start == on_clip.segments[0].start
    assert units.unit_of(on_clip) == {
        "of": "calls/long.wav",
        "index": 1,
        "count": 3,
        "start": unit.start,
        "end": unit.end,
        "label": unit.label,
    }
    rec = recording_for("calls", "syncd/units/x.flac", "e1")
    rec = type(rec)(**{**rec.__dict__, "unit_start": unit.start})
    back = json.loads(unit_review(list(on_clip.segments), rec))
    assert [(s["start"], s["end"]) for s in back] == [(s.start, s.end) for s in unit.segments]


def test_a_review_of_audio_replaced_since_records_nothing(tmp_path: Path) -> None:
    svc, ls, storage, _ = services(tmp_path)
    storage.put_audio("b", "a.mp3")
    run_cycle(svc)
    ls.annotate(1, "hello there")
    planned = export_plan.plan(svc, ls.task(1))
    assert planned is not None
    with capture_logs() as logs:
        export_record.record(svc, planned, Written([], [], [], 0.0, audio_etag="other"))
    assert [e["event"] for e in logs] == ["annotation.stale_audio"]
    [rec] = svc.state.recordings.all()
    assert rec.status == Status.IMPORTED and rec.annotation_id is None


def test_outputs_a_cut_off_holder_wrote_are_recorded_and_counted_once(tmp_path: Path) -> None:
    """A holder wrote a review's outputs and was cut off (killed, or frozen and fenced) before recording them: the next
    holder finds them current and logs the review's one ``annotation.exported``; a later look logs nothing more."""
    svc, ls, storage, _ = services(tmp_path)
    storage.put_audio("b", "a.mp3")
    run_cycle(svc)
    ls.annotate(1, "hello there")
    planned = export_plan.plan(svc, ls.task(1))
    assert planned is not None
    current = Written([], ["json", "txt"], [], 0.0)
    with capture_logs() as logs:
        export_record.record(svc, planned, current)
    assert [(e["event"], e.get("formats")) for e in logs] == [("annotation.exported", ["json", "txt"])]
    [rec] = svc.state.recordings.all()
    assert rec.status == Status.EXPORTED
    with capture_logs() as logs:
        export_record.record(svc, dataclasses.replace(planned, rec=rec), current)
    assert [e["event"] for e in logs] == ["annotation.already_exported"]
