"""S3 event notifications against moto's S3 and SQS (moto sends real S3 event notifications) with the real Label
Studio: a new object is found within one read of the queue, with no listing; a deleted one is logged and its task
marked; an object whose event was lost is found by the next full listing."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from devstack import (
    Stack,
    evented_bucket,
    log_events,
    on_moto_events,
    project_tasks,
    run_syncd,
    run_until_imported,
    upload_with_results,
)
from syncd.domain.recording import Status
from syncd.state import StateStore


def _events_config(stack: Stack, tmp_path: Path, bucket: str, queue: str, title: str, extra: str = "") -> Path:
    text = on_moto_events(
        stack.config(tmp_path, bucket, project=title, engine="aws", extra=extra), stack, bucket, queue
    )
    path = tmp_path / "events.toml"
    path.write_text(text)
    return path


def _once(stack: Stack, config: Path) -> list[dict[str, Any]]:
    return log_events(run_syncd(["once", "-c", str(config)], stack).stdout)


def test_audio_is_found_and_deleted_from_events_and_a_lost_event_by_the_full_listing(
    stack: Stack, tmp_path: Path
) -> None:
    s3, sqs = stack.moto.client("s3"), stack.moto.client("sqs")
    bucket, queue = evented_bucket(stack.moto, "events")
    title = f"events {bucket}"
    config = _events_config(stack, tmp_path, bucket, queue, title)
    assert [e for e in _once(stack, config) if e["event"] == "scan.completed"], "the first run lists the bucket"

    # New audio: found from its event, with no listing.
    upload_with_results(s3, bucket, {"calls/new call.mp3": "two_speakers.json"})
    first = _once(stack, config)
    assert [e["key"] for e in first if e["event"] == "audio.discovered"] == ["calls/new call.mp3"]
    assert not [e for e in first if e["event"] == "scan.completed"], "no listing while the full one is not due"
    run_until_imported(stack, config, expected=1)
    (task,) = project_tasks(ls_client(stack), title)

    # Deleted audio: logged, its task kept and marked, the recording deleted.
    s3.delete_object(Bucket=bucket, Key="calls/new call.mp3")
    (deleted,) = [e for e in _once(stack, config) if e["event"] == "audio.deleted"]
    assert deleted["key"] == "calls/new call.mp3" and deleted["found_by"] == "event"
    assert deleted["tasks"] == {str(task["id"]): "marked"} and deleted["policy"] == "keep"
    (marked,) = project_tasks(ls_client(stack), title)
    assert marked["data"]["deleted_from_s3"] and marked["data"]["key"] == "calls/new call.mp3"
    state = StateStore(str(tmp_path / "state.db"))
    assert [r.status for r in state.recordings.all()] == [Status.DELETED]

    # A lost event: the object is found by the next full listing, once it is due.
    upload_with_results(s3, bucket, {"calls/quiet.mp3": "single_speaker.json"})
    sqs.purge_queue(QueueUrl=queue)
    assert not [e for e in _once(stack, config) if e["event"] == "audio.discovered"]
    config = _events_config(stack, tmp_path, bucket, queue, title, extra="[schedule]\nfull_scan_interval = 1\n")
    time.sleep(1.1)
    found = _once(stack, config)
    assert [e["key"] for e in found if e["event"] == "audio.discovered"] == ["calls/quiet.mp3"]
    assert [e for e in found if e["event"] == "scan.completed"]


def ls_client(stack: Stack) -> Any:
    return stack.labelstudio.client()
