"""Review triage against the real stack (Label Studio, SeaweedFS, moto's Transcribe with real-shaped output): with a
threshold set, confident recordings get their transcripts without a task, the audit sample gets tasks at its rate,
and `syncd report` bins reviewed recordings with the WER jiwer computes from the same texts."""

from __future__ import annotations

import json
import math
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import jiwer

from devstack import Stack, aws_config, log_events, project_tasks, run_syncd, upload_with_results
from syncd.labelstudio import layouts
from syncd.state import StateStore

FIXTURES = ("two_speakers.json", "single_speaker.json", "spanish.json", "two_speakers_new.json")
"""Mean word confidence 0.986, 0.969, 0.982, 0.986: a threshold of 0.98 auto-accepts three in four."""
RECORDINGS = 200
AUDIT_RATE = 0.2


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


def _texts(result: list[dict[str, Any]]) -> list[str]:
    return [r["value"]["text"][0] for r in result if r["from_name"] == layouts.TEXT]


def _corrected(result: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """The prediction with the reviewer's edits: every other task gets its first word of each region changed."""
    out = json.loads(json.dumps(result))
    if n % 2:
        for region in out:
            if region["from_name"] == layouts.TEXT:
                words = region["value"]["text"][0].split()
                region["value"]["text"] = [" ".join(["corrected", *words[1:]])]
    return out


def _until_settled(stack: Stack, config: Path, state: StateStore, runs: int = 8) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for _ in range(runs):
        events += log_events(run_syncd(["once", "-c", str(config)], stack).stdout)
        counts = state.recordings.counts()
        if not any(counts[s] for s in ("discovered", "transcribing", "transcribed", "importing", "accepted")):
            return events
    raise AssertionError(f"work left after {runs} runs: {state.recordings.counts()}")


def test_auto_accept_sends_the_audit_sample_to_review_and_the_report_matches_jiwer(
    stack: Stack, s3: Any, ls: Any, bucket: str, tmp_path: Path
) -> None:
    keys = {f"calls/r{i:03d}.mp3": FIXTURES[i % 4] for i in range(RECORDINGS)}
    upload_with_results(s3, bucket, keys)
    title = f"triage {bucket}"
    config = aws_config(stack, tmp_path, bucket, title)
    config.write_text(config.read_text() + f"\n[review]\nauto_accept_above = 0.98\naudit_rate = {AUDIT_RATE}\n")
    state = StateStore(str(tmp_path / "state.db"))
    events = _until_settled(stack, config, state)

    recs = {r.key: r for r in state.recordings.all()}
    modes = Counter(r.review_mode for r in recs.values())
    confident = [k for k, f in keys.items() if f != "single_speaker.json"]
    assert modes["review"] == RECORDINGS - len(confident) and modes["audit"] + modes["auto"] == len(confident)
    expected, spread = len(confident) * AUDIT_RATE, math.sqrt(len(confident) * AUDIT_RATE * (1 - AUDIT_RATE))
    assert abs(modes["audit"] - expected) <= 4 * spread, f"{modes['audit']} audits of {len(confident)}"

    auto = sorted(k for k, r in recs.items() if r.review_mode == "auto")
    tasks = project_tasks(ls, title)
    per_key = Counter(t["data"]["key"] for t in tasks)
    assert set(per_key) == set(keys) - set(auto) and set(per_key.values()) == {1}, "one task per reviewed recording"
    listed = {
        o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket) for o in page["Contents"]
    }
    for key in auto:
        doc = json.loads(s3.get_object(Bucket=bucket, Key=key.replace(".mp3", ".transcript.json"))["Body"].read())
        assert doc["review"]["status"] == "auto-accepted" and doc["review"]["task"] is None
        assert doc["asr"]["confidence"] >= 0.98 and doc["text"] == recs[key].transcript.text  # type: ignore[union-attr]
    assert not {k.replace(".mp3", ".transcript.json") for k in per_key} & listed, "nothing written before review"
    assert sum(e["event"] == "transcript.auto_accepted" for e in events) == len(auto)

    # Reviewers submit every task; half of them change the first word of each region.
    references: dict[str, str] = {}
    hypotheses: dict[str, str] = {}
    for n, task in enumerate(sorted(tasks, key=lambda t: t["id"])):
        predicted = task["predictions"][0]["result"]
        corrected = _corrected(predicted, n)
        ls.annotations.create(id=task["id"], result=corrected, was_cancelled=False)
        references[task["data"]["key"]] = " ".join(_texts(corrected))
        hypotheses[task["data"]["key"]] = " ".join(_texts(predicted))
    exported = log_events(run_syncd(["once", "-c", str(config)], stack).stdout)
    assert sum(e["event"] == "annotation.exported" for e in exported) == len(tasks)

    out = run_syncd(["report", "-c", str(config), "--json", "--bin-width", "0.01", "--max-wer", "0.2"], stack)
    report = json.loads(out.stdout)
    groups: dict[tuple[str, float], list[str]] = defaultdict(list)
    for key in references:
        rec = recs[key]
        language = rec.transcript.language or ""  # type: ignore[union-attr]
        groups[(language, math.floor(round((rec.score or 0) * 100, 6)) / 100)].append(key)
    bins = {(b["language"], b["low"]): b for b in report["bins"] if b["reviewed"]}
    assert set(bins) == set(groups)
    for group, members in groups.items():
        wer = jiwer.wer([_norm(references[k]) for k in members], [_norm(hypotheses[k]) for k in members])
        assert bins[group]["wer"] == round(wer, 4), group
        assert bins[group]["reviewed"] == len(members)
    assert report["triage"]["audited"] == modes["audit"] and report["triage"]["auto_accepted"] == len(auto)
    audited = [k for k in references if recs[k].review_mode == "audit"]
    audit_wer = jiwer.wer([_norm(references[k]) for k in audited], [_norm(hypotheses[k]) for k in audited])
    assert report["triage"]["audit_wer"] == round(audit_wer, 4)
    text = run_syncd(["report", "-c", str(config), "--bin-width", "0.01", "--max-wer", "0.2"], stack).stdout
    print(text)
    assert "lowest threshold" in text or "no threshold" in text
