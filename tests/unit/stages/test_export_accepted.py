"""Auto-accepted transcripts are written beside the audio without a task; the audit sample is reviewed; writes retry."""

from __future__ import annotations

import json
from pathlib import Path

from structlog.testing import capture_logs

from syncd.daemon.metrics import Metrics
from syncd.domain.recording import Status
from syncd.pipeline import run_cycle
from syncd.stages import export_accepted
from tests.unit.fakes import GO, services
from tests.unit.scenarios import transcribed_with


def test_confident_recordings_are_written_without_a_task_and_the_audit_sample_is_reviewed(tmp_path: Path) -> None:
    svc, ls, storage, engine = services(tmp_path, review={"auto_accept_above": 0.8, "audit_rate": 0.3})
    keys = {f"calls/r{i:02d}.mp3": 0.9 for i in range(30)} | {f"calls/low{i}.mp3": 0.5 for i in range(5)}
    transcribed_with(svc, storage, engine, keys)
    recs = {r.key: r for r in svc.state.recordings.all()}
    modes = {key: rec.review_mode for key, rec in recs.items()}
    assert all(modes[k] == "review" for k in keys if "low" in k)
    auto = [k for k in keys if modes[k] == "auto"]
    audits = [k for k in keys if modes[k] == "audit"]
    assert auto and audits and len(auto) + len(audits) == 30
    assert all(recs[k].status == Status.ACCEPTED for k in auto)

    metrics = Metrics()
    with capture_logs() as logs:
        run_cycle(svc)
    for event in logs:
        metrics.observe(event["log_level"], event["event"], event)
    tasked = {t["data"]["key"] for t in ls.tasks.values()}
    assert tasked == set(audits) | {k for k in keys if "low" in k}, "audits and low confidence go to review"
    for key in auto:
        doc = json.loads(storage.text("b", key.replace(".mp3", ".transcript.json")))
        assert doc["review"]["status"] == "auto-accepted" and doc["review"]["annotator"] is None
        assert doc["review"]["task"] is None and doc["word_error_rate"] is None
        assert storage.text("b", key.replace(".mp3", ".transcript.txt")) == "hello world\n"
    assert {r.status for r in svc.state.recordings.all() if r.key in auto} == {Status.EXPORTED}
    assert not any(storage.objects.get(("b", k.replace(".mp3", ".transcript.json"))) for k in audits)
    assert metrics.registry.get_sample_value("syncd_auto_accepted_total") == len(auto)

    # A later review of an audited recording is exported as any review is.
    audited_task = next(t for t in ls.tasks.values() if t["data"]["key"] == audits[0])
    ls.annotate(audited_task["id"], "hello word")
    with capture_logs() as logs:
        run_cycle(svc)
    [exported] = [e for e in logs if e["event"] == "annotation.exported"]
    assert exported["review"] == "audit" and exported["word_error_rate"] == 0.5
    metrics.observe("info", "annotation.exported", exported)
    assert metrics.registry.get_sample_value("syncd_audit_word_error_rate_sum") == 0.5


def test_a_write_that_fails_is_retried_and_nothing_is_lost(tmp_path: Path) -> None:
    svc, _, storage, engine = services(tmp_path, review={"auto_accept_above": 0.8, "audit_rate": 0.0})
    transcribed_with(svc, storage, engine, {"a.mp3": 0.95})
    real_write = storage.write
    storage.write = lambda *a, **k: (_ for _ in ()).throw(OSError("disk full"))  # type: ignore[method-assign]
    with capture_logs() as logs:
        run_cycle(svc)
    assert [e["event"] for e in logs].count("auto_accept.failed") == 1
    [rec] = svc.state.recordings.all()
    assert rec.status == Status.ACCEPTED and rec.reason and "disk full" in rec.reason
    storage.write = real_write  # type: ignore[method-assign]
    svc.state.recordings.update(rec.id, next_attempt_at=0)
    run_cycle(svc)
    assert svc.state.recordings.get(rec.id).status == Status.EXPORTED and "a.transcript.json" in storage.keys("b")


def test_with_auto_accept_off_nothing_is_accepted(tmp_path: Path) -> None:
    svc, _, storage, engine = services(tmp_path)
    transcribed_with(svc, storage, engine, {"a.mp3": 0.99})
    assert export_accepted.run(svc, GO) == 0
    assert [r.status for r in svc.state.recordings.all()] == [Status.TRANSCRIBED]
