"""`syncd report`: confidence bins pooling word errors as jiwer does, and the lowest threshold meeting a target WER."""

from __future__ import annotations

import re
from pathlib import Path

import jiwer

from syncd.commands.report import build, format_report
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
