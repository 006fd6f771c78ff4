"""Label Studio review layouts: the label config, the prediction we import, and the reviewer's result read back.

``transcript`` (the default): the whole transcript top to bottom in the main column, one row per ASR segment, in time
order (a ``Repeater`` over the task's ``segments``). Each row is a cue line (a one-phrase ``Paragraphs`` with its own
player: its play button plays exactly that segment and shows it playing) naming the segment's number, speaker, span,
confidence and its doubtful words, and under it the segment's text, editable in place (a ``TextArea`` per segment,
``text_<n>``). Nothing to read sits in a side panel and nothing offered as a label is a marker.
``segments``: one audio region per ASR segment, labelled with its speaker. Every region's text is an editable field
in the region list (``displayMode="region-list"``), in reading order, with no selecting first; one text per region.
The region's score is the segment's ASR confidence; segments below ``LOW_CONFIDENCE`` also carry a red "check" label.
Words below ``review.flag_words_below`` are short read-only "Check word" regions over the word: a hint where to
listen, listed after the segments so the segment numbers stay, never read back into a transcript.
``whole``: Label Studio's "Automatic Speech Recognition" template, one text box with one line per ASR segment.

A review is read back by the layout its result was made with (``result_layout``), whatever the configuration says
now, and a project keeps the layout it was created with (``config_layout``): projects created by older versions keep
exporting. Their results follow the same rules (a read-only ``asr_confidence`` text per region is ignored, several
texts per region keep one).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any
from xml.sax.saxutils import quoteattr

from syncd.domain.transcript import LONGEST_SECONDS, Segment, Transcript, Word

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
LAYOUTS = ("transcript", "segments", "whole")
CHECK_MARK = "[check]"
"""Begins the cue of every segment to check in the transcript layout: the browser's find (Ctrl+F ``[check``, then
Enter) jumps from one to the next, the nearest Label Studio comes to a "next doubtful segment" key."""
SEGMENT_TEXT = re.compile(r"^text_(\d+)$")
"""The transcript layout's text control of segment n (``text_<n>``, named by the Repeater's index)."""
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
_TRANSCRIPT = (
    "<p><b>Correct the machine transcript.</b> Recordings come least confident first. The whole transcript reads "
    "top to bottom, one segment per row: a cue line (number, speaker, confidence, time) and under it the segment's "
    "text, which you edit in place.</p><ol>"
    f"<li><b>Where to look.</b> A row whose cue starts with <b>{CHECK_MARK}</b> is likely wrong (the recogniser's "
    f"confidence is below {LOW_CONFIDENCE:.2f} or it doubted a word, listed after <i>listen for</i>); the header names "
    f"those rows. Jump from one to the next with the browser's find: <b>Ctrl+F</b>, type <b>{CHECK_MARK[:-1]}</b>, "
    "then <b>Enter</b> (<b>Shift+Enter</b> goes back). A row marked <b>&#10003;</b> is confident.</li>"
    "<li><b>Listen.</b> The play button at the start of a cue line plays exactly that segment (again: pause); the "
    "row playing shows a pause button. <b>Ctrl+P</b> plays or pauses the whole recording (the waveform above), also "
    "while you type.</li>"
    "<li><b>Fix a text.</b> Click into it and type. <b>Tab</b> moves on to the next row's play button (<b>Space</b> "
    "plays it), and Tab twice more into its text; <b>Shift+Tab</b> goes back. <b>Esc</b> undoes your typing in that "
    "text. Each segment keeps its own times; empty a text to drop that segment from the transcript.</li>"
    "<li><b>Submit</b> with the button, or press <b>Tab</b> (leaving the text) and then <b>Ctrl+Enter</b>. Only "
    "submitted reviews are written to S3; <b>Skip</b> writes nothing.</li></ol>"
)


def instructions(layout: str) -> str:
    """The project's reviewer instructions (Label Studio shows them before each task)."""
    if layout == "transcript":
        return _TRANSCRIPT
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
    if layout == "transcript":
        return _transcript_config(header)
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


_ROW_STYLE = """\
    .syncd-row { margin: 0 0 8px 0 }
    .syncd-row [class*="authorFilter--"], .syncd-row [class*="wrapper_header--"],
    .syncd-row [class*="selectAllBtnWrapper--"] { display: none }
    .syncd-row [class*="phrase--"] { padding: 1px 10px; margin: 0; display: flex; flex-wrap: wrap;
      align-items: baseline; column-gap: 12px }
    .syncd-row [class*="titleWrapper--"] { display: contents }
    .syncd-row [class*="wrapperText--"] { order: 1 }
    .syncd-row [class*="time--"] { order: 2; margin-left: auto }
    .syncd-row [data-testid="textarea-regions"] { margin-bottom: 0 !important }
    .syncd-row textarea { field-sizing: content; min-height: 0; height: auto !important; padding-top: 4px;
      padding-bottom: 4px; visibility: hidden; animation: syncd-shown 0s 0.3s forwards }
    @keyframes syncd-shown { to { visibility: visible } }
"""
"""Compact rows: the cue on one line (Paragraphs' author filter and "label whole phrase" button hidden: there is no
one else to filter and nothing to label), and the text boxes shown a moment after they mount. Label Studio focuses
every text box as it mounts, so the last one (the end of the transcript) would take the focus and the main column
would open scrolled to the bottom; a box not yet visible cannot take the focus, so the column opens at the top."""


def _transcript_config(header: str) -> str:
    """One row per segment, repeated over the task's ``segments``: the cue line (a one-phrase Paragraphs with its own
    player, not synced to the waveform: Label Studio plays every synced tag at once, one audio element per row) and
    the segment's text box. Text boxes name their segment (``text_<n>``), so a review reads back by segment."""
    return (
        "<View>\n"
        f"  <Style>\n{_ROW_STYLE}  </Style>\n"
        f"{header}"
        f'  <Audio name="{AUDIO}" value="$audio" height="64"/>\n'
        '  <Repeater on="$segments" indexFlag="{{idx}}">\n'
        '    <View idAttr="segment-{{idx}}" className="syncd-row">\n'
        '      <Paragraphs name="cue_{{idx}}" value="$segments[{{idx}}].cue" audioUrl="$audio" layout="dialogue"'
        ' nameKey="speaker" textKey="note"/>\n'
        f'      <TextArea name="text_{{{{idx}}}}" toName="{AUDIO}" editable="true" transcription="true"'
        ' maxSubmissions="1" rows="2"/>\n'
        "    </View>\n"
        "  </Repeater>\n"
        "</View>"
    )


def config_layout(label_config: str | None, default: str) -> str:
    """The layout a project's label config was made with (a project keeps its config when syncd's default changes,
    so its tasks must keep its layout); ``default`` for a config syncd did not make."""
    config = label_config or ""
    if 'on="$segments"' in config and "text_{{idx}}" in config:
        return "transcript"
    if f'name="{TEXT}"' in config and 'perRegion="true"' in config:
        return "segments"
    if f'name="{TEXT}"' in config and "<Labels" not in config:
        return "whole"
    return default


def result_items(result: Any) -> list[dict[str, Any]]:
    """The items of a result that can be read, each with a ``value`` object: Label Studio stores whatever a tool sent
    (through its API any JSON passes), and an item that is no object, or a value that is none, holds nothing to read.
    A result that is no list at all is refused (ValueError): it cannot be a review."""
    if not isinstance(result, list):
        raise ValueError(f"the annotation's result is a {type(result).__name__}, not a list of items")
    return [
        {**item, "value": item["value"] if isinstance(item.get("value"), dict) else {}}
        for item in result
        if isinstance(item, dict)
    ]


def strings(value: Any) -> list[str]:
    """A ``text`` or ``labels`` value as its strings: a list of them as Label Studio writes it, or one string as an API
    client may; never the characters of a string, nor the repr of a number or an object."""
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def result_layout(result: Any, default: str) -> str:
    """The layout a review's result was made with: per-segment text controls, regions with times, or one text box
    (``default`` when the result holds no text at all)."""
    found = None
    for item in result_items(result):
        name = str(item.get("from_name"))
        if SEGMENT_TEXT.match(name):
            return "transcript"
        if item["value"].get("start") is not None:
            found = "segments"
        elif name == TEXT and found is None:
            found = "whole"
    return found or default


def region_id(index: int) -> str:
    return f"seg{index:04d}"


def word_region_id(index: int) -> str:
    return f"word{index:04d}"


def flagged_words(transcript: Transcript, below: float) -> list[Word]:
    """The words a reviewer should listen to first: confidence under ``below`` (0 flags nothing)."""
    return [w for w in transcript.words if w.confidence is not None and w.confidence < below and w.end > w.start]


def low_confidence(seg: Segment) -> bool:
    return seg.confidence is not None and seg.confidence < LOW_CONFIDENCE


def doubtful_words(seg: Segment, below: float) -> list[Word]:
    return [w for w in seg.words if w.confidence is not None and w.confidence < below]


def to_check(seg: Segment, flag_words_below: float) -> bool:
    """A transcript-layout row to check: the segment's confidence is low or it holds a doubtful word."""
    return low_confidence(seg) or bool(doubtful_words(seg, flag_words_below))


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


def cue(index: int, seg: Segment, flag_words_below: float) -> str:
    """A row's cue after the speaker's name: ``3 · [check] 0.48 · listen for: wife 0.30, fight 0.31`` or
    ``4 · ✓ 0.93``. The doubtful words are named where the reviewer reads, not marked as rows of a list."""
    score = "" if seg.confidence is None else f" {seg.confidence:.2f}"
    if not to_check(seg, flag_words_below):
        return f"{index + 1} · \u2713{score}"
    words = doubtful_words(seg, flag_words_below)
    heard = ", ".join(f"{w.text.strip(',.?!;:')} {w.confidence:.2f}" for w in words if w.confidence is not None)
    return f"{index + 1} · {CHECK_MARK}{score}" + (f" · listen for: {heard}" if heard else "")


def transcript_rows(transcript: Transcript, flag_words_below: float) -> list[dict[str, Any]]:
    """The task's ``segments`` (what the transcript layout repeats over): each row's cue as a one-phrase dialogue,
    timed so its play button plays exactly that segment."""
    return [
        {
            "cue": [
                {
                    "speaker": speaker_name(seg.speaker),
                    "note": cue(i, seg, flag_words_below),
                    "start": seg.start,
                    "end": seg.end,
                }
            ]
        }
        for i, seg in enumerate(transcript.segments)
    ]


def segments_to_check(transcript: Transcript, flag_words_below: float | None = None) -> str:
    """The header's note: which segment numbers (as the rows or the region list number them) to check first; with
    ``flag_words_below`` (the transcript layout) a segment holding a doubtful word counts too."""

    def check(seg: Segment) -> bool:
        return low_confidence(seg) if flag_words_below is None else to_check(seg, flag_words_below)

    if transcript and len(transcript.segments) == 1 and check(transcript.segments[0]):
        return "check the segment"
    low = [str(i + 1) for i, seg in enumerate(transcript.segments) if check(seg)]
    if not low:
        if flag_words_below:
            return f"no segment below {LOW_CONFIDENCE:.2f} and no word below {flag_words_below:.2f}"
        return f"no segment below {LOW_CONFIDENCE:.2f}"
    return f"check segment{'s' if len(low) > 1 else ''} {', '.join(low)}"


def prediction_result(transcript: Transcript, layout: str, flag_words_below: float = 0.0) -> list[dict[str, Any]]:
    if layout == "transcript":
        return [
            _item("textarea", f"text_{i}", region_id(i), {"text": [seg.text]}, seg.confidence)
            for i, seg in enumerate(transcript.segments)
        ]
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
    for item in result_items(result):
        value = item["value"]
        rid = str(item.get("id"))
        region = regions.setdefault(rid, _Region(rid))
        if region.start is None and value.get("start") is not None:
            region.start = value["start"]
        if region.end is None and value.get("end") is not None:
            region.end = value["end"]
        if item.get("from_name") == WORD:
            region.hint = True
        elif item.get("from_name") == SPEAKER and (labels := strings(value.get("labels"))):
            region.speaker = labels[0]
        elif item.get("from_name") == TEXT:
            region.texts += [t for t in strings(value.get("text")) if t.strip()]
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
    layout = result_layout(result, layout)
    if layout == "transcript":
        return _transcript_segments(result, asr, log)
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


def _transcript_segments(result: list[dict[str, Any]], asr: Transcript, log: Any) -> list[Segment]:
    """One segment per text control, at its ASR segment's times, with its speaker: a reviewer edits texts only, so
    every segment keeps its span. A segment whose text was emptied writes nothing (and is logged)."""
    texts: dict[int, list[str]] = {}
    for item in result_items(result):
        found = SEGMENT_TEXT.match(str(item.get("from_name")))
        if found:
            texts.setdefault(int(found.group(1)), []).extend(t for t in strings(item["value"].get("text")) if t.strip())
    if unknown := sorted(i for i in texts if i >= len(asr.segments)):
        raise ValueError(f"text_{unknown[0]} names no segment: the transcript has {len(asr.segments)}")
    segments = []
    for index, origin in enumerate(asr.segments):
        rid = region_id(index)
        if index not in texts or not texts[index]:
            if log is not None:
                log.warning("annotation.region_without_text", region=rid, start=origin.start, end=origin.end)
            continue
        text = pick_text(texts[index], origin.text)
        if len(texts[index]) > 1 and log is not None:
            log.warning("annotation.region_texts", region=rid, start=origin.start, texts=len(texts[index]), kept=text)
        speaker = speaker_name(origin.speaker)
        segments.append(replace(origin, text=text, speaker=speaker, words=(), asr_text=origin.text))
    return segments


def _seconds(rid: str, name: str, value: Any) -> float:
    """A region time as seconds; a value that is no number is the result's fault, named so a person can fix it."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"region {rid!r}: {name} {value!r} is not a number of seconds") from None
    if not math.isfinite(seconds) or not 0 <= seconds <= LONGEST_SECONDS:
        raise ValueError(f"region {rid!r}: {name} {value!r} is not a time in the audio (0 to {LONGEST_SECONDS:.0f} s)")
    return seconds


def _region_end(rid: str, start: float, end: Any, origin: Segment | None) -> float:
    """A region saved with a start and no end (results written through the API can lack it) ends where its ASR
    segment ended, or at its start: a point in time, never a failed export."""
    if end is None:
        return origin.end if origin and origin.end >= start else start
    return max(_seconds(rid, "end", end), start)


def _whole_segments(result: list[dict[str, Any]], asr: Transcript) -> list[Segment]:
    """Lines map back onto ASR segment times when the reviewer kept one line per segment; else one span."""
    texts = [
        t for item in result_items(result) if item.get("from_name") == TEXT for t in strings(item["value"].get("text"))
    ]
    lines = [" ".join(line.split()) for text in texts for line in text.splitlines() if line.strip()]
    if not lines:
        return []  # the reviewer emptied the box: nothing was said, so no cue, as an emptied segment writes none
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
