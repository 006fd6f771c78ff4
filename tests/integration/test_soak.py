"""Soak under chaos: `syncd run` over 200 recordings while syncd is SIGKILLed at random moments, Label Studio and
SeaweedFS are restarted, and a reviewer submits and edits through the API the whole time.

The end state is checked against the truth held by S3 and Label Studio, not against syncd's own state: exactly one task
per object version, every submitted review's newest version in S3 beside the right audio, nothing left in flight.
It runs on its own stack (chaos must not reach the other tests) and is bounded: CHAOS_SECONDS of faults, then at most
SETTLE_SECONDS for syncd to catch up. The seed is printed; `SYNCD_SOAK_SEED=N` replays a run.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from devstack import SyncdProcess, WaitTimeoutError, run_syncd, running_stack, until, upload_with_results
from syncd.domain.recording import syncd_id
from syncd.s3.storage import output_key

RECORDINGS = 200
CHAOS_SECONDS = 60.0
SETTLE_SECONDS = 240.0
BUCKET = "soak"
PROJECT = "soak under chaos"
FIXTURES = ("two_speakers.json", "single_speaker.json", "two_speakers_new.json", "spanish.json")


class Reviewer(threading.Thread):
    """Submits a new annotation or edits an existing one on a random task, about twice a second; errors while Label
    Studio is down are expected and ignored (the truth is read back from Label Studio at the end)."""

    def __init__(self, ls: Any, project: int, seed: int) -> None:
        super().__init__(daemon=True)
        self.ls, self.project, self.rng = ls, project, random.Random(seed)
        self.stop = threading.Event()
        self.submitted = self.edited = self.errors = 0
        self.reviewed: dict[int, int] = {}  # task id -> our annotation on it

    def run(self) -> None:
        while not self.stop.wait(self.rng.uniform(0.2, 0.8)):
            try:
                self._review_one()
            except Exception:
                self.errors += 1

    def _review_one(self) -> None:
        if self.reviewed and self.rng.random() < 0.5:
            task_id, annotation = self.rng.choice(sorted(self.reviewed.items()))
            self.ls.annotations.update(annotation, result=self._result(task_id))
            self.edited += 1
            return
        tasks = self.ls.tasks.list(project=self.project, fields="all", resolve_uri=False, page_size=1000)
        ids = [int(t.id) for t in tasks]
        if not ids:
            return
        task_id = self.rng.choice(ids)
        created = self.ls.annotations.create(id=task_id, result=self._result(task_id), was_cancelled=False)
        self.reviewed[task_id] = int(created.id)
        self.submitted += 1

    @staticmethod
    def _result(task_id: int) -> list[dict[str, Any]]:
        text = f"reviewed {task_id} at {time.monotonic_ns()}"
        return [{"from_name": "transcription", "to_name": "audio", "type": "textarea", "value": {"text": [text]}}]


def _project_id(ls: Any) -> int | None:
    return next((int(p.id) for p in ls.projects.list() if p.title == PROJECT), None)


def _newest_texts(ls: Any, project: int) -> dict[str, str]:
    """source key -> text of the newest submitted annotation, as Label Studio holds it now."""
    newest: dict[str, str] = {}
    for task in ls.tasks.list(project=project, fields="all", resolve_uri=False, page_size=1000):
        annotations = [a for a in ls.annotations.list(int(task.id)) if not a.was_cancelled]
        if annotations:
            latest = max(annotations, key=lambda a: (str(a.updated_at), int(a.id)))
            key = str(task.data["source"]).removeprefix(f"s3://{BUCKET}/")
            newest[key] = latest.result[0]["value"]["text"][0]
    return newest


def _chaos(stack: Any, config: Path, rng: random.Random, daemon: SyncdProcess) -> tuple[SyncdProcess, Counter[str]]:
    done: Counter[str] = Counter()
    deadline = time.monotonic() + CHAOS_SECONDS
    while time.monotonic() < deadline:
        time.sleep(rng.uniform(3, 8))
        action = rng.choice(("kill", "kill", "labelstudio", "s3"))
        if action == "kill":
            daemon.kill()
            daemon = SyncdProcess(config, stack)
        else:
            service = stack.labelstudio if action == "labelstudio" else stack.s3
            port = service.port
            service.stop()
            time.sleep(rng.uniform(1, 4))
            service.start()
            service.wait()
            assert service.port == port, f"{service.name} came back on another port"
        done[action] += 1
    return daemon, done


def _settled(s3: Any, ls: Any, project: int, keys: list[str]) -> tuple[bool, dict[str, str]]:
    try:
        newest = _newest_texts(ls, project)
        task_count = ls.projects.get(project).task_number
    except Exception:  # a service the chaos restarted last may still be coming up
        return False, {}
    for key, text in newest.items():
        try:
            body = s3.get_object(Bucket=BUCKET, Key=output_key(key, ".transcript", "txt"))["Body"].read().decode()
        except s3.exceptions.NoSuchKey:
            return False, newest
        if text not in body:
            return False, newest
    return task_count >= len(keys), newest


def _lost_report(s3: Any, newest: dict[str, str], status: str) -> str:
    """What a person needs to replay a lost review: the text expected, what S3 holds and its version metadata."""
    lines = []
    for key, text in sorted(newest.items()):
        out = output_key(key, ".transcript", "txt")
        try:
            got = s3.get_object(Bucket=BUCKET, Key=out)
            body, meta = got["Body"].read().decode(), got["Metadata"]
        except s3.exceptions.NoSuchKey:
            body, meta = "<missing>", {}
        if text not in body:
            lines.append(f"{key}: expected {text!r}, S3 holds {body!r} {meta}")
    return "\n".join([*lines, status[:3000]])


def test_soak_under_chaos(tmp_path: Path) -> None:
    seed = int(os.environ.get("SYNCD_SOAK_SEED") or random.randrange(1_000_000))
    print(f"soak seed {seed}")
    rng = random.Random(seed)
    with running_stack(tmp_path / "stack") as stack:
        s3, ls = stack.s3.client(), stack.labelstudio.client()
        s3.create_bucket(Bucket=BUCKET)
        keys = [f"calls/{i:03d} call.mp3" for i in range(RECORDINGS)]
        upload_with_results(s3, BUCKET, {key: FIXTURES[i % len(FIXTURES)] for i, key in enumerate(keys)})
        etags = {key: s3.head_object(Bucket=BUCKET, Key=key)["ETag"].strip('"') for key in keys}
        config = tmp_path / "syncd.toml"
        schedule = "[schedule]\nscan_interval = 2\ntranscribe_interval = 1\nimport_interval = 1\nexport_interval = 1\n"
        schedule += "export_sweep_interval = 20\n"  # a review whose task Label Studio never stamped is found in time
        text = stack.config(tmp_path, BUCKET, project=PROJECT, engine="aws", aws="max_in_flight = 250", layout="whole")
        text = text.replace("[labelstudio]\n", "[labelstudio]\nimport_batch_size = 50\n", 1)
        config.write_text(text.replace('level = "debug"', 'level = "info"') + schedule)

        daemon = SyncdProcess(config, stack)
        daemon.wait("project.ready", timeout=120)
        project = _project_id(ls)
        assert project is not None
        reviewer = Reviewer(stack.labelstudio.client(), project, seed)
        reviewer.start()
        try:
            daemon, faults = _chaos(stack, config, rng, daemon)
        finally:
            reviewer.stop.set()
            reviewer.join(30)

        newest: dict[str, str] = {}

        def caught_up() -> bool:
            done, found = _settled(s3, ls, project, keys)
            newest.clear()
            newest.update(found)
            return done

        try:
            settled = until(caught_up, SETTLE_SECONDS, "every review exported", interval=3)
        except WaitTimeoutError:
            settled = False  # the checks below name what was lost
        daemon.stop()

        tasks = list(ls.tasks.list(project=project, fields="all", resolve_uri=False, page_size=1000))
        per_version = Counter(str(t.data["syncd_id"]) for t in tasks)
        expected = {syncd_id(BUCKET, key, etag) for key, etag in etags.items()}
        duplicates = sum(n - 1 for n in per_version.values())
        missing = len(expected - set(per_version))
        report = run_syncd(["status", "-c", str(config), "--json"], stack).stdout
        lost = sum(1 for key, text in newest.items() if text not in _read(s3, output_key(key, ".transcript", "txt")))
        print(
            f"soak: seed {seed}, kills {faults['kill']}, Label Studio restarts {faults['labelstudio']}, "
            f"S3 restarts {faults['s3']}, reviews submitted {reviewer.submitted} edited {reviewer.edited} "
            f"(failed while down {reviewer.errors}), reviewed tasks {len(newest)}, tasks {len(tasks)}, "
            f"duplicates {duplicates}, missing {missing}, lost {lost}"
        )
        assert duplicates == 0 and missing == 0 and len(tasks) == RECORDINGS
        assert lost == 0 and settled, _lost_report(s3, newest, report)
        assert json.loads(report)["pending"] == 0, report


def _read(s3: Any, key: str) -> str:
    try:
        return str(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode())
    except s3.exceptions.NoSuchKey:
        return ""
