"""Turn an Amazon Transcribe batch output document into the normalized Transcript.

The format changed over the years and every variant is still written by some job:
numbers are strings; punctuation items have confidence "0.0" and no times; older jobs put
speakers only in ``speaker_labels.segments[].items`` (matched here by start/end time); newer
ones add ``items[].id``, ``items[].speaker_label``/``channel_label`` and ``audio_segments``.
Call Analytics output is a different document (PascalCase, milliseconds) and is refused.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from syncd.domain.transcript import LONGEST_SECONDS, Segment, Transcript, Word

ENGINE = "aws"
MAX_GAP_S = 1.5
MAX_SEGMENT_S = 30.0
_SENTENCE_END = (".", "?", "!", "\u3002", "\uff1f", "\uff01")
_OPENING = set("\u00bf\u00a1([\u201c")  # ¿ ¡ ( [ “ belong to the word after them
_CALL_ANALYTICS_KEYS = ("ConversationCharacteristics", "Participants", "Transcript", "JobName", "JobStatus")


class TranscribeOutputError(ValueError):
    """The document is not a usable Amazon Transcribe batch transcript."""


@dataclass
class _Token:
    """A word under construction, with the item ids (word and punctuation) folded into it."""

    word: Word
    ids: list[Any]


def parse_transcribe_output(
    doc: dict[str, Any], *, job: str | None = None, model: str = "amazon-transcribe"
) -> Transcript:
    results = _results(doc)
    segments = _segments(results)
    words = [w for s in segments for w in s.words]
    return Transcript(
        segments=tuple(segments),
        engine=ENGINE,
        model=model,
        language=_language(results),
        job=job or doc.get("jobName"),
        duration=max((w.end for w in words), default=None),
        extra=_extra(doc, results, words),
    )


def _results(doc: Any) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise TranscribeOutputError(f"Transcribe output must be a JSON object, got {type(doc).__name__}")
    if "results" not in doc and any(k in doc for k in _CALL_ANALYTICS_KEYS):
        raise TranscribeOutputError(
            "this is Amazon Transcribe Call Analytics output (PascalCase keys such as 'Transcript' and "
            "'ConversationCharacteristics', times in milliseconds), which is not supported: "
            "use a standard transcription job (StartTranscriptionJob)"
        )
    status = doc.get("status")
    if status is not None and status != "COMPLETED":
        raise TranscribeOutputError(f"Transcribe output has status {status!r}, expected 'COMPLETED'")
    results = doc.get("results")
    if not isinstance(results, dict):
        raise TranscribeOutputError("Transcribe output is missing the 'results' object")
    if not isinstance(results.get("items", []), list):
        raise TranscribeOutputError("Transcribe output 'results.items' is not a list")
    if "items" not in results and _transcript_text(results):
        raise TranscribeOutputError("Transcribe output has a transcript but no 'results.items'")
    return results


def _transcript_text(results: dict[str, Any]) -> str:
    transcripts = results.get("transcripts") or []
    return " ".join(str(t.get("transcript", "")) for t in transcripts if isinstance(t, dict)).strip()


def _object(value: Any) -> dict[str, Any]:
    """An object of the output, or an empty one where the output holds something else: it then says nothing."""
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _objects(value: Any) -> list[dict[str, Any]]:
    """The objects of a list in the output (speaker segments, channels, audio segments, redactions)."""
    return [v for v in _list(value) if isinstance(v, dict)]


def _segments(results: dict[str, Any]) -> list[Segment]:
    items: list[dict[str, Any]] = results.get("items") or []
    audio_segments = _objects(results.get("audio_segments"))
    if audio_segments and all(isinstance(item, dict) and "id" in item for item in items):
        return _from_audio_segments(_tokens(items, _speaker_map(results)), audio_segments)
    channels = _objects(_object(results.get("channel_labels")).get("channels"))
    if channels:
        return _from_channels(channels)
    return _split([t.word for t in _tokens(items, _speaker_map(results))])


def _from_audio_segments(tokens: list[_Token], audio_segments: list[dict[str, Any]]) -> list[Segment]:
    by_id = {item_id: n for n, tok in enumerate(tokens) for item_id in tok.ids}
    segments = []
    for seg in audio_segments:
        indexes = sorted({by_id[i] for i in _list(seg.get("items")) if isinstance(i, int | str) and i in by_id})
        if not indexes:
            continue
        words = [tokens[n].word for n in indexes]
        speaker = seg.get("speaker_label") or seg.get("channel_label") or words[0].speaker
        segments.append(Segment.from_words(words, speaker=speaker))
    return segments


def _from_channels(channels: list[dict[str, Any]]) -> list[Segment]:
    """Each channel is segmented alone: cross-talk would otherwise cut both sides into slivers."""
    segments: list[Segment] = []
    for channel in channels:
        label = channel.get("channel_label")
        words = [replace(t.word, speaker=t.word.speaker or label) for t in _tokens(_list(channel.get("items")))]
        segments.extend(_split(words))
    return sorted(segments, key=lambda s: (s.start, s.end))


def _speaker_map(results: dict[str, Any]) -> dict[tuple[float, float], str]:
    """Speaker of each pronunciation by (start, end): the only link older outputs give."""
    out: dict[tuple[float, float], str] = {}
    for seg in _objects(_object(results.get("speaker_labels")).get("segments")):
        for item in _objects(seg.get("items")):
            label = item.get("speaker_label") or seg.get("speaker_label")
            if label:
                out[(_seconds(item, "start_time"), _seconds(item, "end_time"))] = str(label)
    return out


def _tokens(items: Iterable[dict[str, Any]], speakers: dict[tuple[float, float], str] | None = None) -> list[_Token]:
    """Pronunciations become words; punctuation is glued to the word before (or after, for ¿ ¡)."""
    tokens: list[_Token] = []
    pending = ""
    pending_ids: list[Any] = []
    for n, item in enumerate(items):
        kind, content = _kind_and_content(item, n)
        if kind == "punctuation":
            if content in _OPENING:
                pending, pending_ids = pending + content, [*pending_ids, item.get("id")]
            elif tokens:
                last = tokens[-1]
                last.word = replace(last.word, text=last.word.text + content)
                last.ids.append(item.get("id"))
            continue
        word = _word(item, n, pending + content, speakers or {})
        tokens.append(_Token(word, [*pending_ids, item.get("id")]))
        pending, pending_ids = "", []
    return tokens


def _kind_and_content(item: Any, n: int) -> tuple[str, str]:
    if not isinstance(item, dict):
        raise TranscribeOutputError(f"Transcribe output item {n} is not an object")
    kind = item.get("type")
    alternatives = item.get("alternatives")
    best = alternatives[0] if isinstance(alternatives, list) and alternatives else None
    if kind not in ("pronunciation", "punctuation") or not isinstance(best, dict):
        raise TranscribeOutputError(f"Transcribe output item {n} has no usable 'type' or 'alternatives'")
    return kind, str(best.get("content", ""))


def _word(item: dict[str, Any], n: int, text: str, speakers: dict[tuple[float, float], str]) -> Word:
    if "start_time" not in item or "end_time" not in item:
        raise TranscribeOutputError(f"Transcribe output pronunciation item {n} has no start_time/end_time")
    start, end = _seconds(item, "start_time"), _seconds(item, "end_time")
    if end < start:
        raise TranscribeOutputError(f"Transcribe output pronunciation item {n} ends before it starts: {item!r}")
    best = item["alternatives"][0]
    # A redacted word's confidence is that it is PII, not that it was heard right: it does not rank the task.
    raw = None if best.get("redactions") else _finite(best.get("confidence"))
    speaker = item.get("speaker_label") or item.get("channel_label") or speakers.get((start, end))
    return Word(
        start=start,
        end=end,
        text=text,
        confidence=round(raw, 4) if raw is not None and 0 <= raw <= 1 else None,
        speaker=speaker,
    )


def _seconds(item: dict[str, Any], key: str) -> float:
    seconds = _finite(item.get(key))
    if seconds is None or not 0 <= seconds <= LONGEST_SECONDS:
        raise TranscribeOutputError(f"Transcribe output has a bad or missing {key!r}: {item!r}")
    return round(seconds, 3)


def _split(words: list[Word]) -> list[Segment]:
    """Cut on speaker change, sentence end, a pause over MAX_GAP_S, or past MAX_SEGMENT_S."""
    segments: list[Segment] = []
    current: list[Word] = []
    for word in words:
        if current and _breaks(current, word):
            segments.append(Segment.from_words(current, speaker=current[0].speaker))
            current = []
        current.append(word)
    if current:
        segments.append(Segment.from_words(current, speaker=current[0].speaker))
    return segments


def _breaks(current: list[Word], nxt: Word) -> bool:
    last = current[-1]
    return (
        nxt.speaker != last.speaker
        or last.text.endswith(_SENTENCE_END)
        or nxt.start - last.end > MAX_GAP_S
        or nxt.end - current[0].start > MAX_SEGMENT_S
    )


def _finite(value: Any) -> float | None:
    """A number Transcribe wrote (as a string, mostly), or None for one that is absent, no number, NaN or infinite."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _scored(entries: Any, code: str, score: str) -> list[tuple[str, float]]:
    """(language, score) of each entry of a language list that names both; the others say nothing usable."""
    found = []
    for entry in entries if isinstance(entries, list) else []:
        value = _finite(entry.get(score)) if isinstance(entry, dict) and entry.get(code) else None
        if value is not None:
            found.append((str(entry[code]), value))
    return found


def _language(results: dict[str, Any]) -> str | None:
    if results.get("language_code"):
        return str(results["language_code"])
    for entries, code, score in _LANGUAGE_LISTS:
        scored = _scored(results.get(entries), code, score)
        if scored:
            return max(scored, key=lambda c: c[1])[0]
    return None


_LANGUAGE_LISTS = (
    ("language_identification", "code", "score"),
    ("language_codes", "language_code", "duration_in_seconds"),
)


def _extra(doc: dict[str, Any], results: dict[str, Any], words: list[Word]) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if doc.get("accountId"):
        extra["account_id"] = str(doc["accountId"])
    if identified := _scored(results.get("language_identification"), "code", "score"):
        extra["language_identification"] = [{"code": c, "score": score} for c, score in identified]
    if spoken := _scored(results.get("language_codes"), "language_code", "duration_in_seconds"):
        extra["language_codes"] = [{"language_code": c, "duration": seconds} for c, seconds in spoken]
    masked = sum(1 for w in words if "***" in w.text)
    if masked:
        extra["vocabulary_filtered_words"] = masked
    redacted = _redactions(results)
    if doc.get("isRedacted") or redacted:
        extra["redaction"] = {"type": "PII", "redacted_words": sum(redacted.values()), "entities": redacted}
    return extra


def _redactions(results: dict[str, Any]) -> dict[str, int]:
    """PII entity type -> words Transcribe replaced with [PII]."""
    found: dict[str, int] = {}
    items = _objects(results.get("items"))
    for channel in _objects(_object(results.get("channel_labels")).get("channels")):
        items += _objects(channel.get("items"))
    for item in items:
        for alternative in _objects(item.get("alternatives"))[:1]:
            for redaction in _objects(alternative.get("redactions")):
                kind = str(redaction.get("type") or "PII")
                found[kind] = found.get(kind, 0) + 1
    return found
