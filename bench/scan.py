"""Scan cost over a large bucket: S3 calls, seconds and memory of the first (discovering) and an idle scan, on a
SQLite and a PostgreSQL state side by side.

    .venv/bin/python -m bench.scan [--objects 100000] [--states sqlite,postgres]

A real SeaweedFS bucket is filled with ``--objects`` small audio objects; for each state (a real SQLite file, a real
PostgreSQL server) syncd's scan stage runs twice against it: the first scan (discovers every object) and an idle one.
Memory: the peak of Python allocations during the idle scan (tracemalloc, which slows it), beside the reference in the
same run: the whole-bucket key set (key -> ETags for every recorded object) that an unpaged scan would hold; and the
peak RSS (the kernel's high-water mark) of a fresh process that imports what the daemon imports and runs one idle
scan: this bench's own process also holds the stack's clients and the fill's buffers, which are not syncd's.
Then the same source with an S3 event queue (``sources.queue_url``, an SQS queue on moto) scans idle: one read of the
queue instead of a listing. Only SeaweedFS, PostgreSQL and moto are started (no Label Studio: the scan never calls it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import obstore
from obstore.store import S3Store

from devstack import PG_PASSWORD, REGION, MotoServer, Postgres, SeaweedS3
from syncd.config import parse
from syncd.log import configure
from syncd.s3.storage import Storage
from syncd.services import Services
from syncd.stages import scan
from syncd.state import StateStore

BUCKET = "bench-scan"


def fill(s3: SeaweedS3, count: int) -> float:
    """Put ``count`` one-byte .mp3 objects with 32 puts in flight (obstore releases the GIL); returns seconds."""
    store = S3Store(
        BUCKET,
        endpoint=s3.url,
        region=REGION,
        access_key_id=s3.access_key,
        secret_access_key=s3.secret_key,
        virtual_hosted_style_request=False,
        client_options={"allow_http": True},
    )
    started = time.perf_counter()
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda i: obstore.put(store, f"calls/{i // 1000:04d}/{i:07d}.mp3", b"x"), range(count)))
    return time.perf_counter() - started


def measured(fn: Callable[[], Any], *, traced: bool = True) -> tuple[Any, float, float]:
    """(result, seconds, peak MiB of Python allocations while it ran, or NaN when ``traced`` is off)."""
    if traced:
        tracemalloc.start()
    started = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] / 2**20 if traced else float("nan")
    tracemalloc.stop()
    return result, seconds, peak


CHILD = """
import json, sys, threading, time
from pathlib import Path
import syncd.cli
from syncd.config import parse
from syncd.log import configure
from syncd.s3.storage import Storage
from syncd.services import Services
from syncd.stages import scan
from syncd.state import StateStore
configure("warning", "console")
settings = parse(json.loads(sys.argv[1]))
svc = Services.assemble(settings, StateStore.open(settings.state), Storage(settings.s3), None, None)
started = time.perf_counter()
found = scan.run(svc, threading.Event())
seconds = time.perf_counter() - started
hwm = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:"))
print(json.dumps({"found": found, "seconds": seconds, "rss": int(hwm.split()[1]) / 1024}))
"""
"""An idle scan in a fresh process, as the daemon holds it: the daemon's imports, the state, S3, one scan."""


def fresh_process_idle_scan(raw: dict[str, Any]) -> tuple[int, float, float]:
    """(new, seconds, peak RSS MiB of the whole process) of an idle scan run by ``CHILD``."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(raw)], capture_output=True, text=True, check=True, env=os.environ
    )
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    return int(answer["found"]), float(answer["seconds"]), float(answer["rss"])


def whole_bucket_key_set(state: StateStore) -> dict[str, set[str]]:
    """The reference: every recorded key with its ETags in one dict, as an unpaged scan would hold it."""
    known: dict[str, set[str]] = {}
    for row in state.db.read("SELECT key, etag FROM recordings WHERE bucket = ?", (BUCKET,)):
        known.setdefault(row["key"], set()).add(row["etag"])
    return known


Row = tuple[str, int, float, float, float, int]
"""(path, new, seconds, peak Python MiB, peak RSS MiB, calls)."""


def evented_idle_scan(svc: Services, moto: MotoServer, queue: str, go: threading.Event) -> Row:
    """The idle scan again, for the same source with an event queue and a full listing not due: S3 and SQS calls."""
    raw = svc.settings.model_dump()
    raw["s3"]["sqs_endpoint_url"] = moto.url
    raw["sources"][0]["queue_url"] = queue
    evented = Services.assemble(parse(raw), svc.state, svc.storage, None, None)  # type: ignore[arg-type]
    evented.state.cursors.set(scan.full_listing_name(evented.settings.sources[0]), str(time.time()))
    before = svc.storage.calls.copy()
    found, seconds, peak = measured(lambda: scan.run(evented, go))
    calls = sum((svc.storage.calls - before).values()) + evented.queues[queue].receives
    _, _, rss = fresh_process_idle_scan(raw)
    return "idle scan, event queue (S3 + SQS calls)", found, seconds, peak, rss, calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--states", default="sqlite,postgres", help="which states, comma-separated")
    args = parser.parse_args()
    configure("warning", "console")
    results: dict[str, list[Row]] = {}
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="syncd-bench-"))
        s3 = stack.enter_context(SeaweedS3("seaweedfs", Path(tmp) / "s3"))
        moto = stack.enter_context(MotoServer("moto", Path(tmp) / "moto"))
        os.environ.update({"AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key})
        os.environ["SYNCD_STATE_PASSWORD"] = PG_PASSWORD
        s3.client().create_bucket(Bucket=BUCKET)
        print(f"putting {args.objects} objects ...", flush=True)
        filled = fill(s3, args.objects)
        for name in args.states.split(","):
            print(f"scanning with a {name} state ...", flush=True)
            if name == "postgres":
                pg = stack.enter_context(Postgres("postgres", Path(tmp) / "pg"))
                state: dict[str, Any] = {"url": pg.url}
            else:
                state = {"path": str(Path(tmp) / "state.db")}
            queue = moto.client("sqs").create_queue(QueueName=f"bench-scan-{name}")["QueueUrl"]
            results[name] = scan_with(s3, state, moto, queue)
    print(f"\n{args.objects} objects put in {filled:.1f} s\n")
    print(f"{'state':<11}{'path':<44}{'new':>8}{'seconds':>9}{'peak MiB':>10}{'RSS MiB':>9}{'calls':>8}")
    for name, rows in results.items():
        for path, found, seconds, peak, rss, calls in rows:
            print(f"{name:<11}{path:<44}{found:>8}{seconds:>9.2f}{peak:>10.1f}{rss:>9.0f}{calls:>8}")
    print("\npeak RSS: a fresh process running one idle scan (the daemon's imports, the state, S3), target <= 150 MB")
    for name, rows in results.items():
        ref = rows[3]
        print(f"{name}: idle scan peak / whole-bucket key set = {rows[1][3] / ref[3]:.2f}x;", end=" ")
        print(f"idle scan seconds, events / listing = {rows[4][2] / rows[1][2]:.5f}x")
    if {"sqlite", "postgres"} <= results.keys():
        ratio = results["postgres"][0][2] / results["sqlite"][0][2]
        print(f"first scan seconds, PostgreSQL / SQLite = {ratio:.2f}x (target <= 1.2x)")


def scan_with(s3: SeaweedS3, state: dict[str, Any], moto: MotoServer, queue: str) -> list[Row]:
    """The first and an idle scan of the bucket into a fresh state, the reference, and the evented idle scan."""
    settings = parse({"s3": {"endpoint_url": s3.url}, "sources": [{"bucket": BUCKET}], "state": state})
    storage = Storage(settings.s3)
    svc = Services.assemble(settings, StateStore.open(settings.state), storage, None, None)  # type: ignore[arg-type]
    go = threading.Event()
    rows: list[Row] = []
    before = storage.calls.copy()
    found, seconds, _ = measured(lambda: scan.run(svc, go), traced=False)
    rows.append(("first scan (discovers all)", found, seconds, float("nan"), float("nan"), _calls(storage, before)))
    before = storage.calls.copy()
    found, seconds, peak = measured(lambda: scan.run(svc, go))
    _, _, rss = fresh_process_idle_scan(settings.model_dump())
    rows.append(("idle scan (nothing new)", found, seconds, peak, rss, _calls(storage, before)))
    before = storage.calls.copy()
    found, seconds, _ = measured(lambda: scan.run(svc, go), traced=False)
    rows.append(("idle scan, untraced", found, seconds, float("nan"), float("nan"), _calls(storage, before)))
    _, ref_seconds, ref_peak = measured(lambda: whole_bucket_key_set(svc.state))
    rows.append(("(ref) whole-bucket key set, one query", 0, ref_seconds, ref_peak, float("nan"), 0))
    rows.append(evented_idle_scan(svc, moto, queue, go))
    svc.state.close()
    return rows


def _calls(storage: Storage, before: Counter[str]) -> int:
    return sum((storage.calls - before).values())


if __name__ == "__main__":
    main()
