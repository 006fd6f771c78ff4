"""Review latency: a reviewer submits -> the corrected transcript is in S3, with and without webhooks, with one
instance and with three, same run.

    .venv/bin/python -m bench.latency [--submissions 50] [--spacing 0.5] [--export-interval 15] [--instances 3]

A real `syncd run` daemon serves a project of imported tasks (built directly: transcription is not what is measured).
Annotations are submitted through the Label Studio API, one every ``--spacing`` seconds, and a watcher lists the
bucket every 50 ms to see when each ``.transcript.json`` (written last, so it marks a complete export) appears.

1. polling only (the reference path): the daemon finds reviews on its export poll (``--export-interval``, the
   default 15 s); latency is about half the interval on average.
2. webhooks: the daemon registered a Label Studio webhook and exports the task as soon as it is called.
   Target: p95 <= 2 s.
3. webhooks, three instances: ``--instances`` daemons share one PostgreSQL state (Debian's server, started here) and
   sit behind a round-robin proxy, the webhook's address, as behind a load balancer: most deliveries reach an
   instance that does not hold the export lease and wait in the state for the holder's webhook job
   (``schedule.webhook_interval``). Target: p95 within 1 s of one instance's.

It starts its own stack (Label Studio, SeaweedFS, moto) in a temporary folder; the daemons' logs go to files there.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from bench._tasks import put_audio, seed_tasks
from devstack import PG_PASSWORD, VENV_BIN, Postgres, Stack, free_port, log_events, running_stack
from syncd.config import parse
from syncd.domain.transcript import Segment, Transcript, Word
from syncd.labelstudio import as_dict
from syncd.services import Services

BUCKET = "bench-latency"
PROJECT = "bench latency"
FLEET_PROJECT = "bench latency fleet"
SECRET = "bench-latency-webhook-secret"


def transcript(i: int) -> Transcript:
    words = [
        Word(k * 0.4, k * 0.4 + 0.3, w, 0.6 + (i % 30) / 100) for k, w in enumerate(f"call {i} about my bill".split())
    ]
    return Transcript(
        (Segment.from_words(words, speaker="spk_0"),), engine="aws", model="amazon-transcribe", job=f"j{i}"
    )


def config(
    stack: Stack,
    workdir: Path,
    export_interval: float,
    port: int,
    webhook: bool,
    *,
    public: str = "",
    fleet: tuple[str, str] | None = None,
) -> str:
    """One daemon's config; ``fleet`` (instance name, PostgreSQL url) makes it one of several sharing that state,
    with the webhook at ``public`` (the proxy)."""
    public = public or f"http://127.0.0.1:{port}"
    hook = f'public_url = "{public}"' if webhook else ""
    state = f'path = "{workdir / "state.db"}"'
    instance = ""
    if fleet:
        state = f'url = "{fleet[1]}"'
        instance = f'[instance]\nname = "{fleet[0]}"\n'
    return f"""\
[labelstudio]
url = "{stack.labelstudio.url}"
project = "{FLEET_PROJECT if fleet else PROJECT}"
layout = "segments"
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
{state}
[http]
listen = "127.0.0.1:{port}"
{hook}
[log]
format = "json"
{instance}"""


class RoundRobin(ThreadingHTTPServer):
    """The webhook's address in front of several instances, as a load balancer: each delivery goes to the next
    instance in turn, whichever holds the export lease."""

    def __init__(self, port: int, backends: list[str]) -> None:
        self.backends = itertools.cycle(backends)
        self.sent: Counter[str] = Counter()
        super().__init__(("127.0.0.1", port), _Forward)


class _Forward(BaseHTTPRequestHandler):
    server: RoundRobin

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        backend = next(self.server.backends)
        self.server.sent[backend] += 1
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
        reply = requests.post(backend + self.path, data=body, headers=headers, timeout=30)
        try:
            self.send_response(reply.status_code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply.content)))
            self.end_headers()
            self.wfile.write(reply.content)
        except BrokenPipeError:  # Label Studio stopped waiting for the answer; the delivery was made
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass


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
    env = {**os.environ, **stack.env(), "SYNCD_WEBHOOK_SECRET": SECRET, "SYNCD_STATE_PASSWORD": PG_PASSWORD}
    proc = subprocess.Popen(
        [str(VENV_BIN / "syncd"), "run", "-c", str(path)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 60
    while b"daemon.started" not in (workdir / f"{name}.log").read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"syncd run did not start; see {workdir / f'{name}.log'}")
        time.sleep(0.1)
    return proc


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(60)


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
    parser.add_argument("--instances", type=int, default=3, help="daemons of the fleet path (0 leaves it out)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="syncd-bench-") as tmp, running_stack(Path(tmp) / "stack") as stack:
        workdir = Path(tmp)
        os.environ.update(stack.env() | {"SYNCD_STATE_PASSWORD": PG_PASSWORD})
        stack.s3.client().create_bucket(Bucket=BUCKET)
        n = args.submissions
        svc = seeding_services(stack, PROJECT, _plain(stack, workdir))
        polled_tasks, hooked_tasks = build_tasks(svc, 0, n), build_tasks(svc, n, n)
        svc.close()
        sdk = stack.labelstudio.client()
        rows = []
        port = free_port()
        for name, tasks, webhook in (("polling only", polled_tasks, False), ("webhooks", hooked_tasks, True)):
            text = config(stack, workdir, args.export_interval, port, webhook)
            proc = start_daemon(workdir, stack, text, name.replace(" ", "-"))
            try:
                latencies = measure(stack, sdk, tasks, args.spacing, timeout=args.export_interval * 3 + 30)
            finally:
                stop_all([proc])
            rows.append((name, latencies))
        if args.instances:
            with Postgres("postgres", workdir / "pg") as pg:
                rows.append(fleet(stack, sdk, workdir, pg, args))
        report(rows, args)


def seeding_services(stack: Stack, project: str, plain: dict[str, Any]) -> Services:
    svc = Services.build(
        parse({"labelstudio": {"url": stack.labelstudio.url, "project": project, "layout": "segments"}, **plain})
    )
    svc.projects.ensure()
    return svc


def fleet(stack: Stack, sdk: Any, workdir: Path, pg: Postgres, args: argparse.Namespace) -> tuple[str, list[float]]:
    """The three-instance path: seeded on the shared state, measured through the round-robin proxy."""
    fleet_settings = _plain(stack, workdir) | {"state": {"url": pg.url}}
    svc = seeding_services(stack, FLEET_PROJECT, fleet_settings)
    tasks = build_tasks(svc, 2 * args.submissions, args.submissions)
    svc.close()
    ports = [free_port() for _ in range(args.instances)]
    proxy = RoundRobin(free_port(), [f"http://127.0.0.1:{p}" for p in ports])
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    public = f"http://127.0.0.1:{proxy.server_address[1]}"
    procs = []
    try:
        for i, port in enumerate(ports):
            text = config(stack, workdir, args.export_interval, port, True, public=public, fleet=(f"i{i}", pg.url))
            procs.append(start_daemon(workdir, stack, text, f"fleet-{i}"))
        latencies = measure(stack, sdk, tasks, args.spacing, timeout=args.export_interval * 3 + 30)
    finally:
        stop_all(procs)
        proxy.shutdown()
    exports = {
        f"i{i}": sum(e["event"] == "webhook.exported" for e in log_events((workdir / f"fleet-{i}.log").read_text()))
        for i in range(len(ports))
    }
    received = {f"i{i}": proxy.sent[f"http://127.0.0.1:{port}"] for i, port in enumerate(ports)}
    print(f"fleet: deliveries received per instance {received}; exported per instance {exports}")
    return f"webhooks, {args.instances} instances", latencies


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
    many = f"webhooks, {args.instances} instances"
    if many in figures:
        extra = figures[many] - figures["webhooks"]
        verdict = "met" if extra <= 1.0 else "MISSED"
        print(f"{args.instances} instances add {extra:+.2f} s to the webhooks p95; target within 1 s: {verdict}")


if __name__ == "__main__":
    main()
