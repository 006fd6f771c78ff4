"""Label Studio review layouts: the label config, the prediction we import, and the reviewer's result read back.

``segments``: one audio region per ASR segment, labelled with its speaker, with a per-region text box holding the ASR
text; ``whole``: Label Studio's "Automatic Speech Recognition" template, one text box with one line per ASR segment.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any
from xml.sax.saxutils import quoteattr

from syncd.transcript import Segment, Transcript, join_words

AUDIO = "audio"
TEXT = "transcription"
SPEAKER = "speaker"
CONFIDENCE = "asr_confidence"
DEFAULT_SPEAKER = "Speaker 1"


def speaker_name(raw: str | None) -> str:
    """Engines say ``spk_0`` or ``ch_1``; reviewers see ``Speaker 1``/``Channel 2``."""
    if not raw:
        return DEFAULT_SPEAKER
    kind, _, number = raw.partition("_")
    if number.isdigit():
        return f"{'Channel' if kind == 'ch' else 'Speaker'} {int(number) + 1}"
    return raw


def label_config(layout: str, max_speakers: int = 4) -> str:
    if layout == "whole":
        return (
            "<View>\n"
            f'  <Audio name="{AUDIO}" value="$audio" hotkey="space"/>\n'
            f'  <Header value="Correct the transcript (one line per segment; confidence $asr_confidence)"/>\n'
            f'  <TextArea name="{TEXT}" toName="{AUDIO}" editable="true" rows="8" maxSubmissions="1"'
            ' transcription="true"/>\n'
            "</View>"
        )
    labels = "".join(f"    <Label value={quoteattr(speaker_name(f'spk_{i}'))}/>\n" for i in range(max_speakers))
    return (
        "<View>\n"
        f'  <Labels name="{SPEAKER}" toName="{AUDIO}" choice="single">\n{labels}  </Labels>\n'
        f'  <Audio name="{AUDIO}" value="$audio" hotkey="space"/>\n'
        f'  <TextArea name="{TEXT}" toName="{AUDIO}" perRegion="true" editable="true" rows="2"'
        ' placeholder="Corrected text for this region"/>\n'
        f'  <TextArea name="{CONFIDENCE}" toName="{AUDIO}" perRegion="true" editable="false" rows="1"'
        ' maxSubmissions="1"/>\n'
        "</View>"
    )


def region_id(index: int) -> str:
    return f"seg{index:04d}"


def prediction_result(transcript: Transcript, layout: str) -> list[dict[str, Any]]:
    if layout == "whole":
        lines = [s.text for s in transcript.segments]
        return [_item("textarea", TEXT, "whole", {"text": ["\n".join(lines)]}, transcript.confidence)]
    result: list[dict[str, Any]] = []
    for index, seg in enumerate(transcript.segments):
        rid = region_id(index)
        span = {"start": seg.start, "end": seg.end, "channel": 0}
        confidence = "n/a" if seg.confidence is None else f"{seg.confidence:.2f}"
        result += [
            _item("labels", SPEAKER, rid, {**span, "labels": [speaker_name(seg.speaker)]}, seg.confidence),
            _item("textarea", TEXT, rid, {**span, "text": [seg.text]}, seg.confidence),
            _item(
                "textarea",
                CONFIDENCE,
                rid,
                {**span, "text": [f"ASR confidence {confidence}"]},
                seg.confidence,
            ),
        ]
    return result


def _item(kind: str, name: str, rid: str, value: dict[str, Any], score: float | None) -> dict[str, Any]:
    item: dict[str, Any] = {"id": rid, "from_name": name, "to_name": AUDIO, "type": kind, "value": value}
    if score is not None:
        item["score"] = score
    return item


def corrected_segments(result: list[dict[str, Any]], asr: Transcript, layout: str) -> list[Segment]:
    """The reviewer's segments, each carrying the ASR text and confidence of the region it came from."""
    if layout == "whole":
        return _whole_segments(result, asr)
    asr_by_region = {region_id(i): seg for i, seg in enumerate(asr.segments)}
    regions: dict[str, dict[str, Any]] = defaultdict(dict)
    for item in result:
        value = item.get("value") or {}
        region = regions[str(item.get("id"))]
        region.setdefault("start", value.get("start"))
        region.setdefault("end", value.get("end"))
        if item.get("from_name") == SPEAKER and value.get("labels"):
            region["speaker"] = value["labels"][0]
        elif item.get("from_name") == TEXT:
            region["text"] = join_words(value.get("text") or [])
    segments = []
    for rid, region in regions.items():
        if region.get("start") is None or "text" not in region:
            continue
        origin = asr_by_region.get(rid)
        start = _seconds(rid, "start", region["start"])
        end = _region_end(rid, start, region.get("end"), origin)
        segments.append(
            Segment(
                start=round(start, 3),
                end=round(end, 3),
                text=region["text"],
                speaker=region.get("speaker"),
                confidence=origin.confidence if origin else None,
                asr_text=origin.text if origin else None,
            )
        )
    return sorted(segments, key=lambda s: (s.start, s.end))


def _seconds(rid: str, name: str, value: Any) -> float:
    """A region time as seconds; a value that is no number is the result's fault, named so a person can fix it."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"region {rid!r}: {name} {value!r} is not a number of seconds") from None
    if seconds != seconds or seconds < 0:
        raise ValueError(f"region {rid!r}: {name} {value!r} is not a time in the audio")
    return seconds


def _region_end(rid: str, start: float, end: Any, origin: Segment | None) -> float:
    """A region saved with a start and no end (results written through the API can lack it) ends where its ASR
    segment ended, or at its start: a point in time, never a failed export."""
    if end is None:
        return origin.end if origin and origin.end >= start else start
    return max(_seconds(rid, "end", end), start)


def _whole_segments(result: list[dict[str, Any]], asr: Transcript) -> list[Segment]:
    """Lines map back onto ASR segment times when the reviewer kept one line per segment; else one span."""
    texts = [t for item in result if item.get("from_name") == TEXT for t in (item.get("value") or {}).get("text", [])]
    lines = [line.strip() for text in texts for line in text.splitlines() if line.strip()]
    if lines and len(lines) == len(asr.segments):
        return [
            Segment(
                start=s.start,
                end=s.end,
                text=line,
                speaker=s.speaker,
                confidence=s.confidence,
                asr_text=s.text,
            )
            for s, line in zip(asr.segments, lines, strict=True)
        ]
    end = asr.duration or (asr.segments[-1].end if asr.segments else 0.0)
    return [Segment(start=0.0, end=end, text=" ".join(lines), confidence=asr.confidence, asr_text=asr.text)]
