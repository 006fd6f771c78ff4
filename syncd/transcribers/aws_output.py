"""Turn an Amazon Transcribe batch output document into the normalized Transcript.

The format changed over the years and every variant is still written by some job:
numbers are strings; punctuation items have confidence "0.0" and no times; older jobs put
speakers only in ``speaker_labels.segments[].items`` (matched here by start/end time); newer
ones add ``items[].id``, ``items[].speaker_label``/``channel_label`` and ``audio_segments``.
Call Analytics output is a different document (PascalCase, milliseconds) and is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from syncd.domain.transcript import Segment, Transcript, Word

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


def _segments(results: dict[str, Any]) -> list[Segment]:
    items: list[dict[str, Any]] = results.get("items") or []
    audio_segments = results.get("audio_segments") or []
    if audio_segments and all("id" in item for item in items):
        return _from_audio_segments(_tokens(items, _speaker_map(results)), audio_segments)
    channels = (results.get("channel_labels") or {}).get("channels") or []
    if channels:
        return _from_channels(channels)
    return _split([t.word for t in _tokens(items, _speaker_map(results))])


def _from_audio_segments(tokens: list[_Token], audio_segments: list[dict[str, Any]]) -> list[Segment]:
    by_id = {item_id: n for n, tok in enumerate(tokens) for item_id in tok.ids}
    segments = []
    for seg in audio_segments:
        indexes = sorted({by_id[i] for i in seg.get("items") or () if i in by_id})
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
        words = [replace(t.word, speaker=t.word.speaker or label) for t in _tokens(channel.get("items") or [])]
        segments.extend(_split(words))
    return sorted(segments, key=lambda s: (s.start, s.end))


def _speaker_map(results: dict[str, Any]) -> dict[tuple[float, float], str]:
    """Speaker of each pronunciation by (start, end): the only link older outputs give."""
    out: dict[tuple[float, float], str] = {}
    for seg in (results.get("speaker_labels") or {}).get("segments") or ():
        for item in seg.get("items") or ():
            label = item.get("speaker_label") or seg.get("speaker_label")
            out[(_seconds(item, "start_time"), _seconds(item, "end_time"))] = label
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
    alternatives = item.get("alternatives") or []
    if kind not in ("pronunciation", "punctuation") or not alternatives:
        raise TranscribeOutputError(f"Transcribe output item {n} has no usable 'type' or 'alternatives'")
    return kind, str(alternatives[0].get("content", ""))


def _word(item: dict[str, Any], n: int, text: str, speakers: dict[tuple[float, float], str]) -> Word:
    if "start_time" not in item or "end_time" not in item:
        raise TranscribeOutputError(f"Transcribe output pronunciation item {n} has no start_time/end_time")
    start, end = _seconds(item, "start_time"), _seconds(item, "end_time")
    best = item["alternatives"][0]
    # A redacted word's confidence is that it is PII, not that it was heard right: it does not rank the task.
    raw = None if best.get("redactions") else best.get("confidence")
    speaker = item.get("speaker_label") or item.get("channel_label") or speakers.get((start, end))
    return Word(
        start=start,
        end=end,
        text=text,
        confidence=None if raw is None else round(float(raw), 4),
        speaker=speaker,
    )


def _seconds(item: dict[str, Any], key: str) -> float:
    try:
        return round(float(item[key]), 3)
    except (KeyError, TypeError, ValueError) as exc:
        raise TranscribeOutputError(f"Transcribe output has a bad or missing {key!r}: {item!r}") from exc


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


def _language(results: dict[str, Any]) -> str | None:
    if results.get("language_code"):
        return str(results["language_code"])
    scored = results.get("language_identification") or []
    if scored:
        return str(max(scored, key=lambda c: float(c.get("score", 0)))["code"])
    spoken = results.get("language_codes") or []
    if spoken:
        return str(max(spoken, key=lambda c: float(c.get("duration_in_seconds", 0)))["language_code"])
    return None


def _extra(doc: dict[str, Any], results: dict[str, Any], words: list[Word]) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if doc.get("accountId"):
        extra["account_id"] = str(doc["accountId"])
    if results.get("language_identification"):
        extra["language_identification"] = [
            {"code": c["code"], "score": float(c["score"])} for c in results["language_identification"]
        ]
    if results.get("language_codes"):
        extra["language_codes"] = [
            {"language_code": c["language_code"], "duration": float(c["duration_in_seconds"])}
            for c in results["language_codes"]
        ]
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
    items = [*(results.get("items") or ())]
    for channel in (results.get("channel_labels") or {}).get("channels") or ():
        items += channel.get("items") or ()
    for item in items:
        for alternative in (item.get("alternatives") or [])[:1]:
            for redaction in alternative.get("redactions") or ():
                kind = str(redaction.get("type") or "PII")
                found[kind] = found.get(kind, 0) + 1
    return found
