"""Export throughput and idle cost, beside Label Studio's own S3 export storage, measured in the same run.

    .venv/bin/python -m bench.export [--tasks 2000] [--idle-tasks 10000]

1. ``--tasks`` tasks, each with one submitted annotation (4 regions, one corrected), are bulk-imported into a project
   that syncd set up; one export cycle writes txt/json/srt/vtt for each: corrected transcripts per second.
2. Label Studio's own S3 export storage syncs the same annotations (raw annotation JSON under a prefix, the reference
   path a team would otherwise use): annotations per second. Target: syncd >= 5x.
3. The project is filled up to ``--idle-tasks`` exported tasks; then an export cycle with nothing changed is timed
   (the first one after the cursor moved re-reads the last few seconds of tasks once; later ones read nothing).
   Target: <= 2 s.

It starts its own stack (Label Studio, SeaweedFS, moto) in a temporary folder. syncd's logs go to a file there.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from bench._cpu import HEADER, Meter, Split, columns, machine
from bench._tasks import put_audio, seed_tasks
from devstack import Stack, running_stack
from syncd.config import Settings, parse
from syncd.domain.transcript import Segment, Transcript, Word
from syncd.log import configure
from syncd.services import Services
from syncd.stages import export
from syncd.stages.export_cursor import OVERLAP

BUCKET = "bench-export"
FORMATS = 4


def transcript(i: int) -> Transcript:
    sentences = ["Thank you for calling", "I have a question about my bill", "Let me look that up", "Anything else"]
    segments = []
    for n, sentence in enumerate(sentences):
        start = n * 3.0
        words = tuple(
            Word(start + k * 0.4, start + k * 0.4 + 0.3, w, 0.5 + ((i + k) % 50) / 100)
            for k, w in enumerate(sentence.split())
        )
        segments.append(Segment.from_words(list(words), speaker=f"spk_{n % 2}"))
    return Transcript(tuple(segments), engine="aws", model="amazon-transcribe", language="en-US", job=f"job-{i}")


def reviewed(result: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = [dict(item, value=dict(item["value"])) for item in result]
    for item in out:
        if item["id"] == "seg0001" and item["type"] == "textarea":
            item["value"]["text"] = ["I have a question about my invoice."]
    return out


def settings(stack: Stack, workdir: Path) -> Settings:
    return parse(
        {
            "labelstudio": {"url": stack.labelstudio.url, "project": "bench export"},
            "s3": {"endpoint_url": stack.s3.url},
            "sources": [{"bucket": BUCKET}],
            "transcriber": {"engine": "aws", "aws": {"endpoint_url": stack.moto.url}},
            "state": {"path": str(workdir / "state.db")},
            "http": {"listen": ""},
        }
    )


def add_reviewed_tasks(svc: Services, first: int, count: int) -> None:
    """Tasks carrying a submitted annotation, bulk-imported, and the state rows the import stage would have left. The
    audio objects exist (the export writes a review only beside the audio version it describes)."""

    objects = put_audio(svc, BUCKET, [f"calls/{i:05d} call.mp3" for i in range(first, first + count)])
    seed_tasks(svc, objects, transcript, review=reviewed)


def timed_export(svc: Services) -> tuple[int, float]:
    started = time.perf_counter()
    written = export.reviews(svc, threading.Event())
    return written, time.perf_counter() - started


REFERENCE_TIMEOUT = 900.0
"""Seconds the reference sync may take before it is reported as timed out."""


def labelstudio_export(stack: Stack, project: int) -> tuple[int, float] | str:
    """Label Studio's S3 export storage, created and synced: (annotations, seconds), or why it failed.

    Without Redis (the open-source default) Label Studio syncs inside the request that creates the storage
    (``SYNC_ON_TARGET_STORAGE_CREATION``), at ~50 annotations/s here: the SDK's default timeout cut 2000 of them short
    (``httpx.ReadTimeout``). The create request itself is timed, with a long timeout; the storage's own status then
    says whether it completed."""
    url, headers = stack.labelstudio.url, stack.labelstudio.auth_headers()
    storage = {
        "project": project,
        "bucket": BUCKET,
        "prefix": "labelstudio-export",
        "s3_endpoint": stack.s3.url,
        "aws_access_key_id": stack.s3.access_key,
        "aws_secret_access_key": stack.s3.secret_key,
        "region_name": "us-east-1",
        "title": "bench reference",
    }
    started = time.perf_counter()
    try:
        created = requests.post(
            f"{url}/api/storages/export/s3", json=storage, headers=headers, timeout=REFERENCE_TIMEOUT
        )
        seconds = time.perf_counter() - started
        created.raise_for_status()
        state = requests.get(f"{url}/api/storages/export/s3/{created.json()['id']}", headers=headers, timeout=60).json()
    except requests.Timeout:
        return f"timed out after {REFERENCE_TIMEOUT:.0f} s"
    except requests.RequestException as exc:
        return f"failed: {type(exc).__name__}: {str(exc)[:200]}"
    if state.get("status") != "completed":
        return f"ended {state.get('status')}: {str(state.get('traceback') or '')[-200:]}"
    return int(state.get("last_sync_count") or 0), seconds


def count_objects(svc: Services, prefix: str, suffix: str = "") -> int:
    paginator = svc.storage.client.get_paginator("list_objects_v2")
    return sum(
        1
        for page in paginator.paginate(Bucket=BUCKET, Prefix=prefix)
        for o in page.get("Contents", ())
        if o["Key"].endswith(suffix)
    )


@contextmanager
def logs_to(path: Path) -> Iterator[None]:
    """syncd logs every export at info: keep them (in a file) without flooding the table."""
    with path.open("w") as sink:
        configure("info", "json", stream=sink)
        try:
            yield
        finally:
            configure("warning", "console")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--idle-tasks", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="syncd-bench-") as tmp, running_stack(Path(tmp) / "stack") as stack:
        workdir = Path(tmp)
        os.environ.update(stack.env())
        stack.s3.client().create_bucket(Bucket=BUCKET)
        with logs_to(workdir / "syncd.log"):
            svc = Services.build(settings(stack, workdir))
            svc.projects.ensure()
            run(stack, svc, args.tasks, args.idle_tasks)


def run(stack: Stack, svc: Services, tasks: int, idle_tasks: int) -> None:
    meter = Meter(stack)
    print(machine(), flush=True)
    print(f"building {tasks} reviewed tasks ...", flush=True)
    add_reviewed_tasks(svc, 0, tasks)
    with meter.timed():
        written, seconds = timed_export(svc)
    ours_cpu = meter.last
    files = count_objects(svc, "calls/", ".vtt") + count_objects(svc, "calls/", ".srt")
    files += count_objects(svc, "calls/", ".txt") + count_objects(svc, "calls/", ".json")
    assert written == tasks and files == tasks * FORMATS, (written, files)
    ours = written / seconds
    with meter.timed():
        reference = labelstudio_export(stack, svc.projects.current)
    reference_cpu = meter.last
    if isinstance(reference, tuple) and count_objects(svc, "labelstudio-export") != reference[0]:
        reference = f"wrote {count_objects(svc, 'labelstudio-export')} objects for {reference[0]} annotations"

    print(f"filling the project to {idle_tasks} exported tasks ...", flush=True)
    add_reviewed_tasks(svc, tasks, max(0, idle_tasks - tasks))
    fill_written, fill_seconds = timed_export(svc)
    time.sleep(OVERLAP.total_seconds())
    _, first_idle = timed_export(svc)
    idle_written, idle = timed_export(svc)
    assert idle_written == 0

    rows = [
        ("syncd export cycle (txt+json+srt+vtt)", written, seconds, f"{ours:.0f} transcripts/s", ours_cpu),
        (*_reference_row(reference), reference_cpu),
        (
            "syncd export cycle, bigger batch",
            fill_written,
            fill_seconds,
            f"{fill_written / fill_seconds:.0f} transcripts/s",
            Split(),
        ),
        ("idle cycle, first (re-reads last 5 s)", idle_tasks, first_idle, "target <= 2 s", Split()),
        ("idle cycle, steady", idle_tasks, idle, "target <= 2 s", Split()),
    ]
    print(f"\n{'path':<42} {'items':>7} {'seconds':>9}  {'rate':<20} {HEADER}")
    for name, items, secs, rate, cpu in rows:
        print(f"{name:<42} {items:>7} {secs:>9.2f}  {rate:<20} {columns(cpu, items)}")
    if isinstance(reference, tuple):
        ratio = ours / (reference[0] / reference[1])
        print(f"\nexport throughput ratio syncd / Label Studio: {ratio:.1f}x (target >= 5x)")
        print_bounds(ours_cpu, written, reference_cpu, reference)
    else:
        print(f"\nexport throughput ratio syncd / Label Studio: none (the reference {reference})")
    print(f"idle export cycle over {idle_tasks} unchanged tasks: {idle:.2f} s steady, {first_idle:.2f} s first")


def print_bounds(ours: Split, written: int, reference: Split, counted: tuple[int, float]) -> None:
    """What bounds each path, from the CPU split: how fast syncd's cycle could go with every core busy, and so the
    best ratio this machine allows, whatever syncd does with its own time."""
    _, _, s3, total = ours.per_item_ms(written)
    annotations, seconds = counted
    best = ours.bound(written) / (annotations / seconds)
    print(
        f"what bounds it: syncd's cycle costs {total:.2f} ms of CPU per transcript, {s3 / total:.0%} of it the S3"
        f" server's ({FORMATS} conditional PUTs and 1 HEAD); it kept {ours.cores_busy:.2f} cores busy, and with"
        f" every core busy it would reach {ours.bound(written):.0f} transcripts/s: at best {best:.1f}x on this"
        f" machine. Label Studio's sync is one Python process: {reference.per_item_ms(annotations)[1]:.2f} ms of"
        f" Label Studio's CPU per annotation, {reference.cores_busy:.2f} cores busy."
    )


def _reference_row(reference: tuple[int, float] | str) -> tuple[str, int, float, str]:
    name = "Label Studio S3 export storage sync"
    if isinstance(reference, str):
        return name, 0, float("nan"), reference
    count, seconds = reference
    return name, count, seconds, f"{count / seconds:.0f} annotations/s"


if __name__ == "__main__":
    main()
