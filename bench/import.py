"""Import throughput: N recordings whose Amazon Transcribe results are ready -> Label Studio tasks per second.

Printed beside, in the same run and against the same Label Studio:
  (a) Label Studio's own S3 import storage sync of the same N objects (tasks without predictions),
  (b) syncd's path's floor: one raw bulk import of exactly the tasks syncd builds (on its project's layout, into a
      project of that layout), predictions inside (through the
      SDK's ``projects.import_tasks``, and (b2) as one plain HTTP POST of the same JSON), and
  (c) the candidate path (issue 12): the same tasks without predictions, then their predictions through
      ``/api/projects/{id}/import/predictions``, in syncd's batch size, into one project, with no bookkeeping. Label
      Studio 1.23.2's predictions endpoint costs more the more tasks the project holds (its default code path
      recounts every task of the project per call; the one that does not is behind a feature flag that is off), so
      the first and the last batch's predictions call are printed too.
Targets: syncd >= 5x (a) and >= 0.8x (b); a second, idle cycle over the same bucket <= 2 s.

    .venv/bin/python -m bench.import [--recordings 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from devstack import TRANSCRIBE_FIXTURES, TRANSCRIBE_PREFIX, Stack, recording_for, running_stack
from syncd import config as config_module
from syncd.domain.recording import Status
from syncd.labelstudio import as_dict
from syncd.labelstudio.layouts import label_config
from syncd.labelstudio.tasks import task_for
from syncd.log import configure
from syncd.pipeline import run_cycle
from syncd.services import Services
from syncd.stages import import_, scan, transcribe
from syncd.transcribers.aws import job_name

FIXTURES = ["two_speakers.json", "two_speakers_new.json", "single_speaker.json", "channels.json"]
BUCKET = "bench-import"


def jittered(fixture: str, rng: random.Random) -> bytes:
    """A real-shaped Transcribe output whose word confidences differ per recording, so ordering matters."""
    doc = json.loads((TRANSCRIBE_FIXTURES / fixture).read_text())
    for item in doc["results"]["items"]:
        if item["type"] == "pronunciation":
            for alt in item["alternatives"]:
                alt["confidence"] = f"{min(1.0, max(0.0, float(alt['confidence']) - rng.random() * 0.3)):.4f}"
    return json.dumps(doc).encode()


def upload(stack: Stack, count: int) -> None:
    s3 = stack.s3.client()
    s3.create_bucket(Bucket=BUCKET)
    rng = random.Random(7)
    bodies = [jittered(FIXTURES[i % len(FIXTURES)], rng) for i in range(count)]

    def put(i: int) -> None:
        key = f"calls/{i // 100:03d}/call-{i:05d}.mp3"
        etag = s3.put_object(Bucket=BUCKET, Key=key, Body=f"audio {i}".encode() * 10)["ETag"].strip('"')
        name = job_name(recording_for(BUCKET, key, etag))
        s3.put_object(Bucket=BUCKET, Key=f"{TRANSCRIBE_PREFIX}{name}.json", Body=bodies[i])

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(count)))


def settings_for(stack: Stack, workdir: Path, project: str, batch_size: int) -> config_module.Settings:
    text = stack.config(workdir, BUCKET, project=project, engine="aws", aws="max_in_flight = 250")
    text = text.replace('level = "debug"', 'level = "warning"')
    if batch_size:
        text = text.replace("[s3]", f"import_batch_size = {batch_size}\n\n[s3]")
    return config_module.parse(tomllib.loads(text))


def transcribe_all(svc: Services, count: int) -> None:
    scan.run(svc, threading.Event())
    while svc.state.recordings.count(Status.TRANSCRIBED) < count:
        if not transcribe.run(svc, threading.Event()):
            time.sleep(0.1)
        failed = svc.state.recordings.count(Status.FAILED)
        if failed:
            raise SystemExit(f"{failed} transcriptions failed: {svc.state.recordings.last_errors(3)}")


def timed(fn: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def labelstudio_sync(stack: Stack, svc: Services, count: int) -> float:
    """Reference (a): Label Studio lists the bucket and creates one task per object itself."""
    sdk = stack.labelstudio.client()
    project = int(sdk.projects.create(title="bench: LS storage sync", label_config=label_config("segments")).id or 0)
    storage = sdk.import_storage.s3.create(
        project=project,
        bucket=BUCKET,
        prefix="calls/",
        regex_filter=r".*\.mp3$",
        use_blob_urls=True,
        presign=True,
        recursive_scan=True,
        **svc.storage_credentials(),
    )
    headers = stack.labelstudio.auth_headers()
    started = time.perf_counter()
    # Without Redis Label Studio syncs inside this request: the SDK's default timeout cut it short under load.
    sync = f"{stack.labelstudio.url}/api/storages/s3/{int(storage.id or 0)}/sync"
    requests.post(sync, headers=headers, timeout=REFERENCE_TIMEOUT).raise_for_status()
    while True:
        status = as_dict(sdk.import_storage.s3.get(int(storage.id or 0))).get("status")
        if status in ("completed", "failed") or time.perf_counter() - started > REFERENCE_TIMEOUT:
            break
        time.sleep(0.2)
    elapsed = time.perf_counter() - started
    made = as_dict(sdk.projects.get(project)).get("task_number")
    if status != "completed" or made != count:
        raise RuntimeError(f"Label Studio sync ended {status} with {made} tasks")
    return elapsed


REFERENCE_TIMEOUT = 900.0
"""Seconds a reference path may take before it is reported as timed out."""


def reference(path: Callable[[], float]) -> float | str:
    """A reference path's seconds, or why it has none (it failed or timed out): printed beside syncd's figure, so a
    reference that breaks never costs the run its other figures."""
    try:
        return path()
    except Exception as exc:
        return f"failed: {type(exc).__name__}: {str(exc)[:160]}"


def _row(label: str, seconds: float | str, n: int) -> str:
    if isinstance(seconds, str):
        return f"{label:<52}{seconds}"
    return f"{label:<52}{seconds:>10.2f}{n / seconds:>10.0f}"


def _ratio(label: str, ours: float, theirs: float | str, digits: int, target: str = "") -> str:
    if isinstance(theirs, str):
        return f"{label} = none (the reference {theirs})"
    return f"{label} = {theirs / ours:.{digits}f}x{target}"


def raw_import(stack: Stack, svc: Services, tasks: list[dict[str, Any]], layout: str, *, sdk_call: bool) -> float:
    """Reference (b): the same tasks syncd builds, in one bulk call, with no bookkeeping: through the SDK's
    ``projects.import_tasks`` (what NOTES.md measured), or as one plain HTTP POST of the same JSON."""
    sdk = stack.labelstudio.client()
    title = f"bench: raw import ({'sdk' if sdk_call else 'http'})"
    project = int(sdk.projects.create(title=title, label_config=label_config(layout)).id or 0)
    if sdk_call:
        call = lambda: sdk.projects.import_tasks(project, request=tasks, return_task_ids=True)  # noqa: E731
    else:
        call = lambda: svc.labelstudio.import_tasks(project, tasks)  # noqa: E731
    _, elapsed = timed(call)
    return elapsed


def tasks_then_predictions(
    stack: Stack, svc: Services, tasks: list[dict[str, Any]], layout: str, batch: int
) -> tuple[float, float, list[float]]:
    """(c) Issue 12's candidate, batch by batch: the tasks without predictions in one bulk call, then their
    predictions through ``/api/projects/{id}/import/predictions`` (SDK ``projects.import_predictions``), as plain
    HTTP. Returns the seconds of all task calls, of all predictions calls, and of each predictions call."""
    sdk = stack.labelstudio.client()
    project = int(sdk.projects.create(title="bench: tasks then predictions", label_config=label_config(layout)).id or 0)
    path = f"/api/projects/{project}/import/predictions"
    task_seconds, per_batch = 0.0, []
    for start in range(0, len(tasks), batch):
        chunk = tasks[start : start + batch]
        ids, seconds = timed(lambda c=chunk: svc.labelstudio.import_tasks(project, [{"data": t["data"]} for t in c]))
        task_seconds += seconds
        predictions = [{"task": i, **t["predictions"][0]} for i, t in zip(ids, chunk, strict=True)]
        response, seconds = timed(lambda p=predictions: stack.labelstudio.api("POST", path, json=p))
        assert response.ok and response.json().get("created") == len(chunk), response.text[:300]
        per_batch.append(seconds)
    return task_seconds, sum(per_batch), per_batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recordings", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=0, help="override labelstudio.import_batch_size")
    args = parser.parse_args()
    n = args.recordings
    configure("warning", "console")
    with tempfile.TemporaryDirectory(prefix="syncd-bench-") as tmp, running_stack() as stack:
        os.environ.update(stack.env())
        print(f"setting up {n} recordings with ready Transcribe results (moto + SeaweedFS) ...", flush=True)
        upload(stack, n)
        svc = Services.build(settings_for(stack, Path(tmp), "bench: syncd", args.batch_size))
        transcribe_all(svc, n)
        project = svc.projects.ensure()
        recordings = svc.state.recordings.due(Status.TRANSCRIBED, limit=n, least_confident_first=True)
        layout = svc.labelstudio.layout_of(project, svc.settings.labelstudio.layout)
        flag = svc.settings.review.flag_words_below
        tasks = [task_for(r, layout, svc.transcriber.model_version, flag) for r in recordings]

        imported, ours = timed(lambda: import_.run(svc, threading.Event()))
        assert imported == n, imported
        landed = svc.labelstudio.task_count(project)
        assert landed == n, landed
        _, idle = timed(lambda: run_cycle(svc))
        raw = reference(lambda: raw_import(stack, svc, tasks, layout, sdk_call=True))
        raw_http = reference(lambda: raw_import(stack, svc, tasks, layout, sdk_call=False))
        batch = svc.settings.labelstudio.import_batch_size
        try:
            bare, predictions, per_batch = tasks_then_predictions(stack, svc, tasks, layout, batch)
            split: float | str = bare + predictions
        except Exception as exc:
            split = f"failed: {type(exc).__name__}: {str(exc)[:160]}"
        sync = reference(lambda: labelstudio_sync(stack, svc, n))

    print(f"\n{'path':<52}{'seconds':>10}{'tasks/s':>10}")
    print(_row(f"syncd import (batches of {svc.settings.labelstudio.import_batch_size})", ours, n))
    print(_row("(a) Label Studio S3 import storage sync", sync, n))
    print(_row("(b) floor: SDK import_tasks, one call", raw, n))
    print(_row("(b2) floor: HTTP POST /import, one call, same JSON", raw_http, n))
    label = f"(c) tasks, then predictions ({bare:.2f}+{predictions:.2f})" if isinstance(split, float) else "(c)"
    print(_row(label, split, n))
    print()
    print(_ratio("syncd / (a) ", ours, sync, 1, "   (target >= 5x)"))
    print(_ratio("syncd / (b) ", ours, raw, 2, "   (target >= 0.8x)"))
    print(_ratio("syncd / (b2)", ours, raw_http, 2, "   (target >= 0.9x)"))
    if isinstance(split, float) and isinstance(raw_http, float):
        print(f"(c) / (b2)   = {raw_http / split:.2f}x   (the candidate path, without syncd's bookkeeping)")
        print(f"(c) predictions call, first and last batch of {batch}: {per_batch[0]:.2f} s, {per_batch[-1]:.2f} s")
    print(f"idle cycle over the same {n} objects: {idle:.2f} s   (target <= 2 s)")


if __name__ == "__main__":
    main()
