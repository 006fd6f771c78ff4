"""Label Studio review layouts: the label config, the prediction we import, and the reviewer's result read back.

``segments``: one audio region per ASR segment, labelled with its speaker. Every region's text is an editable field
in the region list (``displayMode="region-list"``), in reading order, with no selecting first; one text per region.
The region's score is the segment's ASR confidence; segments below ``LOW_CONFIDENCE`` also carry a red "check" label.
Words below ``review.flag_words_below`` are short read-only "Check word" regions over the word: a hint where to
listen, listed after the segments so the segment numbers stay, never read back into a transcript.
``whole``: Label Studio's "Automatic Speech Recognition" template, one text box with one line per ASR segment.

Projects created by older versions keep their label config (a read-only ``asr_confidence`` text per region, a text
box that accepts several texts per region); their results read back by the same rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import quoteattr

from syncd.domain.transcript import Segment, Transcript, Word

AUDIO = "audio"
TEXT = "transcription"
SPEAKER = "speaker"
CHECK = "check"
CONFIDENCE = "asr_confidence"  # the old layout's read-only text per region; read back as nothing
DEFAULT_SPEAKER = "Speaker 1"
CHANNELS = ("ch_0", "ch_1")
"""Stereo calls transcribed per channel (whisper ``channels = "split"``, Transcribe channel identification) label
their segments ``Channel 1``/``Channel 2``: the speaker control offers those labels too, or Label Studio would show
such a segment without its label."""
LOW_CONFIDENCE = 0.6
CHECK_LABEL = "Low confidence"
WORD = "word"
WORD_LABEL = "Check word"
_SEGMENT_STEPS = (
    "<li>Every segment's text is listed under <b>Regions</b> (right), in time order, numbered as on the waveform. "
    "To fix one, click into its text, correct it, and press <b>Enter</b> (or click elsewhere). Each segment holds "
    "exactly one text: correct it in place.</li>"
    "<li>Segments marked <b style='color:#cf1322'>Low confidence</b> (below "
    f"{LOW_CONFIDENCE:.2f}) are the likeliest to be wrong; the header names them. The number beside each segment is "
    "the recogniser's confidence. Short orange <b style='color:#d46b08'>Check word</b> marks sit on single words the "
    "recogniser was unsure of: click one to jump there. They are hints only and are never written.</li>"
    "<li>Relabel a speaker: click the segment's name, then another speaker label. Delete a segment that holds no "
    "speech (select it, press Backspace); draw a missing one on the waveform with a speaker label selected, then type "
    "its text.</li>"
)
_WHOLE_STEPS = "<li>Edit the text in place. Keep one line per segment and the subtitles keep their timing.</li>"


def instructions(layout: str) -> str:
    """The project's reviewer instructions (Label Studio shows them before each task)."""
    return (
        "<p><b>Correct the machine transcript.</b> Recordings come least confident first; the header shows the "
        "file, its ASR confidence and the segments to check first.</p><ol>"
        "<li>Press <b>space</b> (outside a text box) to play or pause; click the waveform to jump.</li>"
        f"{_WHOLE_STEPS if layout == 'whole' else _SEGMENT_STEPS}"
        "<li>Press <b>Submit</b>. Only submitted reviews are written to S3; <b>Skip</b> writes nothing.</li></ol>"
    )


def speaker_name(raw: str | None) -> str:
    """Engines say ``spk_0`` or ``ch_1``; reviewers see ``Speaker 1``/``Channel 2``."""
    if not raw:
        return DEFAULT_SPEAKER
    kind, _, number = raw.partition("_")
    if number.isdigit():
        return f"{'Channel' if kind == 'ch' else 'Speaker'} {int(number) + 1}"
    return raw


def label_config(layout: str, max_speakers: int = 4) -> str:
    header = (
        '  <Header value="$key" size="4"/>\n'
        '  <Header value="ASR confidence $asr_confidence · $duration s · $segments_to_check" size="6"/>\n'
    )
    if layout == "whole":
        return (
            "<View>\n"
            f"{header}"
            f'  <Audio name="{AUDIO}" value="$audio" hotkey="space"/>\n'
            f'  <TextArea name="{TEXT}" toName="{AUDIO}" editable="true" rows="8" maxSubmissions="1"'
            ' transcription="true"/>\n'
            "</View>"
        )
    speakers = [speaker_name(f"spk_{i}") for i in range(max_speakers)] + [speaker_name(c) for c in CHANNELS]
    labels = "".join(f"    <Label value={quoteattr(name)}/>\n" for name in speakers)
    return (
        "<View>\n"
        f"{header}"
        f'  <Audio name="{AUDIO}" value="$audio" hotkey="space"/>\n'
        f'  <Labels name="{SPEAKER}" toName="{AUDIO}" choice="single">\n{labels}  </Labels>\n'
        f'  <Labels name="{CHECK}" toName="{AUDIO}" choice="single" showInline="true">\n'
        f'    <Label value="{CHECK_LABEL}" background="#cf1322"/>\n'
        "  </Labels>\n"
        f'  <Labels name="{WORD}" toName="{AUDIO}" choice="single" showInline="true">\n'
        f'    <Label value="{WORD_LABEL}" background="#fa8c16"/>\n'
        "  </Labels>\n"
        f'  <TextArea name="{TEXT}" toName="{AUDIO}" perRegion="true" editable="true" displayMode="region-list"'
        ' maxSubmissions="1" rows="2" placeholder="Text of this segment"/>\n'
        "</View>"
    )


def region_id(index: int) -> str:
    return f"seg{index:04d}"


def word_region_id(index: int) -> str:
    return f"word{index:04d}"


def flagged_words(transcript: Transcript, below: float) -> list[Word]:
    """The words a reviewer should listen to first: confidence under ``below`` (0 flags nothing)."""
    return [w for w in transcript.words if w.confidence is not None and w.confidence < below and w.end > w.start]


def low_confidence(seg: Segment) -> bool:
    return seg.confidence is not None and seg.confidence < LOW_CONFIDENCE


def segments_to_check(transcript: Transcript) -> str:
    """The header's note: which segment numbers (as the region list numbers them) to check first."""
    if transcript and len(transcript.segments) == 1 and low_confidence(transcript.segments[0]):
        return "check the segment"
    low = [str(i + 1) for i, seg in enumerate(transcript.segments) if low_confidence(seg)]
    if not low:
        return f"no segment below {LOW_CONFIDENCE:.2f}"
    return f"check segment{'s' if len(low) > 1 else ''} {', '.join(low)}"


def prediction_result(transcript: Transcript, layout: str, flag_words_below: float = 0.0) -> list[dict[str, Any]]:
    if layout == "whole":
        lines = [s.text for s in transcript.segments]
        return [_item("textarea", TEXT, "whole", {"text": ["\n".join(lines)]}, transcript.confidence)]
    result: list[dict[str, Any]] = []
    for index, seg in enumerate(transcript.segments):
        rid = region_id(index)
        span = {"start": seg.start, "end": seg.end, "channel": 0}
        result += [
            _item("labels", SPEAKER, rid, {**span, "labels": [speaker_name(seg.speaker)]}, seg.confidence),
            _item("textarea", TEXT, rid, {**span, "text": [seg.text]}, seg.confidence),
        ]
        if low_confidence(seg):
            result.append(_item("labels", CHECK, rid, {**span, "labels": [CHECK_LABEL]}, seg.confidence))
    for index, word in enumerate(flagged_words(transcript, flag_words_below)):
        value = {"start": word.start, "end": word.end, "channel": 0, "labels": [WORD_LABEL]}
        result.append({**_item("labels", WORD, word_region_id(index), value, word.confidence), "readonly": True})
    return result


def _item(kind: str, name: str, rid: str, value: dict[str, Any], score: float | None) -> dict[str, Any]:
    item: dict[str, Any] = {"id": rid, "from_name": name, "to_name": AUDIO, "type": kind, "value": value}
    if score is not None:
        item["score"] = score
    return item


@dataclass
class _Region:
    rid: str
    start: Any = None
    end: Any = None
    speaker: str | None = None
    texts: list[str] = field(default_factory=list)
    hint: bool = False


def _regions(result: Iterable[dict[str, Any]]) -> dict[str, _Region]:
    """Result items grouped by region id, in the order Label Studio lists them."""
    regions: dict[str, _Region] = {}
    for item in result:
        value = item.get("value") or {}
        rid = str(item.get("id"))
        region = regions.setdefault(rid, _Region(rid))
        if region.start is None and value.get("start") is not None:
            region.start = value["start"]
        if region.end is None and value.get("end") is not None:
            region.end = value["end"]
        if item.get("from_name") == WORD:
            region.hint = True
        elif item.get("from_name") == SPEAKER and value.get("labels"):
            region.speaker = str(value["labels"][0])
        elif item.get("from_name") == TEXT:
            region.texts += [str(t) for t in value.get("text") or [] if str(t).strip()]
    return regions


def pick_text(texts: list[str], asr_text: str | None) -> str:
    """One text for a region that holds several (the old layout's "Add" box let reviewers add a second one): the
    last text that differs from the ASR text, else the last. Texts are never joined: a joined pair doubles a
    sentence in the transcript."""
    texts = [" ".join(t.split()) for t in texts]
    changed = [t for t in texts if t != " ".join((asr_text or "").split())]
    return (changed or texts)[-1]


def corrected_segments(result: list[dict[str, Any]], asr: Transcript, layout: str, log: Any = None) -> list[Segment]:
    """The reviewer's segments, each carrying the ASR text and confidence of the region it came from.

    ``log`` (a bound structlog logger) hears about what a reviewer did that cannot be written as it is: a region with
    several texts (``annotation.region_texts``: one is kept, see ``pick_text``) and a region without text
    (``annotation.region_without_text``: nothing to write for it). A "Check word" hint is not a segment and is
    never read back; a region a reviewer gave that label and a text is kept, since its text is theirs."""
    if layout == "whole":
        return _whole_segments(result, asr)
    asr_by_region = {region_id(i): seg for i, seg in enumerate(asr.segments)}
    segments = []
    for region in _regions(result).values():
        if region.start is None or (region.hint and not region.texts):
            continue
        origin = asr_by_region.get(region.rid)
        start_s = _seconds(region.rid, "start", region.start)
        start, end = round(start_s, 3), round(_region_end(region.rid, start_s, region.end, origin), 3)
        if not region.texts:
            if log is not None:
                log.warning(
                    "annotation.region_without_text", region=region.rid, start=start, end=end, drawn=origin is None
                )
            continue
        text = pick_text(region.texts, origin.text if origin else None)
        if len(region.texts) > 1 and log is not None:
            log.warning("annotation.region_texts", region=region.rid, start=start, texts=len(region.texts), kept=text)
        segments.append(
            Segment(
                start=start,
                end=end,
                text=text,
                speaker=region.speaker,
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
