"""`syncd report`: what review costs and what skipping it would cost, from the state store alone.

Reviewed recordings (the audit sample included) are binned by ASR confidence per model and language; each bin's word
error rate is pooled (its word errors over its reference words, as ``jiwer.wer`` over the bin's texts). The
auto-accept threshold is the lowest bin edge at which the expected WER of everything at or above it stays under
``--max-wer``: each bin weighs in by how many recordings it holds, reviewed or not, so an audit sample of a tenth
counts for the whole bin it was drawn from.

Per segment, from the reviews kept in the state: reviewed segments binned by their own ASR confidence (the evidence
for letting reviewers skim confident segments), and the doubtful-word flags scored against what reviewers did: a
word flagged (confidence below ``review.flag_words_below``) is right when the reviewer changed it (precision), and
a changed word is found when it was flagged (recall), per model, at the configured threshold and at others.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from syncd import errors
from syncd.config import Settings
from syncd.domain.formats import changed_words, normalize_words, word_errors
from syncd.domain.transcript import Segment, Transcript
from syncd.state import StateStore

HOUR = 3600.0


def pooled_wer(word_errors: int, reference_words: int) -> float | None:
    """Word errors over reference words, to 4 places; None with nothing to compare."""
    return round(word_errors / reference_words, 4) if reference_words else None


@dataclass
class Bin:
    model: str
    language: str
    low: float
    high: float
    recordings: int = 0
    """Transcribed recordings in the bin, reviewed or not."""
    reviewed: int = 0
    audited: int = 0
    auto_accepted: int = 0
    audio_hours: float = 0.0
    word_errors: int = 0
    reference_words: int = 0

    @property
    def wer(self) -> float | None:
        return pooled_wer(self.word_errors, self.reference_words)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"audio_hours": round(self.audio_hours, 4), "wer": self.wer}


@dataclass
class Annotator:
    annotator: str
    reviews: int = 0
    audio_hours: float = 0.0
    word_errors: int = 0
    reference_words: int = 0
    latencies: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        wer = pooled_wer(self.word_errors, self.reference_words)
        median = statistics.median(self.latencies) if self.latencies else None
        return {
            "annotator": self.annotator,
            "reviews": self.reviews,
            "audio_hours": round(self.audio_hours, 4),
            "wer": wer,
            "median_review_latency_s": None if median is None else round(median, 1),
        }


@dataclass
class SegmentBin:
    """Reviewed segments whose own ASR confidence falls in [low, high), of one model."""

    model: str
    low: float
    high: float
    segments: int = 0
    changed: int = 0
    """Segments whose text the reviewer changed (case and punctuation aside) or dropped."""
    word_errors: int = 0
    reference_words: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"wer": pooled_wer(self.word_errors, self.reference_words)}


SWEEP = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
"""The thresholds the flag table also shows, so an operator sees what another ``flag_words_below`` would give."""


@dataclass
class Flags:
    """One model's ASR words in reviewed segments: their confidences and whether the reviewer changed them."""

    model: str
    audio_seconds: float = 0.0
    scored: list[tuple[float, bool]] = field(default_factory=list)

    def at(self, below: float) -> dict[str, Any]:
        flagged = [changed for confidence, changed in self.scored if confidence < below]
        changed = sum(changed for _, changed in self.scored)
        minutes = self.audio_seconds / 60
        return {
            "below": below,
            "flagged": len(flagged),
            "per_minute": round(len(flagged) / minutes, 1) if minutes else None,
            "precision": round(sum(flagged) / len(flagged), 4) if flagged else None,
            "recall": round(sum(flagged) / changed, 4) if changed else None,
        }

    def as_dict(self, below: float) -> dict[str, Any]:
        return {
            "model": self.model,
            "audio_minutes": round(self.audio_seconds / 60, 2),
            "words": len(self.scored),
            "changed": sum(changed for _, changed in self.scored),
            **self.at(below),
            "sweep": [self.at(t) for t in sorted({*SWEEP, below}) if t > 0],
        }


def matched_texts(asr: list[Segment], reviewed: list[Segment], shift: float) -> list[str | None]:
    """The reviewed text of each ASR segment (None: the reviewer dropped it): the reviewed segment that carries its
    ASR text, nearest in time (the segments layout lets a region move; the transcript layout keeps its times)."""
    left = list(reviewed)
    found: list[str | None] = []
    for seg in asr:
        same = [r for r in left if r.asr_text == seg.text]
        if not same:
            found.append(None)
            continue
        best = min(same, key=lambda r: abs(r.start - (seg.start + shift)))
        left.remove(best)
        found.append(best.text)
    return found


def segment_stats(rows: list[dict[str, Any]], width: float) -> tuple[list[SegmentBin], dict[str, Flags]]:
    """Segment bins and word flags from ``StateStore.reviewed_segments`` rows."""
    bins_found: dict[tuple[str, float], SegmentBin] = {}
    flags: dict[str, Flags] = {}
    for row in rows:
        asr = Transcript.from_dict(json.loads(row["transcript"]))
        reviewed = [Segment(**s) for s in json.loads(row["review"])]
        model = asr.model or ""
        scores = flags.setdefault(model, Flags(model))
        scores.audio_seconds += float(row["duration"] or asr.duration or 0.0)
        for seg, text in zip(
            asr.segments, matched_texts(list(asr.segments), reviewed, row["unit_start"] or 0.0), strict=True
        ):
            text = text or ""
            if seg.confidence is not None:
                low = _edge(seg.confidence, width)
                b = bins_found.setdefault((model, low), SegmentBin(model, low, round(low + width, 6)))
                errors, words = word_errors(text, seg.text)
                b.segments += 1
                b.changed += normalize_words(text) != normalize_words(seg.text)
                b.word_errors += errors
                b.reference_words += words
            changed = changed_words([w.text for w in seg.words], text)
            scores.scored += [
                (w.confidence, bool(c))
                for w, c in zip(seg.words, changed, strict=True)
                if c is not None and w.confidence is not None
            ]
    return sorted(bins_found.values(), key=lambda b: (b.model, b.low)), flags


def _edge(score: float, width: float) -> float:
    return round(min(math.floor(score / width) * width, 1 - width), 6)


def bins(rows: list[dict[str, Any]], width: float) -> list[Bin]:
    found: dict[tuple[str, str, float], Bin] = {}
    for row in rows:
        if row["score"] is None:
            continue
        low = _edge(float(row["score"]), width)
        model, language = str(row["model"] or ""), str(row["language"] or "")
        b = found.setdefault((model, language, low), Bin(model, language, low, round(low + width, 6)))
        b.recordings += 1
        b.auto_accepted += row["review_mode"] == "auto"
        if row["word_errors"] is None:
            continue
        b.reviewed += 1
        b.audited += row["review_mode"] == "audit"
        b.audio_hours += (row["duration"] or 0.0) / HOUR
        b.word_errors += int(row["word_errors"])
        b.reference_words += int(row["reference_words"] or 0)
    return sorted(found.values(), key=lambda b: (b.model, b.language, b.low))


def expected_wer_above(found: list[Bin], threshold: float) -> float | None:
    """Expected WER of every recording at or above ``threshold``: each bin's pooled WER, weighted by the words its
    recordings hold (reviewed words scaled up to all the bin's recordings)."""
    errors = words = 0.0
    for b in found:
        if b.low + 1e-9 < threshold or not b.reviewed:
            continue
        scale = b.recordings / b.reviewed
        errors += b.word_errors * scale
        words += b.reference_words * scale
    return round(errors / words, 4) if words else None


def lowest_threshold(found: list[Bin], max_wer: float) -> dict[str, Any]:
    """The lowest bin edge whose expected WER above it stays at or under ``max_wer``; bins above it with recordings
    but no review make it unknowable (None)."""
    edges = sorted({b.low for b in found})
    for edge in edges:
        above = [b for b in found if b.low + 1e-9 >= edge]
        if any(b.recordings and not b.reviewed for b in above):
            continue
        wer = expected_wer_above(found, edge)
        if wer is not None and wer <= max_wer:
            share = sum(b.recordings for b in above) / max(sum(b.recordings for b in found), 1)
            return {"max_wer": max_wer, "threshold": edge, "expected_wer": wer, "share_auto_accepted": round(share, 4)}
    return {"max_wer": max_wer, "threshold": None, "expected_wer": None, "share_auto_accepted": 0.0}


def annotators(rows: list[dict[str, Any]]) -> list[Annotator]:
    found: dict[str, Annotator] = {}
    for row in rows:
        if row["word_errors"] is None:
            continue
        a = found.setdefault(str(row["annotator"] or "unknown"), Annotator(str(row["annotator"] or "unknown")))
        a.reviews += 1
        a.audio_hours += (row["duration"] or 0.0) / HOUR
        a.word_errors += int(row["word_errors"])
        a.reference_words += int(row["reference_words"] or 0)
        if row["imported_at"] and row["submitted_at"]:
            a.latencies.append(max(float(row["submitted_at"]) - float(row["imported_at"]), 0.0))
    return sorted(found.values(), key=lambda a: a.annotator)


def _pooled(rows: list[dict[str, Any]]) -> float | None:
    words = sum(int(r["reference_words"] or 0) for r in rows)
    return round(sum(int(r["word_errors"]) for r in rows) / words, 4) if words else None


def build(store: StateStore, settings: Settings, width: float = 0.1, max_wer: float | None = None) -> dict[str, Any]:
    rows = store.reports.triage_rows()
    found = bins(rows, width)
    reviewed = [r for r in rows if r["word_errors"] is not None]
    audits = [r for r in reviewed if r["review_mode"] == "audit"]
    latencies = [
        max(float(r["submitted_at"]) - float(r["imported_at"]), 0.0)
        for r in reviewed
        if r["imported_at"] and r["submitted_at"]
    ]
    report: dict[str, Any] = {
        "settings": {
            "auto_accept_above": settings.review.auto_accept_above or None,
            "audit_rate": settings.review.audit_rate,
        },
        "triage": {
            "transcribed": len(rows),
            "reviewed": len(reviewed),
            "audited": len(audits),
            "auto_accepted": sum(r["review_mode"] == "auto" and r["status"] == "exported" for r in rows),
            "audit_wer": _pooled(audits),
        },
        "bins": [b.as_dict() for b in found],
        "backlog_audio_hours": {k: round(v / HOUR, 4) for k, v in store.recordings.backlog_seconds().items() if v},
        "median_review_latency_s": round(statistics.median(latencies), 1) if latencies else None,
        "annotators": [a.as_dict() for a in annotators(rows)],
    }
    if max_wer is not None:
        report["threshold"] = lowest_threshold(found, max_wer)
    segment_bins, flags = segment_stats(store.reports.reviewed_segments(), width)
    below = settings.review.flag_words_below
    report["segment_bins"] = [b.as_dict() for b in segment_bins]
    report["flags"] = [f.as_dict(below) for _, f in sorted(flags.items()) if f.scored]
    return report


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def format_report(report: dict[str, Any]) -> str:
    t = report["triage"]
    lines = [
        f"transcribed {t['transcribed']}, reviewed {t['reviewed']} (audits {t['audited']}),"
        f" auto-accepted {t['auto_accepted']}; audit WER {_pct(t['audit_wer'])}",
        "",
        f"{'model':<22}{'lang':<8}{'confidence':<12}{'recordings':>11}{'reviewed':>9}{'hours':>8}{'WER':>8}",
    ]
    for b in report["bins"]:
        span = f"{b['low']:.2f}-{b['high']:.2f}"
        lines.append(
            f"{b['model'][:21]:<22}{b['language'][:7]:<8}{span:<12}{b['recordings']:>11}{b['reviewed']:>9}"
            f"{b['audio_hours']:>8.2f}{_pct(b['wer']):>8}"
        )
    if "threshold" in report:
        th = report["threshold"]
        if th["threshold"] is None:
            lines += ["", f"no threshold keeps the expected WER under {_pct(th['max_wer'])} with the reviews so far"]
        else:
            lines += [
                "",
                f"lowest threshold for WER <= {_pct(th['max_wer'])}: auto_accept_above = {th['threshold']:.2f}"
                f" (expected WER {_pct(th['expected_wer'])}, {_pct(th['share_auto_accepted'])} of recordings)",
            ]
    lines += _segment_lines(report)
    backlog = ", ".join(f"{k} {v:.2f} h" for k, v in sorted(report["backlog_audio_hours"].items())) or "none"
    lines += [
        "",
        f"audio by state: {backlog}",
        f"median time from import to review: {report['median_review_latency_s']} s",
    ]
    if report["annotators"]:
        lines += ["", f"{'annotator':<32}{'reviews':>8}{'hours':>8}{'WER':>8}{'median s':>10}"]
        for a in report["annotators"]:
            median = "-" if a["median_review_latency_s"] is None else f"{a['median_review_latency_s']:.0f}"
            lines.append(
                f"{a['annotator'][:31]:<32}{a['reviews']:>8}{a['audio_hours']:>8.2f}{_pct(a['wer']):>8}{median:>10}"
            )
    return "\n".join(lines)


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _segment_lines(report: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    if report.get("segment_bins"):
        lines += ["", f"{'model':<22}{'segment conf.':<15}{'segments':>9}{'changed':>9}{'WER':>8}"]
        for b in report["segment_bins"]:
            span = f"{b['low']:.2f}-{b['high']:.2f}"
            changed = f"{b['changed'] / b['segments'] * 100:.0f}%" if b["segments"] else "-"
            lines.append(f"{b['model'][:21]:<22}{span:<15}{b['segments']:>9}{changed:>9}{_pct(b['wer']):>8}")
    for f in report.get("flags", []):
        lines += [
            "",
            f"doubtful-word flags, {f['model']}: {f['words']} words in {f['audio_minutes']:.1f} min reviewed,"
            f" {f['changed']} changed by reviewers (a flag is right when its word was changed)",
            f"{'flag below':<12}{'flags':>8}{'per min':>9}{'precision':>11}{'recall':>8}",
        ]
        for t in f["sweep"]:
            mark = " <- review.flag_words_below" if t["below"] == f["below"] else ""
            per_minute = "-" if t["per_minute"] is None else f"{t['per_minute']:.1f}"
            lines.append(
                f"{t['below']:<12.2f}{t['flagged']:>8}{per_minute:>9}{_ratio(t['precision']):>11}"
                f"{_ratio(t['recall']):>8}{mark}"
            )
    return lines


def print_report(settings: Settings, as_json: bool, width: float, max_wer: float | None) -> int:
    store = StateStore.open(settings.state)
    try:
        report = build(store, settings, width, max_wer)
    finally:
        store.close()
    print(json.dumps(report, indent=2) if as_json else format_report(report))
    return errors.OK
