"""Review triage in-process against the fakes: routing, the audit draw, auto-accepted outputs and `syncd report`."""

from __future__ import annotations

import json
import math
import re
import threading
from pathlib import Path

import jiwer
from structlog.testing import capture_logs

from syncd.config import ReviewSettings
from syncd.daemon.metrics import Metrics
from syncd.pipeline import run_cycle
from syncd.recording import Status, syncd_id
from syncd.report import build, format_report
from syncd.stages import scan, transcribe
from syncd.triage import Mode, audit_draw, route
from tests.unit.fakes import services

GO = threading.Event()


def test_routing_follows_the_threshold_and_the_draw_is_fixed_per_recording() -> None:
    off, on = ReviewSettings(), ReviewSettings(auto_accept_above=0.9, audit_rate=0.25)
    sid = syncd_id("b", "a.mp3", "e1")
    assert route(off, sid, 0.99) == Mode.REVIEW
    assert route(on, sid, 0.89) == Mode.REVIEW and route(on, sid, None) == Mode.REVIEW
    assert route(on, sid, 0.9) in (Mode.AUTO, Mode.AUDIT)
    assert audit_draw(sid) == audit_draw(sid) and {route(on, sid, 0.95) for _ in range(5)} == {route(on, sid, 0.9)}
    n = 20_000
    drawn = sum(route(on, syncd_id("b", f"k{i}.mp3", "e"), 0.95) == Mode.AUDIT for i in range(n))
    assert abs(drawn - n * 0.25) < 4 * math.sqrt(n * 0.25 * 0.75)
    assert all(
        route(ReviewSettings(auto_accept_above=0.5, audit_rate=1.0), f"s{i}", 0.6) == Mode.AUDIT for i in range(50)
    )


def _transcribe(svc, storage, engine, keys: dict[str, float]) -> None:  # type: ignore[no-untyped-def]
    for key, confidence in keys.items():
        storage.put_audio("b", key, key.encode())
        scan.run(svc, GO)
        engine.confidence = confidence
        transcribe.run(svc, GO)


def test_confident_recordings_are_written_without_a_task_and_the_audit_sample_is_reviewed(tmp_path: Path) -> None:
    svc, ls, storage, engine = services(tmp_path, review={"auto_accept_above": 0.8, "audit_rate": 0.3})
    keys = {f"calls/r{i:02d}.mp3": 0.9 for i in range(30)} | {f"calls/low{i}.mp3": 0.5 for i in range(5)}
    _transcribe(svc, storage, engine, keys)
    recs = {r.key: r for r in svc.state.recordings()}
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
    assert {r.status for r in svc.state.recordings() if r.key in auto} == {Status.EXPORTED}
    assert not any(storage.objects.get(("b", k.replace(".mp3", ".transcript.json"))) for k in audits)
    assert metrics.auto_accepted._value.get() == len(auto)

    # A later review of an audited recording is exported as any review is.
    audited_task = next(t for t in ls.tasks.values() if t["data"]["key"] == audits[0])
    ls.annotate(audited_task["id"], "hello word")
    with capture_logs() as logs:
        run_cycle(svc)
    [exported] = [e for e in logs if e["event"] == "annotation.exported"]
    assert exported["review"] == "audit" and exported["word_error_rate"] == 0.5
    metrics.observe("info", "annotation.exported", exported)
    assert metrics.audit_wer._sum.get() == 0.5


def test_a_write_that_fails_is_retried_and_nothing_is_lost(tmp_path: Path) -> None:
    svc, _, storage, engine = services(tmp_path, review={"auto_accept_above": 0.8, "audit_rate": 0.0})
    _transcribe(svc, storage, engine, {"a.mp3": 0.95})
    real_write = storage.write
    storage.write = lambda *a, **k: (_ for _ in ()).throw(OSError("disk full"))  # type: ignore[method-assign]
    with capture_logs() as logs:
        run_cycle(svc)
    assert [e["event"] for e in logs].count("auto_accept.failed") == 1
    [rec] = svc.state.recordings()
    assert rec.status == Status.ACCEPTED and rec.reason and "disk full" in rec.reason
    storage.write = real_write  # type: ignore[method-assign]
    svc.state.update(rec.id, next_attempt_at=0)
    run_cycle(svc)
    assert svc.state.get(rec.id).status == Status.EXPORTED and "a.transcript.json" in storage.keys("b")


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


def test_report_bins_pool_word_errors_as_jiwer_does_and_name_the_threshold(tmp_path: Path) -> None:
    svc, ls, storage, engine = services(tmp_path)
    engine.words = "please send the invoice to the accounting department"
    confident = {f"hi{i}.mp3": 0.93 for i in range(6)}
    unsure = {f"lo{i}.mp3": 0.42 for i in range(6)}
    _transcribe(svc, storage, engine, confident | unsure)
    run_cycle(svc)
    corrections = {}
    for n, task in enumerate(ls.tasks.values()):
        key = task["data"]["key"]
        text = engine.words if key.startswith("hi") and n % 2 else "please send the invoices to accounting"
        if key.startswith("hi") and not n % 2:
            text = "please send the invoice to the accounting department today"
        corrections[key] = text
        ls.annotate(task["id"], text)
    run_cycle(svc)
    report = build(svc.state, svc.settings, 0.1, max_wer=0.1)
    by_low = {b["low"]: b for b in report["bins"]}
    for low, keys in ((0.9, confident), (0.4, unsure)):
        expected = jiwer.wer([_norm(corrections[k]) for k in keys], [_norm(engine.words)] * len(keys))
        assert by_low[low]["wer"] == round(expected, 4) and by_low[low]["reviewed"] == len(keys)
    assert report["threshold"]["threshold"] == 0.9 and report["threshold"]["share_auto_accepted"] == 0.5
    assert report["triage"] == {"transcribed": 12, "reviewed": 12, "audited": 0, "auto_accepted": 0, "audit_wer": None}
    [annotator] = report["annotators"]
    assert annotator["annotator"] == "reviewer@example.com" and annotator["reviews"] == 12
    assert report["backlog_audio_hours"] == {"exported": round(12 * 2.0 / 3600, 4)}
    text = format_report(report)
    assert "auto_accept_above = 0.90" in text and "0.40-0.50" in text
