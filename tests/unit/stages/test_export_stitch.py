"""Stitching: a split recording is written once all its units are reviewed, after a crash too, and never beside audio
replaced meanwhile."""

from __future__ import annotations

from pathlib import Path

from structlog.testing import capture_logs

from syncd.domain.recording import Status
from syncd.pipeline import run_cycle
from syncd.stages import export, export_stitch, scan
from tests.unit.fakes import GO, services
from tests.unit.scenarios import KEY, SECONDS, SplitUp, review_all, stem_outputs, tone_wav


def test_a_crash_between_a_units_review_and_the_stitch_writes_it_next_run(split_up: SplitUp) -> None:
    svc, ls, storage, _ = split_up
    review_all(svc, ls)
    export.reviews(svc, GO)  # the process dies here, before the stitch
    assert stem_outputs(storage) == []
    assert export_stitch.run(svc, GO) == 1
    assert len(stem_outputs(storage)) == 4


def test_a_recording_replaced_before_its_last_unit_is_reviewed_gets_nothing_written(split_up: SplitUp) -> None:
    svc, ls, storage, parent = split_up
    storage.put_audio("b", KEY, tone_wav(SECONDS - 10))
    scan.run(svc, GO)
    review_all(svc, ls)
    with capture_logs() as logs:
        export.reviews(svc, GO)
        assert export_stitch.run(svc, GO) == 0
    assert stem_outputs(storage) == []
    assert svc.state.recordings.get(parent.id).status == Status.SUPERSEDED
    assert "units.waiting" in [e["event"] for e in logs]


def test_nothing_to_stitch_costs_one_read(tmp_path: Path) -> None:
    svc, _, storage, _ = services(tmp_path)
    storage.put_audio("b", "a.mp3")
    run_cycle(svc)
    assert export_stitch.run(svc, GO) == 0 and svc.state.recordings.stitch_due() == []
