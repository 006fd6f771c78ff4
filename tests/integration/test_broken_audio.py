"""Broken and extreme audio by the dozen through the local engine's real decode path (``probe``, ``blocks``,
``windows``, as ``transcribers.whisper`` runs them before the model): each file decodes to its true length or fails
with an ``AudioError`` that says why; none hangs past the stage timeout, and memory stays bounded whatever the
file's length. Decoding runs in a fresh process, so its peak RSS is the decoder's."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

from devstack import Stack, run_syncd
from devstack.broken_audio import Sample, corpus
from syncd.config.schema import ScheduleSettings
from syncd.labelstudio import as_dict
from syncd.state import StateStore

MEMORY_BOUND_MB = 400
"""Peak RSS of the decoding process, interpreter and imports included (about 100 MB of it)."""
TOLERANCE = 0.05
"""Seconds a decoded length may differ from the real one (one resampler block)."""

WORKER = """
import json, resource, signal, sys, time
from pathlib import Path
from syncd.audio.decode import AudioError, probe, blocks, windows
from syncd.config.schema import WhisperSettings
from syncd.transcribers.whisper import CUT_SEARCH_S
window = WhisperSettings().window_seconds
limit = float(sys.argv[1])
def give_up(*_):
    raise TimeoutError(f"still decoding after {limit} s")
signal.signal(signal.SIGALRM, give_up)
for name in sys.argv[2:]:
    started = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, limit)
    out = {"name": name}
    try:
        info = probe(Path(name))
        channels = 2 if info.channels >= 2 else 1
        samples = 0
        for w in windows(blocks(Path(name), channels), window, CUT_SEARCH_S):
            samples = w.offset + int(w.samples.shape[1])
        out |= {"seconds": samples / 16000, "probed": info.duration}
    except Exception as exc:
        out |= {"error": type(exc).__name__, "reason": str(exc)[:200]}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    out |= {"wall": time.monotonic() - started, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    print(json.dumps(out), flush=True)
"""


def _decode(samples: list[Sample], limit: float) -> dict[str, dict[str, object]]:
    names = [str(s.path) for s in samples]
    run = subprocess.run(
        [sys.executable, "-c", WORKER, str(limit), *names], capture_output=True, text=True, timeout=limit * 4 + 600
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return {r["name"]: r for r in map(json.loads, run.stdout.splitlines())}


def test_broken_audio_decodes_to_its_length_or_fails_by_name_within_time_and_memory(tmp_path: Path) -> None:
    samples = corpus(tmp_path / "corpus", long_minutes=90)
    limit = ScheduleSettings().stage_timeout
    results = _decode(samples, limit)
    outcomes: Counter[str] = Counter()
    wrong = []
    for sample in samples:
        got = results[str(sample.path)]
        assert got.get("error") in (None, "AudioError"), (sample, got)  # anything else is a bug, not the input's
        assert float(got["wall"]) < limit, (sample, got)
        if "error" in got:
            outcomes[f"{sample.kind}: failed ({str(got['reason']).split(':', 1)[0][:40]})"] += 1
            if sample.seconds is not None and not sample.at_most:
                wrong.append((sample.path.name, "decodable audio refused", got))
            continue
        if sample.refused:
            wrong.append((sample.path.name, f"decoded to {float(got['seconds']):.0f} s instead of refused", got))  # type: ignore[arg-type]
        seconds = float(got["seconds"])  # type: ignore[arg-type]
        outcomes[f"{sample.kind}: decoded"] += 1
        if sample.seconds is None:
            continue
        if sample.at_most:
            if seconds > sample.seconds + TOLERANCE:
                wrong.append((sample.path.name, f"decoded {seconds:.2f} s of at most {sample.seconds:.2f}", got))
        elif abs(seconds - sample.seconds) > max(TOLERANCE, 0.002 * sample.seconds):
            wrong.append((sample.path.name, f"decoded {seconds:.2f} s of {sample.seconds:.2f}", got))
    peak = max(float(r["rss_mb"]) for r in results.values())  # type: ignore[arg-type]
    slowest = max(results.values(), key=lambda r: float(r["wall"]))  # type: ignore[arg-type]
    print(f"{len(samples)} files: " + ", ".join(f"{k} {n}" for k, n in sorted(outcomes.items())))
    print(f"peak RSS {peak:.0f} MB; slowest {Path(str(slowest['name'])).name} {float(slowest['wall']):.1f} s")  # type: ignore[arg-type]
    assert wrong == []
    assert peak < MEMORY_BOUND_MB, peak


E2E = {
    "intact.mp3": "task",
    "truncated-{half}.mp3": "task",
    "stereo.mp3": "task",
    "rate-8000.wav": "task",
    "lies-longer.wav": "task",
    "noise-body.wav": "task",
    "one-sample.wav": "task",
    "lies-rate.wav": "failed",
    "noise-body.flac": "failed",
    "garbage-0.wav": "failed",
    "truncated-12.mp3": "failed",
}
"""A sample of the corpus through the whole forward path, and what each must become."""


def test_a_sample_of_the_corpus_becomes_tasks_of_their_length_or_failures_with_reasons(
    stack: Stack, s3: Any, ls: Any, bucket: str, config_file: Path, tmp_path: Path
) -> None:
    samples = {s.path.name: s for s in corpus(tmp_path / "corpus", long_minutes=0)}
    half = next(
        n
        for n in samples
        if n.startswith("truncated-")
        and n.endswith(".mp3")
        and n not in ("truncated-1.mp3", "truncated-12.mp3", "truncated-44.mp3", "truncated-200.mp3")
    )
    chosen = {name.format(half=half.split("-")[1].split(".")[0]): want for name, want in E2E.items()}
    for name in chosen:
        s3.upload_file(str(samples[name].path), bucket, f"calls/{name}")
    run_syncd(["once", "-c", str(config_file)], stack)

    state = StateStore(str(tmp_path / "state.db"))
    recordings = {r.key.removeprefix("calls/"): r for r in state.recordings.all()}
    assert sorted(recordings) == sorted(chosen), "every file is recorded: none lost"
    tasks = {t["data"]["key"]: t for t in _tasks(ls, stack, config_file)}
    for name, want in chosen.items():
        rec, sample = recordings[name], samples[name]
        if want == "failed":
            assert rec.status == "failed" and rec.reason, (name, rec.status, rec.reason)
            assert f"calls/{name}" not in tasks, name
            continue
        assert rec.status == "imported", (name, rec.status, rec.reason)
        duration = float(tasks[f"calls/{name}"]["data"]["duration"])
        if sample.seconds is not None:
            assert duration <= sample.seconds + 0.1 and (sample.at_most or duration >= sample.seconds - 0.1), (
                name,
                duration,
                sample.seconds,
            )
    print({name: (r.status, (r.reason or "")[:60]) for name, r in recordings.items()})


def _tasks(ls: Any, stack: Stack, config_file: Path) -> list[dict[str, Any]]:
    title = tomllib.loads(config_file.read_text())["labelstudio"]["project"]
    project = next(p.id for p in ls.projects.list() if p.title == title)
    return [as_dict(t) for t in ls.tasks.list(project=project, fields="all", resolve_uri=False)]
