"""Amazon Transcribe on moto: real-shaped output JSON put where our job writes it (moto writes none)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from devstack.services import ROOT, Stack
from devstack.syncd_process import log_events, run_syncd
from syncd.domain.recording import Recording, Status, syncd_id
from syncd.labelstudio import as_dict
from syncd.transcribers.aws import job_name

TRANSCRIBE_FIXTURES = ROOT / "tests" / "fixtures" / "transcribe"
TRANSCRIBE_PREFIX = "syncd-transcribe/"


def seed_formula(fixture: str) -> float:
    """The score the seed gave a task: the mean confidence of the pronunciation items."""
    items = json.loads((TRANSCRIBE_FIXTURES / fixture).read_text())["results"]["items"]
    scores = [float(i["alternatives"][0]["confidence"]) for i in items if i["type"] == "pronunciation"]
    return sum(scores) / len(scores)


def aws_config(
    stack: Stack, tmp_path: Path, bucket: str, project: str, aws: str = "", layout: str = "segments"
) -> Path:
    path = tmp_path / "aws.toml"
    path.write_text(stack.config(tmp_path, bucket, project=project, engine="aws", aws=aws, layout=layout))
    return path


def upload_with_results(s3: Any, bucket: str, recordings: dict[str, str]) -> dict[str, str]:
    """Put stand-in audio (Transcribe never reads it here) and, where our job will write it, the job's output."""
    names = {}
    for key, fixture in recordings.items():
        audio = f"audio of {key} ({fixture})".encode() * 20
        etag = s3.put_object(Bucket=bucket, Key=key, Body=audio)["ETag"].strip('"')
        rec = recording_for(bucket, key, etag)
        names[key] = job_name(rec)
        body = (TRANSCRIBE_FIXTURES / fixture).read_bytes()
        s3.put_object(Bucket=bucket, Key=f"{TRANSCRIBE_PREFIX}{names[key]}.json", Body=body)
    return names


def recording_for(bucket: str, key: str, etag: str) -> Recording:
    """The record syncd keeps for one object version, without a state store (job names derive from it)."""
    fields: dict[str, Any] = dict.fromkeys(Recording.__dataclass_fields__)
    fields |= {"id": 0, "syncd_id": syncd_id(bucket, key, etag), "bucket": bucket, "key": key, "etag": etag}
    return Recording(**fields | {"size": 1, "status": Status.DISCOVERED, "attempts": 0, "updated_at": 0.0})


def run_until_imported(stack: Stack, config: Path, expected: int, runs: int = 5) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for _ in range(runs):
        events += log_events(run_syncd(["once", "-c", str(config)], stack).stdout)
        if sum(e["event"] in ("task.imported", "task.recovered") for e in events) >= expected:
            return events
    raise AssertionError(f"not all imported after {runs} runs: {Counter(e['event'] for e in events)}")


def project_tasks(ls: Any, title: str) -> list[dict[str, Any]]:
    project = next(int(p.id) for p in ls.projects.list() if p.title == title)
    return [as_dict(t) for t in ls.tasks.list(project=project, fields="all", resolve_uri=False)]
