"""Doubtful-word flags measured through the product: which ``review.flag_words_below`` earns its place.

    .venv/bin/python -m bench.flags [--recordings 40] [--seconds 25] [--flag-below 0.4]

Recordings are spoken by espeak-ng from known sentences: 6 voices, 120-280 words per minute, white noise mixed in
at 0 to 0.2 of full scale (mp3). syncd transcribes them with its defaults (faster-whisper, the bundled tiny.en, int8,
beam 5, word timestamps) and imports them into a Label Studio project on the transcript layout. Each task is then
"reviewed" through Label Studio's API as a careful reviewer would: every segment's text set to what the voice said
there (the script aligned to the ASR words), a segment with nothing said emptied. `syncd once` exports the reviews
and `syncd report` scores the flags: a flag (a word below the threshold) is right when the reviewer changed that
word. Beside the report, for all recordings and apart for the easy ones (no or faint noise, up to 180 wpm) and the
hard ones, this prints per threshold the flags' precision and recall, the share of segments the screen marks
``[check]`` (a low segment confidence or a flagged word) and the WER of those and of the rest, shown as confident.
It starts its own stack (Label Studio, SeaweedFS, moto) in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import jiwer

from bench._cpu import machine
from bench.transcribe import SCRIPT
from devstack import VENV_BIN, Stack, call_sentences, log_events, running_stack
from syncd.commands.report import SWEEP, Flags, matched_texts
from syncd.domain.formats import changed_words, normalize_words, word_errors
from syncd.domain.transcript import Segment, Transcript
from syncd.labelstudio import layouts
from syncd.state import StateStore

BUCKET = "bench-flags"
VOICES = ("en-us", "en-gb", "en-us+f3", "en-gb-scotland", "en-us+m3", "en+f2")
SPEEDS = (120, 150, 180, 210, 245, 280)
NOISE = (0.0, 0.05, 0.1, 0.15, 0.2)


def make_recordings(folder: Path, count: int, seconds: float) -> dict[str, str]:
    """mp3 name -> the text it speaks; voice, speed and noise vary per recording."""
    rng = random.Random(21)
    pool = [*SCRIPT, *call_sentences(60, seed=5)]
    folder.mkdir(parents=True, exist_ok=True)
    scripts = {}
    for n in range(count):
        voice, speed, noise = VOICES[n % len(VOICES)], SPEEDS[(n // 2) % len(SPEEDS)], NOISE[n % len(NOISE)]
        words = seconds * speed / 60
        sentences: list[str] = []
        while sum(len(s.split()) for s in sentences) < words:
            sentences.append(rng.choice(pool))
        text = " ".join(sentences)
        wav, mp3 = folder / f"f{n:02d}.wav", folder / f"f{n:02d}-{voice}-{speed}wpm-noise{noise}.mp3"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(wav), text], check=True)
        if noise:
            hiss = folder / "noise.wav"
            subprocess.run(
                ["sox", str(wav), str(hiss), "synth", "whitenoise", "vol", str(noise)], check=True, capture_output=True
            )
            subprocess.run(["sox", "-m", str(wav), str(hiss), str(mp3)], check=True, capture_output=True)
            hiss.unlink()
        else:
            subprocess.run(["sox", str(wav), str(mp3)], check=True, capture_output=True)
        wav.unlink()
        scripts[mp3.name] = text
    return scripts


def segment_truths(segment_texts: list[str], script: str) -> list[str]:
    """What the voice said in each ASR segment: the script's words aligned to the ASR words (jiwer's alignment); a
    script word the ASR missed goes with the segment of the ASR word before it."""
    owner = [i for i, text in enumerate(segment_texts) for _ in normalize_words(text)]
    hyp = [w for text in segment_texts for w in normalize_words(text)]
    ref = normalize_words(script)
    said: list[list[str]] = [[] for _ in segment_texts]
    if not hyp:
        return ["" for _ in segment_texts]
    for chunk in jiwer.process_words(" ".join(ref), " ".join(hyp)).alignments[0]:
        words = ref[chunk.ref_start_idx : chunk.ref_end_idx]
        if chunk.type in ("equal", "substitute"):
            for k, word in enumerate(words):
                said[owner[chunk.hyp_start_idx + k]].append(word)
        elif chunk.type == "delete":
            said[owner[max(chunk.hyp_start_idx - 1, 0)]].extend(words)
    return [" ".join(w) for w in said]


def syncd(stack: Stack, *args: str) -> str:
    proc = subprocess.run(
        [str(VENV_BIN / "syncd"), *args], env={**os.environ, **stack.env()}, capture_output=True, text=True, check=True
    )
    return proc.stdout


def review_all(stack: Stack, project: int, scripts: dict[str, str]) -> int:
    """Every task reviewed to what was said; returns the tasks reviewed."""
    sdk = stack.labelstudio.client()
    tasks = [t for t in sdk.tasks.list(project=project, fields="all", resolve_uri=False)]
    for task in tasks:
        name = Path(task.data["key"]).name
        predicted = sorted(task.predictions[0].result, key=lambda r: int(r["from_name"].split("_")[1]))
        texts = [r["value"]["text"][0] for r in predicted]
        truths = segment_truths(texts, scripts[name])
        result = [
            {"from_name": r["from_name"], "to_name": layouts.AUDIO, "type": "textarea", "value": {"text": [t]}}
            for r, t in zip(predicted, truths, strict=True)
            if t
        ]
        sdk.annotations.create(id=task.id, result=result, was_cancelled=False)
    return len(tasks)


def condition(key: str) -> str:
    """ "easy" (no or faint noise, up to 180 words per minute) or "hard", read from the recording's name."""
    speed = int(key.split("-")[-2].removesuffix("wpm"))
    noise = float(key.rsplit("noise", 1)[1].removesuffix(".mp3"))
    return "easy" if noise <= 0.05 and speed <= 180 else "hard"


def screen_figures(state: Path) -> dict[str, Any]:
    """Per condition ("all", "easy", "hard"), per threshold: flag precision and recall as `syncd report` counts
    them, the share of segments the screen marks [check] (a low segment confidence or a flagged word), and the WER
    of the marked and of the confident rest."""
    groups: dict[str, list[tuple[Segment, str]]] = {"all": [], "easy": [], "hard": []}
    flags = {name: Flags(name) for name in groups}
    for row in StateStore(state).reports.reviewed_segments():
        asr = Transcript.from_dict(json.loads(row["transcript"]))
        reviewed = [Segment(**s) for s in json.loads(row["review"])]
        pairs = list(zip(asr.segments, matched_texts(list(asr.segments), reviewed, 0.0), strict=True))
        for name in ("all", condition(row["key"])):
            groups[name] += [(seg, text or "") for seg, text in pairs]
            flags[name].audio_seconds += float(row["duration"] or 0.0)
            for seg, text in pairs:
                changed = changed_words([w.text for w in seg.words], text or "")
                flags[name].scored += [
                    (w.confidence, bool(c))
                    for w, c in zip(seg.words, changed, strict=True)
                    if c is not None and w.confidence is not None
                ]
    out: dict[str, Any] = {}
    for name, pairs in groups.items():
        rows = []
        for below in SWEEP:
            marked, clear = [0, 0, 0], [0, 0, 0]  # segments, word errors, reference words
            for seg, text in pairs:
                errors, words = word_errors(text, seg.text)
                group = marked if layouts.to_check(seg, below) else clear
                group[0], group[1], group[2] = group[0] + 1, group[1] + errors, group[2] + words
            total = marked[0] + clear[0]
            rows.append(
                flags[name].at(below)
                | {
                    "marked_share": round(marked[0] / total, 3) if total else None,
                    "marked_wer": round(marked[1] / marked[2], 3) if marked[2] else None,
                    "confident_wer": round(clear[1] / clear[2], 3) if clear[2] else None,
                }
            )
        errors = sum(word_errors(text, seg.text)[0] for seg, text in pairs)
        words = sum(word_errors(text, seg.text)[1] for seg, text in pairs)
        out[name] = {"segments": len(pairs), "wer": round(errors / words, 3) if words else None, "sweep": rows}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recordings", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=25.0, help="speech per recording, about")
    parser.add_argument("--flag-below", type=float, default=0.4, help="review.flag_words_below for the run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-flags-") as tmp, running_stack(Path(tmp) / "stack") as stack:
        work = Path(tmp)
        started = time.perf_counter()
        scripts = make_recordings(work / "audio", args.recordings, args.seconds)
        s3 = stack.s3.client()
        s3.create_bucket(Bucket=BUCKET)
        for name in scripts:
            s3.upload_file(str(work / "audio" / name), BUCKET, f"calls/{name}")
        config = work / "syncd.toml"
        extra = f"[review]\nflag_words_below = {args.flag_below}\n"
        config.write_text(stack.config(work, BUCKET, project="bench flags", layout="transcript", extra=extra))
        made = time.perf_counter()
        events = log_events(syncd(stack, "once", "-c", str(config)))
        imported = sum(e["event"] == "task.imported" for e in events)
        transcribed = time.perf_counter()
        project = next(int(p.id) for p in stack.labelstudio.client().projects.list() if p.title == "bench flags")
        reviewed = review_all(stack, project, scripts)
        syncd(stack, "once", "-c", str(config))
        report = json.loads(syncd(stack, "report", "-c", str(config), "--json"))
        text = syncd(stack, "report", "-c", str(config))
        screen = screen_figures(work / "state.db")
    print(machine())
    print(
        f"{args.recordings} recordings ({sum(len(s.split()) for s in scripts.values())} words said), made in"
        f" {made - started:.0f} s; transcribed and imported {imported} in {transcribed - made:.0f} s; {reviewed}"
        " reviewed"
    )
    print(text)
    for name, group in screen.items():
        print(
            f"\n{name}: {group['segments']} segments, WER {_pct(group['wer'])}; per threshold: flags (precision,"
            " recall, per minute), then the segments the screen marks [check] and the WER of those and of the rest"
        )
        print(
            f"{'flag below':<12}{'precision':>10}{'recall':>8}{'per min':>9}{'marked':>8}{'WER marked':>12}"
            f"{'WER rest':>10}"
        )
        for s in group["sweep"]:
            share = "-" if s["marked_share"] is None else f"{s['marked_share'] * 100:.0f}%"
            print(
                f"{s['below']:<12.2f}{_ratio(s['precision']):>10}{_ratio(s['recall']):>8}{s['per_minute'] or 0:>9.1f}"
                f"{share:>8}{_pct(s['marked_wer']):>12}{_pct(s['confident_wer']):>10}"
            )
    print(json.dumps({"flags": report.get("flags"), "segment_bins": report.get("segment_bins"), "screen": screen}))


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


if __name__ == "__main__":
    main()
