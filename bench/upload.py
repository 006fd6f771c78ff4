"""Upload -> reviewable task: a steady stream of calls through S3 events and local whisper, under `syncd run`.

    .venv/bin/python -m bench.upload [--rate 1] [--minutes 2] [--drain 120] [--scan-interval 1]
        [--transcribe-interval 1] [--import-interval 5] [--workers 0] [--cpu-threads 0]

espeak-ng speaks a pool of two-voice calls of 20-60 s (devstack.audio.long_call); they are uploaded to an evented
bucket on moto (S3 -> SQS notifications, as in production with an event queue), ``--rate`` uploads per second for
``--minutes``, each under a new key. One `syncd run` daemon (local whisper, defaults unless a flag says otherwise) reads
the queue and takes each call to a Label Studio task. A recording is reviewable when its import batch has finished:
the daemon logs ``import.batch`` after the tasks and their predictions are committed in Label Studio (it re-reads the
batch and restores any prediction Label Studio dropped); the bench checks at the end that every task it counted has
its prediction.

Per recording, from the daemon's JSON log (timestamps of its per-recording events) against the upload time:
wait for the event (upload -> ``audio.discovered``), wait for a worker (-> ``transcription.decoding``), transcription
(-> ``transcription.completed``), wait for the import pacing (-> the batch's start), the import (-> ``import.batch``).
Target: p95 <= the recording's own length + 10 s while the machine keeps up. Every 15 s it prints the queue (uploaded,
waiting per state) and the backlog's age from the daemon's /metrics (``syncd_oldest_recording_timestamp_seconds``):
a machine that cannot keep up shows both growing. When uploads stop it waits up to ``--drain`` seconds for the rest.
It starts its own stack (Label Studio, SeaweedFS, moto) in a temporary folder; the daemon's log goes to a file there.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from bench._cpu import machine
from devstack import (
    VENV_BIN,
    Stack,
    call_sentences,
    evented_bucket,
    free_port,
    log_events,
    long_call,
    on_moto_events,
    running_stack,
)

POOL = 10
LENGTHS = (20.0, 56.0)
STATES = ("discovered", "transcribing", "transcribed", "importing")


@dataclass
class Call:
    key: str
    seconds: float
    uploaded: float
    marks: dict[str, float] = field(default_factory=dict)


def make_pool(folder: Path, count: int) -> list[tuple[Path, float]]:
    """``count`` two-voice calls whose lengths spread evenly over 20-60 s; each with its length in seconds."""
    pool = []
    for n in range(count):
        target = LENGTHS[0] + (LENGTHS[1] - LENGTHS[0]) * n / max(count - 1, 1)
        path = folder / f"call{n:02d}.flac"
        sentences = call_sentences(12, seed=n)
        turns = long_call(path, sentences)
        keep = next((k for k in range(1, len(turns) + 1) if sum(turns[:k]) >= target), len(turns))
        pool.append((path, sum(long_call(path, sentences[:keep]))))
    return pool


def config(stack: Stack, work: Path, bucket: str, queue: str, port: int, args: argparse.Namespace) -> str:
    whisper = f"[transcriber.whisper]\nworkers = {args.workers}\ncpu_threads = {args.cpu_threads}\n"
    schedule = (
        f"[schedule]\nscan_interval = {args.scan_interval}\ntranscribe_interval = {args.transcribe_interval}\n"
        f"import_interval = {args.import_interval}\n"
    )
    text = stack.config(work, bucket, project="bench upload", extra=whisper + schedule)
    text = text.replace('listen = ""', f'listen = "127.0.0.1:{port}"')
    return on_moto_events(text, stack, bucket, queue)


class Metrics(threading.Thread):
    """Scrapes /metrics every ``every`` seconds: recordings waiting per state and the oldest one's age."""

    def __init__(self, url: str, started: float, uploads: list[Call], every: float = 15.0) -> None:
        super().__init__(daemon=True)
        self.url, self.started, self.uploads, self.every = url, started, uploads, every
        self.rows: list[tuple[float, int, dict[str, float], dict[str, float]]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.every):
            try:
                text = requests.get(self.url, timeout=5).text
            except requests.RequestException:
                continue
            now = time.time()
            counts = _family(text, "syncd_recordings")
            oldest = {s: now - t for s, t in _family(text, "syncd_oldest_recording_timestamp_seconds").items()}
            self.rows.append((now - self.started, len(self.uploads), counts, oldest))


def _family(text: str, name: str) -> dict[str, float]:
    found = re.findall(rf'^{name}{{state="(\w+)"}} (\S+)$', text, re.M)
    return {state: float(value) for state, value in found}


def stream(
    s3: Any, bucket: str, pool: list[tuple[Path, float]], rate: float, minutes: float, calls: list[Call]
) -> None:
    """Upload pool files round-robin at ``rate`` per second, on a fixed timetable (a slow upload does not drift it)."""
    count = int(rate * minutes * 60)
    begin = time.monotonic()
    for n in range(count):
        time.sleep(max(0.0, begin + n / rate - time.monotonic()))
        path, seconds = pool[n % len(pool)]
        key = f"calls/{n:05d}-{path.name}"
        uploaded = time.time()
        s3.upload_file(str(path), bucket, key)
        calls.append(Call(key, seconds, uploaded))


def read_marks(log: Path, calls: list[Call]) -> None:
    """Each call's event times (unix seconds) from the daemon's JSON log."""
    by_key = {c.key: c for c in calls}
    events = log_events(log.read_text(errors="replace"))
    names = {"audio.discovered": "found", "transcription.decoding": "decoding", "transcription.completed": "done"}
    batches = [e for e in events if e["event"] == "import.batch"]
    for e in events:
        call = by_key.get(e.get("key", ""))
        if call is None:
            continue
        at = _ts(e)
        if e["event"] in names:
            call.marks.setdefault(names[e["event"]], at)
        elif e["event"] == "task.imported":
            batch = next((b for b in batches if _ts(b) >= at), None)
            if batch is not None:
                call.marks["import_start"] = _ts(batch) - float(batch["seconds"])
                call.marks["reviewable"] = _ts(batch)


def _ts(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00")).timestamp()


def percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


PHASES = (
    ("wait for the event", "uploaded", "found"),
    ("wait for a worker", "found", "decoding"),
    ("transcription", "decoding", "done"),
    ("wait for the import pacing", "done", "import_start"),
    ("the import", "import_start", "reviewable"),
)


def report(calls: list[Call], metrics: Metrics, args: argparse.Namespace, settings: str) -> None:
    done = [c for c in calls if "reviewable" in c.marks]
    print(f"\n{machine()}; {settings}")
    print(f"\n{'t (s)':>6}{'uploaded':>9}  waiting by state ({', '.join(STATES)}){'imported':>10}{'oldest (s)':>12}")
    for t, uploaded, counts, oldest in metrics.rows:
        waiting = " ".join(f"{int(counts.get(s, 0)):>4}" for s in STATES)
        age = max((oldest.get(s, 0.0) for s in STATES), default=0.0)
        print(f"{t:>6.0f}{uploaded:>9}  {waiting:<55}{int(counts.get('imported', 0)):>10}{age:>12.0f}")
    print("oldest: time() - syncd_oldest_recording_timestamp_seconds, the longest-waiting recording's age")
    print(f"\n{len(calls)} uploads, {len(done)} reviewable within the run; {len(calls) - len(done)} still waiting")
    if not done:
        return
    latency = [c.marks["reviewable"] - c.uploaded for c in done]
    over = [c.marks["reviewable"] - c.uploaded - c.seconds for c in done]
    print(f"{'upload -> reviewable task (s)':<36}{'p50':>8}{'p95':>8}{'max':>8}")
    print(f"{'latency':<36}{percentile(latency, 50):>8.1f}{percentile(latency, 95):>8.1f}{max(latency):>8.1f}")
    print(f"{'latency - own length':<36}{percentile(over, 50):>8.1f}{percentile(over, 95):>8.1f}{max(over):>8.1f}")
    for name, a, b in PHASES:
        spans = [_mark(c, b) - _mark(c, a) for c in done]
        print(f"{'  ' + name:<36}{percentile(spans, 50):>8.1f}{percentile(spans, 95):>8.1f}{max(spans):>8.1f}")
    kept = sum(1 for o in over if o <= 10)
    print(f"within own length + 10 s: {kept}/{len(done)}; target: p95 of (latency - length) <= 10 s")


def _mark(call: Call, name: str) -> float:
    return call.uploaded if name == "uploaded" else call.marks.get(name, call.marks["reviewable"])


def check_predictions(stack: Stack, count: int) -> None:
    """Every reviewable task has its prediction in Label Studio."""
    ls = stack.labelstudio
    projects = ls.api("GET", "/api/projects/").json()
    project = next(p for p in projects.get("results", projects) if p["title"] == "bench upload")
    tasks = ls.api("GET", f"/api/tasks/?project={project['id']}&page_size=10000&fields=all").json()["tasks"]
    without = [t["id"] for t in tasks if not t.get("predictions")]
    print(f"Label Studio: {len(tasks)} tasks, {len(without)} without a prediction (counted reviewable: {count})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=1.0, help="uploads per second (default 1)")
    parser.add_argument("--minutes", type=float, default=2.0, help="minutes of uploads (default 2)")
    parser.add_argument("--drain", type=float, default=120.0, help="seconds to wait for the rest afterwards")
    parser.add_argument("--scan-interval", type=float, default=1.0, help="schedule.scan_interval (queue reads)")
    parser.add_argument("--transcribe-interval", type=float, default=1.0, help="schedule.transcribe_interval")
    parser.add_argument("--import-interval", type=float, default=5.0, help="schedule.import_interval (pacing)")
    parser.add_argument("--workers", type=int, default=0, help="transcriber.whisper.workers (0: syncd's default)")
    parser.add_argument("--cpu-threads", type=int, default=0, help="transcriber.whisper.cpu_threads (0: default)")
    args = parser.parse_args()
    settings = (
        f"rate {args.rate}/s for {args.minutes} min, scan_interval {args.scan_interval}, transcribe_interval "
        f"{args.transcribe_interval}, import_interval {args.import_interval}, workers {args.workers or 'auto'} x "
        f"cpu_threads {args.cpu_threads or 'auto'}, tiny.en int8 beam 5"
    )
    with tempfile.TemporaryDirectory(prefix="syncd-bench-upload-") as tmp:
        work = Path(tmp)
        pool = make_pool(work / "pool", POOL)
        print(f"pool: {POOL} calls, {min(s for _, s in pool):.0f}-{max(s for _, s in pool):.0f} s")
        with running_stack(work / "stack") as stack:
            bucket, queue = evented_bucket(stack.moto, "upload")
            port = free_port()
            path = work / "syncd.toml"
            path.write_text(config(stack, work, bucket, queue, port, args))
            log = work / "syncd.log"
            with log.open("wb") as out:
                env = {**os.environ, **stack.env()}
                proc = subprocess.Popen(
                    [str(VENV_BIN / "syncd"), "run", "-c", str(path)], env=env, stdout=out, stderr=subprocess.STDOUT
                )
            try:
                wait_started(log, proc)
                calls: list[Call] = []
                metrics = Metrics(f"http://127.0.0.1:{port}/metrics", time.time(), calls)
                metrics.start()
                stream(stack.moto.client("s3"), bucket, pool, args.rate, args.minutes, calls)
                deadline = time.monotonic() + args.drain
                while time.monotonic() < deadline and imported(log) < len(calls):
                    time.sleep(2)
                metrics.done.set()
                read_marks(log, calls)
                report(calls, metrics, args, settings)
                check_predictions(stack, sum(1 for c in calls if "reviewable" in c.marks))
            finally:
                proc.terminate()
                proc.wait(60)


def wait_started(log: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while b"daemon.started" not in log.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"syncd run did not start:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)


def imported(log: Path) -> int:
    return sum(1 for e in log_events(log.read_text(errors="replace")) if e["event"] == "task.imported")


if __name__ == "__main__":
    main()
