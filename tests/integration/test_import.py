"""Import that scales: exactly once across a SIGKILL, incremental scans, replaced objects, least confident first."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from devstack import (
    Stack,
    aws_config,
    log_events,
    project_tasks,
    run_syncd,
    run_until_imported,
    seed_formula,
    upload_with_results,
)
from syncd.config import LabelStudioSettings
from syncd.domain.transcript import Segment, Transcript
from syncd.labelstudio import LabelStudioClient, layouts
from syncd.state import StateStore

RECORDINGS = {
    "calls/a.mp3": "two_speakers.json",
    "calls/b.mp3": "single_speaker.json",
    "calls/c.mp3": "two_speakers_new.json",
}


def test_sigkill_between_labelstudio_and_state_imports_exactly_once(
    stack: Stack, s3: Any, ls: Any, bucket: str, tmp_path: Path
) -> None:
    """Killed once the tasks are in, before the state knows: each task is adopted, never imported twice, and holds
    its one prediction with its score."""
    upload_with_results(s3, bucket, RECORDINGS)
    point, title = "import.after_labelstudio", "import crash"
    config = aws_config(stack, tmp_path, bucket, title)
    crash = {"SYNCD_CRASH_AT": point}
    for _ in range(4):
        if run_syncd(["once", "-c", str(config)], stack, env=crash, check=False).returncode == -9:
            break
    else:
        raise AssertionError("the import never reached the crash point")
    state = StateStore(str(tmp_path / "state.db"))
    assert Counter(r.status for r in state.recordings.all()) == {"importing": 3}
    assert len(project_tasks(ls, title)) == 3, "the tasks landed before the kill"

    events = run_until_imported(stack, config, expected=3)

    tasks = project_tasks(ls, title)
    assert sorted(Counter(t["data"]["syncd_id"] for t in tasks).values()) == [1, 1, 1]
    assert {r.status for r in state.recordings.all()} == {"imported"}
    assert {r.task_id for r in state.recordings.all()} == {t["id"] for t in tasks}
    assert sum(e["event"] == "task.recovered" for e in events) == 3
    assert not any(e["event"] == "task.imported" for e in events)
    scores = {r.task_id: r.score for r in state.recordings.all()}
    assert all(len(t["predictions"]) == 1 for t in tasks), "each task holds exactly its one prediction"
    assert {t["id"]: t["predictions"][0]["score"] for t in tasks} == pytest.approx(scores)
    assert not any(e["event"] == "task.prediction_restored" for e in events)


def test_incremental_scan_replacement_and_least_confident_first(
    stack: Stack, s3: Any, ls: Any, bucket: str, tmp_path: Path
) -> None:
    upload_with_results(s3, bucket, RECORDINGS)
    config = aws_config(stack, tmp_path, bucket, "import order")
    run_until_imported(stack, config, expected=3)

    # An unchanged bucket: one listing call, no per-object request, nothing new.
    idle = log_events(run_syncd(["once", "-c", str(config)], stack).stdout)
    (scan,) = [e for e in idle if e["event"] == "scan.completed"]
    assert scan["s3_calls"] == {"ListObjectsV2": 1} and scan["new"] == 0 and scan["listed"] == 3

    # Label Studio serves the least confident task first, in a project set up for it.
    tasks = project_tasks(ls, "import order")
    project = tasks[0]["project"]
    lowest = min(tasks, key=lambda t: t["predictions"][0]["score"])
    least_sure = min(seed_formula(f) for f in RECORDINGS.values())
    assert lowest["predictions"][0]["score"] == pytest.approx(least_sure, abs=1e-4)
    assert stack.labelstudio.api("GET", f"/api/projects/{project}/next").json()["id"] == lowest["id"]
    settings = stack.labelstudio.api("GET", f"/api/projects/{project}").json()
    assert settings["sampling"] == "Uncertainty sampling" and settings["model_version"] == "amazon-transcribe"
    views = stack.labelstudio.api("GET", "/api/dm/views", params={"project": project}).json()
    assert any(v["data"].get("ordering") == ["tasks:predictions_score"] for v in views)

    # A replaced object (new ETag) is a new version with its own task; the old version is superseded.
    upload_with_results(s3, bucket, {"calls/b.mp3": "spanish.json"})
    events = run_until_imported(stack, config, expected=1)
    assert any(e["event"] == "audio.replaced" and e["key"] == "calls/b.mp3" for e in events)
    versions = [r for r in StateStore(str(tmp_path / "state.db")).recordings.all() if r.key == "calls/b.mp3"]
    assert [r.status for r in versions] == ["superseded", "imported"]
    tasks = project_tasks(ls, "import order")
    assert len(tasks) == 4
    assert {t["data"]["etag"] for t in tasks if t["data"]["source"].endswith("/b.mp3")} == {v.etag for v in versions}

    # A review of the replaced version describes audio that is gone: it is logged, and nothing is written beside it.
    old_task = next(t for t in tasks if t["data"]["etag"] == versions[0].etag)
    ls.annotations.create(id=old_task["id"], result=old_task["predictions"][0]["result"], was_cancelled=False)
    events = log_events(run_syncd(["once", "-c", str(config)], stack).stdout)
    assert any(e["event"] == "annotation.stale_audio" and e["task"] == old_task["id"] for e in events)
    assert not s3.list_objects_v2(Bucket=bucket, Prefix="calls/b.transcript").get("KeyCount")


def test_reviewed_task_pages_read_only_tasks_with_an_annotation(stack: Stack, ls: Any, bucket: str) -> None:
    """The export sweep's read, against Label Studio's Data Manager filter on the annotations' authors: an
    annotation with an empty result counts as a review."""
    settings = LabelStudioSettings(url=stack.labelstudio.url, project=f"sweep {bucket}", layout="segments")
    client = LabelStudioClient(settings, stack.labelstudio.token)
    project = client.ensure_project(max_speakers=2)
    ids = client.import_tasks(project, [{"data": {"audio": f"s3://{bucket}/{i}.mp3"}} for i in range(5)])
    for task_id in (ids[1], ids[3]):
        ls.annotations.create(id=task_id, result=[], was_cancelled=False)
    pages = list(client.reviewed_task_pages(project, page_size=1))
    assert [[t["id"] for t in page] for page in pages] == [[ids[1]], [ids[3]]]
    assert all("annotations" in t for page in pages for t in page)


def test_tasks_without_predictions_are_found_and_given_theirs(stack: Stack, bucket: str) -> None:
    """What adoption relies on to mend a task Label Studio committed without its prediction."""
    settings = LabelStudioSettings(url=stack.labelstudio.url, project=f"mend {bucket}", layout="segments")
    client = LabelStudioClient(settings, stack.labelstudio.token)
    project = client.ensure_project(max_speakers=2)
    asr = Transcript((Segment(0.0, 1.0, "hello there", "spk_0", 0.7),), engine="aws", model="m")
    prediction = {"model_version": "m", "score": 0.7, "result": layouts.prediction_result(asr, "segments")}
    bare = {"data": {"audio": f"s3://{bucket}/bare.mp3"}}
    ids = client.import_tasks(project, [bare, {**bare, "predictions": [prediction]}, bare])
    assert client.without_predictions(project, ids) == {ids[0], ids[2]}
    assert client.without_predictions(project, ids[1:2]) == set()
    client.add_predictions(ids[0], [prediction])
    assert client.without_predictions(project, ids) == {ids[2]}
    task = stack.labelstudio.api("GET", f"/api/tasks/{ids[0]}").json()
    assert task["predictions"][0]["score"] == 0.7 and task["predictions"][0]["result"] == prediction["result"]
