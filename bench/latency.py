"""Review latency: a reviewer submits -> the corrected transcript is in S3, with and without webhooks, same run.

    .venv/bin/python -m bench.latency [--submissions 50] [--spacing 0.5] [--export-interval 15]

A real `syncd run` daemon serves a project of imported tasks (built directly: transcription is not what is measured).
Annotations are submitted through the Label Studio API, one every ``--spacing`` seconds, and a watcher lists the
bucket every 50 ms to see when each ``.transcript.json`` (written last, so it marks a complete export) appears.

1. polling only (the reference path): the daemon finds reviews on its export poll (``--export-interval``, the
   default 15 s); latency is about half the interval on average.
2. webhooks: the daemon registered a Label Studio webhook and exports the task as soon as it is called.
   Target: p95 <= 2 s.

It starts its own stack (Label Studio, SeaweedFS, moto) in a temporary folder; the daemons' logs go to files there.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench._tasks import put_audio, seed_tasks
from devstack import VENV_BIN, Stack, free_port, running_stack
from syncd.config import parse
from syncd.domain.transcript import Segment, Transcript, Word
from syncd.labelstudio import as_dict
from syncd.services import Services

BUCKET = "bench-latency"
PROJECT = "bench latency"
SECRET = "bench-latency-webhook-secret"


def transcript(i: int) -> Transcript:
    words = [
        Word(k * 0.4, k * 0.4 + 0.3, w, 0.6 + (i % 30) / 100) for k, w in enumerate(f"call {i} about my bill".split())
    ]
    return Transcript(
        (Segment.from_words(words, speaker="spk_0"),), engine="aws", model="amazon-transcribe", job=f"j{i}"
    )


def config(stack: Stack, workdir: Path, export_interval: float, port: int, webhook: bool) -> str:
    public = f'public_url = "http://127.0.0.1:{port}"' if webhook else ""
    return f"""\
[labelstudio]
url = "{stack.labelstudio.url}"
project = "{PROJECT}"
[s3]
endpoint_url = "{stack.s3.url}"
[[sources]]
bucket = "{BUCKET}"
[transcriber]
engine = "aws"
[transcriber.aws]
endpoint_url = "{stack.moto.url}"
[schedule]
export_interval = {export_interval}
[state]
path = "{workdir / "state.db"}"
[http]
listen = "127.0.0.1:{port}"
{public}
[log]
format = "json"
"""


def build_tasks(svc: Services, first: int, count: int) -> dict[int, str]:
    """Imported tasks and the state rows the import_ would have left; task id -> key of its transcript .json."""
    objects = put_audio(svc, BUCKET, [f"calls/{i:04d}.mp3" for i in range(first, first + count)])
    return {
        task_id: obj.key.replace(".mp3", ".transcript.json") for obj, task_id in seed_tasks(svc, objects, transcript)
    }


class Watcher(threading.Thread):
    """Lists the bucket every 50 ms and notes when each transcript .json first appears."""

    def __init__(self, s3: Any) -> None:
        super().__init__(daemon=True)
        self.s3 = s3
        self.seen: dict[str, float] = {}
        self.done = threading.Event()

    def run(self) -> None:
        paginator = self.s3.get_paginator("list_objects_v2")
        while not self.done.is_set():
            now = time.monotonic()
            for page in paginator.paginate(Bucket=BUCKET, Prefix="calls/"):
                for obj in page.get("Contents", ()):
                    if obj["Key"].endswith(".transcript.json"):
                        self.seen.setdefault(obj["Key"], now)
            time.sleep(0.05)


def start_daemon(workdir: Path, stack: Stack, text: str, name: str) -> subprocess.Popen[bytes]:
    path = workdir / f"{name}.toml"
    path.write_text(text)
    log = (workdir / f"{name}.log").open("wb")
    proc = subprocess.Popen(
        [str(VENV_BIN / "syncd"), "run", "-c", str(path)],
        env={**os.environ, **stack.env(), "SYNCD_WEBHOOK_SECRET": SECRET},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while b"daemon.started" not in (workdir / f"{name}.log").read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"syncd run did not start; see {workdir / f'{name}.log'}")
        time.sleep(0.1)
    return proc


def measure(stack: Stack, sdk: Any, tasks: dict[int, str], spacing: float, timeout: float) -> list[float]:
    """Submit one annotation per task, `spacing` seconds apart; seconds until each transcript is in S3."""
    watcher = Watcher(stack.s3.client())
    watcher.start()
    submitted: dict[str, float] = {}
    for task_id, key in tasks.items():
        task = as_dict(sdk.tasks.get(str(task_id)))
        result = task["predictions"][0]["result"]
        submitted[key] = time.monotonic()
        sdk.annotations.create(id=task_id, result=result, was_cancelled=False)
        time.sleep(spacing)
    deadline = time.monotonic() + timeout
    while set(submitted) - set(watcher.seen) and time.monotonic() < deadline:
        time.sleep(0.1)
    watcher.done.set()
    missing = set(submitted) - set(watcher.seen)
    if missing:
        raise RuntimeError(f"{len(missing)} transcripts never appeared, e.g. {sorted(missing)[:3]}")
    return [watcher.seen[key] - at for key, at in submitted.items()]


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--submissions", type=int, default=50)
    parser.add_argument("--spacing", type=float, default=0.5, help="seconds between two submissions")
    parser.add_argument("--export-interval", type=float, default=15.0, help="the daemon's export poll (seconds)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="syncd-bench-") as tmp, running_stack(Path(tmp) / "stack") as stack:
        workdir = Path(tmp)
        os.environ.update(stack.env())
        stack.s3.client().create_bucket(Bucket=BUCKET)
        port = free_port()
        settings = parse({"labelstudio": {"url": stack.labelstudio.url, "project": PROJECT}, **_plain(stack, workdir)})
        svc = Services.build(settings)
        svc.projects.ensure()
        n = args.submissions
        polled_tasks, hooked_tasks = build_tasks(svc, 0, n), build_tasks(svc, n, n)
        svc.close()
        sdk = stack.labelstudio.client()
        rows = []
        for name, tasks, webhook in (("polling only", polled_tasks, False), ("webhooks", hooked_tasks, True)):
            text = config(stack, workdir, args.export_interval, port, webhook)
            proc = start_daemon(workdir, stack, text, name.replace(" ", "-"))
            try:
                latencies = measure(stack, sdk, tasks, args.spacing, timeout=args.export_interval * 3 + 30)
            finally:
                proc.terminate()
                proc.wait(60)
            rows.append((name, latencies))
        report(rows, args)


def _plain(stack: Stack, workdir: Path) -> dict[str, Any]:
    return {
        "s3": {"endpoint_url": stack.s3.url},
        "sources": [{"bucket": BUCKET}],
        "transcriber": {"engine": "aws", "aws": {"endpoint_url": stack.moto.url}},
        "state": {"path": str(workdir / "state.db")},
        "http": {"listen": ""},
    }


def report(rows: list[tuple[str, list[float]]], args: argparse.Namespace) -> None:
    print(f"\nsubmit -> transcript in S3, {args.submissions} submissions each, export poll {args.export_interval:g} s")
    print(f"{'path':<28}{'p50 s':>8}{'p95 s':>8}{'max s':>8}")
    figures = {}
    for name, latencies in rows:
        p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
        figures[name] = p95
        print(f"{name:<28}{p50:>8.2f}{p95:>8.2f}{max(latencies):>8.2f}")
    ratio = figures["polling only"] / figures["webhooks"]
    verdict = "met" if figures["webhooks"] <= 2.0 else "MISSED"
    print(f"webhooks p95 is {ratio:.1f}x lower than polling only; target p95 <= 2 s: {verdict}")


if __name__ == "__main__":
    main()
