"""Twins against the real Label Studio: tasks for one audio version made behind syncd's back (another tool
re-imported, a person duplicated a task) are repaired by the next reconcile. A twin reviewed instead of the original
has its review written beside the audio and the unreviewed original goes; an unreviewed twin is deleted (the default)
or kept and named (``labelstudio.on_duplicate = "keep"``); two reviewed twins are both kept and named in `syncd
status`, and the newest review is the one beside the audio."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from devstack import (
    Stack,
    aws_config,
    log_events,
    project_tasks,
    run_syncd,
    run_until_imported,
    upload_with_results,
)
from syncd.config import LabelStudioSettings
from syncd.labelstudio import LabelStudioClient
from syncd.s3.outputs import META_ANNOTATION
from syncd.state import StateStore

RECORDINGS = {
    "calls/reviewed-twin.mp3": "two_speakers.json",
    "calls/idle-twin.mp3": "single_speaker.json",
    "calls/both-reviewed.mp3": "two_speakers_new.json",
}


def _twin(client: LabelStudioClient, task: dict[str, Any]) -> int:
    """The task imported again with its data and prediction, as another tool would."""
    (prediction,) = task["predictions"]
    copy_ = {"data": task["data"], "predictions": [{"result": prediction["result"], "score": prediction["score"]}]}
    (twin,) = client.import_tasks(int(task["project"]), [copy_])
    return twin


def _review(ls: Any, task: dict[str, Any], text: str) -> int:
    (prediction,) = task["predictions"]
    result = copy.deepcopy(prediction["result"])
    item = next(r for r in result if "text" in r["value"])
    item["value"]["text"] = [text]
    return int(ls.annotations.create(id=task["id"], result=result, was_cancelled=False).id)


def _once(stack: Stack, config: Path) -> list[dict[str, Any]]:
    return log_events(run_syncd(["once", "-c", str(config)], stack).stdout)


def test_twins_are_repaired_reviews_on_them_exported_and_the_rest_named(
    stack: Stack, s3: Any, ls: Any, bucket: str, tmp_path: Path
) -> None:
    upload_with_results(s3, bucket, RECORDINGS)
    title = f"twins {bucket}"
    config = aws_config(stack, tmp_path, bucket, title)
    client = LabelStudioClient(LabelStudioSettings(url=stack.labelstudio.url, project=title), stack.labelstudio.token)
    run_until_imported(stack, config, expected=3)
    state = StateStore(str(tmp_path / "state.db"))
    task_of = {r.key: r.task_id for r in state.recordings.all()}
    by_id = {t["id"]: t for t in project_tasks(ls, title)}
    original = {key: by_id[task_id] for key, task_id in task_of.items()}

    twin = {key: _twin(client, task) for key, task in original.items()}
    by_id |= {t["id"]: t for t in project_tasks(ls, title)}
    reviewed_twin = _review(ls, by_id[twin["calls/reviewed-twin.mp3"]], "reviewed on the twin, not the original")
    _review(ls, original["calls/both-reviewed.mp3"], "the older review, on the original")
    newest = _review(ls, by_id[twin["calls/both-reviewed.mp3"]], "the newest review, on the twin")

    events = _once(stack, config)
    deleted = {e["task"] for e in events if e["event"] == "task.twin_deleted"}
    assert deleted == {original["calls/reviewed-twin.mp3"]["id"], twin["calls/idle-twin.mp3"]}
    left = {t["id"] for t in project_tasks(ls, title)}
    assert left == {
        twin["calls/reviewed-twin.mp3"],
        original["calls/idle-twin.mp3"]["id"],
        original["calls/both-reviewed.mp3"]["id"],
        twin["calls/both-reviewed.mp3"],
    }
    for key, annotation in (("calls/reviewed-twin.mp3", reviewed_twin), ("calls/both-reviewed.mp3", newest)):
        stem = key.removesuffix(".mp3")
        meta = s3.head_object(Bucket=bucket, Key=f"{stem}.transcript.txt")["Metadata"]
        assert meta[META_ANNOTATION] == str(annotation), key
    assert (
        "the newest review, on the twin"
        in s3.get_object(Bucket=bucket, Key="calls/both-reviewed.transcript.txt")["Body"].read().decode()
    )

    report = json.loads(run_syncd(["status", "--json", "-c", str(config)], stack).stdout)
    assert [(t["key"], len(t["tasks"]), len(t["reviewed"])) for t in report["twins"]] == [
        ("calls/both-reviewed.mp3", 2, 2)
    ]

    # With on_duplicate = "keep", a new unreviewed twin stays, named.
    keep = tmp_path / "keep.toml"
    keep.write_text(config.read_text().replace(f'project = "{title}"', f'project = "{title}"\non_duplicate = "keep"'))
    kept = _twin(client, original["calls/idle-twin.mp3"])
    events = _once(stack, keep)
    assert not [e for e in events if e["event"] == "task.twin_deleted"]
    assert kept in {t["id"] for t in project_tasks(ls, title)}
    report = json.loads(run_syncd(["status", "--json", "-c", str(keep)], stack).stdout)
    named = {t["key"]: t["tasks"] for t in report["twins"]}
    assert sorted(named["calls/idle-twin.mp3"]) == sorted([original["calls/idle-twin.mp3"]["id"], kept])
