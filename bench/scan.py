"""Scan cost over a large bucket: S3 calls, seconds and memory of the first (discovering) and an idle scan.

    .venv/bin/python -m bench.scan [--objects 200000]

A real SeaweedFS bucket is filled with ``--objects`` small audio objects; syncd's scan stage then runs twice against it
and a real SQLite state (``--postgres``: a real PostgreSQL server instead). Memory is the peak of Python allocations
during each scan (tracemalloc), beside the reference in the same run: the whole-bucket key set (key -> ETags for every
recorded object) that an unpaged scan would hold; and the process's peak RSS during each scan (the kernel's high-water
mark, reset before each).
Then the same source with an S3 event queue (``sources.queue_url``, an SQS queue on moto) scans idle: one read of the
queue instead of a listing. Only SeaweedFS and moto are started (no Label Studio: the scan never calls it).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import tempfile
import threading
import time
import tracemalloc
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


def measured(fn: Callable[[], Any]) -> tuple[Any, float, float, float]:
    """(result, seconds, peak MiB of Python allocations while it ran, peak RSS MiB while it ran)."""
    Path("/proc/self/clear_refs").write_text("5")  # resets the RSS high-water mark (VmHWM)
    tracemalloc.start()
    started = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, seconds, peak / 2**20, _peak_rss()


def _peak_rss() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def whole_bucket_key_set(state: StateStore) -> dict[str, set[str]]:
    """The reference: every recorded key with its ETags in one dict, as an unpaged scan would hold it."""
    known: dict[str, set[str]] = {}
    for row in state.db.read("SELECT key, etag FROM recordings WHERE bucket = ?", (BUCKET,)):
        known.setdefault(row["key"], set()).add(row["etag"])
    return known


def evented_idle_scan(
    svc: Services, moto: MotoServer, go: threading.Event
) -> tuple[str, int, float, float, float, int]:
    """The idle scan again, for the same source with an event queue and a full listing not due: S3 and SQS calls."""
    queue = moto.client("sqs").create_queue(QueueName="bench-scan")["QueueUrl"]
    raw = svc.settings.model_dump()
    raw["s3"]["sqs_endpoint_url"] = moto.url
    raw["sources"][0]["queue_url"] = queue
    evented = Services(parse(raw), svc.state, svc.storage, None, None)  # type: ignore[arg-type]
    evented.state.set_cursor(scan.full_listing_name(evented.settings.sources[0]), str(time.time()))
    before = svc.storage.calls.copy()
    found, seconds, peak, rss = measured(lambda: scan.run(evented, go))
    calls = sum((svc.storage.calls - before).values()) + evented.queues[queue].receives
    return "idle scan, event queue (S3 + SQS calls)", found, seconds, peak, rss, calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=200_000)
    parser.add_argument("--postgres", action="store_true", help="state on a real PostgreSQL server, not SQLite")
    args = parser.parse_args()
    configure("warning", "console")
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="syncd-bench-"))
        s3 = stack.enter_context(SeaweedS3("seaweedfs", Path(tmp) / "s3"))
        pg = stack.enter_context(Postgres("postgres", Path(tmp) / "pg")) if args.postgres else None
        os.environ.update({"AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key})
        s3.client().create_bucket(Bucket=BUCKET)
        print(f"putting {args.objects} objects ...", flush=True)
        filled = fill(s3, args.objects)
        state = {"url": pg.url} if pg else {"path": str(Path(tmp) / "state.db")}
        os.environ["SYNCD_STATE_PASSWORD"] = PG_PASSWORD
        settings = parse({"s3": {"endpoint_url": s3.url}, "sources": [{"bucket": BUCKET}], "state": state})
        storage = Storage(settings.s3)
        svc = Services(settings, StateStore.open(settings.state), storage, None, None)  # type: ignore[arg-type]
        go = threading.Event()
        rows = []
        for name in ("first scan (discovers all)", "idle scan (nothing new)"):
            before = storage.calls.copy()
            found, seconds, peak, rss = measured(lambda: scan.run(svc, go))
            rows.append((name, found, seconds, peak, rss, sum((storage.calls - before).values())))
        _, ref_seconds, ref_peak, ref_rss = measured(lambda: whole_bucket_key_set(svc.state))
        with MotoServer("moto", Path(tmp) / "moto") as moto:
            rows.append(evented_idle_scan(svc, moto, go))
        svc.state.close()

    print(f"\n{args.objects} objects put in {filled:.1f} s; state: {'PostgreSQL' if args.postgres else 'SQLite'}\n")
    print(f"{'path':<44}{'new':>8}{'seconds':>9}{'peak MiB':>10}{'RSS MiB':>9}{'calls':>8}")
    for name, found, seconds, peak, rss, calls in rows:
        print(f"{name:<44}{found:>8}{seconds:>9.2f}{peak:>10.1f}{rss:>9.0f}{calls:>8}")
    ref = "(ref) whole-bucket key set, one query"
    print(f"{ref:<44}{'':>8}{ref_seconds:>9.2f}{ref_peak:>10.1f}{ref_rss:>9.0f}{'':>8}")
    print(f"\nidle scan peak / whole-bucket key set = {rows[1][3] / ref_peak:.2f}x")
    print(f"idle scan seconds, events / listing = {rows[2][2] / rows[1][2]:.5f}x")
    print(f"process max RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
