"""`syncd report`: confidence bins pooling word errors as jiwer does, and the lowest threshold meeting a target WER."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jiwer

from syncd.commands.report import build, format_report, segment_stats
from syncd.domain.transcript import Segment, Transcript, Word
from syncd.pipeline import run_cycle
from tests.unit.fakes import services
from tests.unit.scenarios import transcribed_with


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


def test_report_bins_pool_word_errors_as_jiwer_does_and_name_the_threshold(tmp_path: Path) -> None:
    svc, ls, storage, engine = services(tmp_path)
    engine.words = "please send the invoice to the accounting department"
    confident = {f"hi{i}.mp3": 0.93 for i in range(6)}
    unsure = {f"lo{i}.mp3": 0.42 for i in range(6)}
    transcribed_with(svc, storage, engine, confident | unsure)
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


def _row(asr: Transcript, reviewed: list[tuple[float, float, str, str]], unit_start: float | None = None) -> dict:
    review = [
        {"start": s, "end": e, "text": t, "speaker": None, "confidence": None, "asr_text": a} for s, e, t, a in reviewed
    ]
    return {
        "transcript": json.dumps(asr.to_dict()),
        "review": json.dumps(review),
        "unit_start": unit_start,
        "duration": asr.duration,
    }


def _segment(start: float, words: list[tuple[str, float]]) -> Segment:
    return Segment.from_words([Word(start + i, start + i + 0.5, w, c) for i, (w, c) in enumerate(words)])


def test_segments_are_binned_by_their_own_confidence_and_flags_scored_against_the_reviewers_changes() -> None:
    """A flagged word is right when the reviewer changed it; a dropped segment changed every word."""
    wifi = _segment(0.0, [("my", 0.9), ("wife", 0.3), ("fight", 0.4), ("router", 0.9)])
    fine = _segment(10.0, [("thank", 0.95), ("you", 0.35)])
    noise = _segment(20.0, [("uh", 0.1)])
    asr = Transcript((wifi, fine, noise), engine="whisper", model="tiny", duration=120.0)
    rows = [_row(asr, [(0.0, 3.5, "My Wi-Fi router.", wifi.text), (10.0, 11.5, "Thank you.", fine.text)])]
    bins, flags = segment_stats(rows, 0.1)
    by_low = {b.low: b for b in bins}
    assert (by_low[0.6].segments, by_low[0.6].changed) == (2, 1), "0.625 and 0.65: one changed, one as heard"
    assert (by_low[0.1].segments, by_low[0.1].changed, by_low[0.1].word_errors) == (1, 1, 1)
    assert by_low[0.6].as_dict()["wer"] == round(2 / 6, 4), "wife fight -> wi fi: 2 errors over 6 words"
    (model,) = flags.values()
    assert model.at(0.5) == {"below": 0.5, "flagged": 4, "per_minute": 2.0, "precision": 0.75, "recall": 1.0}
    assert model.at(0.3) == {"below": 0.3, "flagged": 1, "per_minute": 0.5, "precision": 1.0, "recall": 0.3333}
    summary = model.as_dict(0.5)
    assert (summary["words"], summary["changed"]) == (7, 3) and [t["below"] for t in summary["sweep"]][:2] == [0.1, 0.2]


def test_a_units_review_is_matched_on_its_recordings_clock() -> None:
    seg = _segment(1.0, [("hello", 0.3)])
    asr = Transcript((seg,), engine="aws", model="m", duration=60.0)
    _, flags = segment_stats([_row(asr, [(1201.0, 1201.5, "Hello.", seg.text)], unit_start=1200.0)], 0.1)
    assert flags["m"].at(0.5)["precision"] == 0.0


def test_report_shows_segment_bins_and_flags_from_the_reviews_kept_in_the_state(tmp_path: Path) -> None:
    svc, ls, storage, engine = services(tmp_path)
    engine.words, engine.confidence = "please send the invoice", 0.35
    transcribed_with(svc, storage, engine, {"a.mp3": 0.35})
    run_cycle(svc)
    (task,) = ls.tasks.values()
    ls.annotate(task["id"], "please send the invoices")
    run_cycle(svc)
    report = build(svc.state, svc.settings, 0.1)
    assert [(b["low"], b["segments"], b["changed"]) for b in report["segment_bins"]] == [(0.3, 1, 1)]
    (flag,) = report["flags"]
    assert (flag["flagged"], flag["precision"], flag["recall"]) == (4, 0.25, 1.0)
    text = format_report(report)
    (configured,) = [line for line in text.splitlines() if line.endswith("<- review.flag_words_below")]
    assert "0.30-0.40" in text and configured.split()[:2] == ["0.40", "4"]
