"""Small in-memory stand-ins for Label Studio, S3 and an ASR engine, for running the stages in-process.

They model only what the stages rely on (task ids that grow, ``updated_at`` ordering, conditional puts by ETag), so a
fast test can drive a stage through a scenario the integration tier would need minutes to set up. The integration
tier keeps the real services.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from syncd.config import Settings, SourceSettings, parse
from syncd.daemon.health import Probes
from syncd.domain.recording import Recording, S3Object
from syncd.domain.transcript import Segment, Transcript, Word
from syncd.labelstudio import LabelStudioError, layouts, ls_time
from syncd.s3.storage import WriteConflictError
from syncd.services import Services
from syncd.state import StateStore
from syncd.transcribers.base import Progress, no_progress

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class FakeStorage:
    """Objects by (bucket, key) with ETags and metadata; puts honour If-Match / If-None-Match like S3."""

    def __init__(self, *, conditional: bool = True) -> None:
        self.objects: dict[tuple[str, str], tuple[bytes, str, dict[str, str]]] = {}
        self.calls: Counter[str] = Counter()
        self.page_size = 1000
        self.conditional = conditional
        self._lock = threading.Lock()

    def put_audio(self, bucket: str, key: str, body: bytes = b"audio") -> str:
        etag = hashlib.md5(body, usedforsecurity=False).hexdigest()
        self.objects[(bucket, key)] = (body, etag, {})
        return etag

    def list_audio(self, source: SourceSettings, exclude_prefixes: tuple[str, ...] = ()) -> Iterator[list[S3Object]]:
        page: list[S3Object] = []
        for (bucket, key), (body, etag, _) in sorted(self.objects.items()):
            if bucket != source.bucket or not key.startswith(source.prefix) or key.startswith(exclude_prefixes):
                continue
            if key.lower().endswith(tuple(source.suffixes)):
                page.append(S3Object(bucket, key, etag, len(body)))
        for start in range(0, len(page), self.page_size):
            self.calls["ListObjectsV2"] += 1
            yield page[start : start + self.page_size]

    def etag(self, bucket: str, key: str) -> str | None:
        found = self.head(bucket, key)
        return found[0] if found else None

    def head(self, bucket: str, key: str) -> tuple[str, dict[str, str]] | None:
        self.calls["HeadObject"] += 1
        found = self.objects.get((bucket, key))
        return None if found is None else (found[1], dict(found[2]))

    def write(
        self,
        bucket: str,
        key: str,
        body: bytes,
        fmt: str,
        metadata: dict[str, str],
        *,
        if_match: str | None = None,
        if_absent: bool = False,
    ) -> str:
        self.calls["PutObject"] += 1
        with self._lock:
            current = self.objects.get((bucket, key))
            if not self.conditional:
                if_match, if_absent = None, False
            if (if_absent and current is not None) or (if_match is not None and (current or (b"", ""))[1] != if_match):
                raise WriteConflictError(bucket, key)
            etag = hashlib.md5(body + key.encode(), usedforsecurity=False).hexdigest()
            self.objects[(bucket, key)] = (body, etag, dict(metadata))
        return etag

    def download(self, bucket: str, key: str, dest: Path, *, if_match: str | None = None) -> None:
        self.calls["GetObject"] += 1
        body, etag, _ = self.objects[(bucket, key)]
        if if_match is not None and if_match != etag:
            raise WriteConflictError(bucket, key)
        dest.write_bytes(body)

    def upload(self, bucket: str, key: str, path: Path, content_type: str) -> str:
        return self.write(bucket, key, path.read_bytes(), "flac", {"Content-Type": content_type})

    def text(self, bucket: str, key: str) -> str:
        return self.objects[(bucket, key)][0].decode()

    def keys(self, bucket: str) -> list[str]:
        return sorted(key for b, key in self.objects if b == bucket)


@dataclass(eq=False)
class FakeLabelStudio:
    """One project's tasks; ids grow, every change bumps ``updated_at`` by a millisecond (or to a given moment).

    ``import_faults`` makes the next imports fail, each with an error and what became of its tasks: "landed" (they
    are in before the error), "late" (Label Studio is still committing them: they land on ``settle()``) or "lost"."""

    tasks: dict[int, dict[str, Any]] = field(default_factory=dict)
    imports: list[list[dict[str, Any]]] = field(default_factory=list)
    clock: datetime = EPOCH
    page_size: int = 1000
    model_version: str = ""
    next_id: int = 1
    import_faults: list[tuple[Exception, str]] = field(default_factory=list)
    committing: list[list[dict[str, Any]]] = field(default_factory=list)
    reads: list[int] = field(default_factory=list)
    sweeps: int = 0
    window_looks: int = 0
    changed_read: int = 0
    """Tasks ``changed_task_pages`` has returned, in full."""
    drop_predictions: bool = False
    """Commit tasks without their predictions (Label Studio does, when an import fails after committing its tasks)."""
    check_faults: list[Exception] = field(default_factory=list)
    """Errors the next reads of which tasks lack predictions raise."""
    project_layouts: dict[int, str] = field(default_factory=dict)
    """A project's layout (as its label config would say); others have the configured one."""
    refused: bool = False
    """Label Studio refused the token on the last request (``LabelStudioClient.refused``)."""

    def layout_of(self, project_id: int, default: str) -> str:
        return self.project_layouts.get(project_id, default)

    def _tick(self) -> str:
        self.clock += timedelta(milliseconds=1)
        return ls_time(self.clock)

    def import_tasks(self, project_id: int, tasks: list[dict[str, Any]]) -> list[int]:
        self.imports.append(tasks)
        if self.import_faults:
            error, outcome = self.import_faults.pop(0)
            if outcome == "landed":
                self._create(project_id, tasks)
            elif outcome == "late":
                self.committing.append(tasks)
            raise error
        return self._create(project_id, tasks)

    def settle(self, project_id: int = 1) -> None:
        """Label Studio finishes the imports it was still committing when the client gave up."""
        while self.committing:
            self._create(project_id, self.committing.pop(0))

    def add_foreign(self, project_id: int = 1, count: int = 1) -> list[int]:
        """Tasks another tool creates (no syncd_id)."""
        return self._create(project_id, [{"data": {"audio": "s3://elsewhere/x.mp3"}} for _ in range(count)])

    def _create(self, project_id: int, tasks: list[dict[str, Any]]) -> list[int]:
        ids = []
        for task in tasks:
            task_id, self.next_id = self.next_id, self.next_id + 1
            self.tasks[task_id] = {"id": task_id, "project": project_id, "data": task["data"], "annotations": []}
            self.tasks[task_id]["predictions"] = [] if self.drop_predictions else list(task.get("predictions") or [])
            self.tasks[task_id]["updated_at"] = self._tick()
            ids.append(task_id)
        return ids

    def update_task_data(self, task_id: int, data: dict[str, Any]) -> None:
        self.tasks[task_id]["data"] = data
        self.tasks[task_id]["updated_at"] = self._tick()

    def delete_task(self, task_id: int) -> None:
        del self.tasks[task_id]

    def without_predictions(self, project_id: int, task_ids: list[int]) -> set[int]:
        if self.check_faults:
            raise self.check_faults.pop(0)
        return {i for i in task_ids if not self.tasks[i]["predictions"]}

    def add_predictions(self, task_id: int, predictions: list[dict[str, Any]]) -> None:
        self.tasks[task_id]["predictions"] += predictions

    def new_tasks(self, project_id: int, after: int) -> dict[int, str | None]:
        self.reads.append(after)
        return {i: t["data"].get("syncd_id") for i, t in sorted(self.tasks.items()) if i > after}

    def task_index(self, project_id: int) -> dict[int, str | None]:
        return {i: t["data"].get("syncd_id") for i, t in sorted(self.tasks.items())}

    def set_model_version(self, project_id: int, model_version: str) -> None:
        self.model_version = model_version

    def annotate(
        self,
        task_id: int,
        text: str,
        *,
        at: str | None = None,
        cancelled: bool = False,
        result: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Submit an annotation whose every region says ``text`` (the whole layout: one line), or ``result``."""
        moment = at or self._tick()
        annotation = {
            "id": 1000 + sum(len(t["annotations"]) for t in self.tasks.values()),
            "result": result or [{"from_name": layouts.TEXT, "type": "textarea", "value": {"text": [text]}}],
            "was_cancelled": cancelled,
            "completed_by": {"email": "reviewer@example.com"},
            "created_at": moment,
            "updated_at": moment,
        }
        self.tasks[task_id]["annotations"].append(annotation)
        self.tasks[task_id]["updated_at"] = moment
        return annotation

    def changed_task_pages(
        self, project_id: int, since: str, after_id: int = 0, page_size: int = 1000
    ) -> Iterator[list[dict[str, Any]]]:
        """Tasks past the keyset position (since, after_id), in (updated_at, id) order; pages of the caller's size
        or of ``self.page_size``, whichever is smaller."""
        changed = sorted(
            (t for t in self.tasks.values() if (t["updated_at"], t["id"]) > (since, after_id)),
            key=lambda t: (t["updated_at"], t["id"]),
        )
        size = min(page_size, self.page_size)
        for start in range(0, len(changed), size):
            self.changed_read += len(changed[start : start + size])
            yield [dict(t) for t in changed[start : start + size]]

    def updated_between(self, project_id: int, low: str, high: str) -> Iterator[tuple[int, str]]:
        self.window_looks += 1
        yield from ((i, t["updated_at"]) for i, t in sorted(self.tasks.items()) if low <= t["updated_at"] <= high)

    def reviewed_task_pages(self, project_id: int) -> Iterator[list[dict[str, Any]]]:
        self.sweeps += 1
        reviewed = [dict(t) for _, t in sorted(self.tasks.items()) if t["annotations"]]
        for start in range(0, len(reviewed), self.page_size):
            yield reviewed[start : start + self.page_size]

    def touch(self, task_ids: list[int], at: str | None = None) -> str:
        """Stamp one ``updated_at`` on many tasks, as Label Studio's Data Manager actions do."""
        moment = at or self._tick()
        for task_id in task_ids:
            self.tasks[task_id]["updated_at"] = moment
        return moment

    def task(self, task_id: int) -> dict[str, Any]:
        if task_id not in self.tasks:
            raise LabelStudioError(f"GET /api/tasks/{task_id}/: HTTP 404: not found")
        return dict(self.tasks[task_id])

    def user_email(self, user_id: int) -> str:
        return f"user{user_id}@example.com"

    def task_count(self, project_id: int) -> int:
        return len(self.tasks)


@dataclass
class FakeTranscriber:
    """Finishes each job on its first poll with one segment saying ``words``; ``fail`` maps keys to errors."""

    words: str = "hello world"
    confidence: float = 0.8
    fail: dict[str, Exception] = field(default_factory=dict)
    started: list[str] = field(default_factory=list)
    while_polling: Callable[[], object] | None = None
    progress_reports: int = 1
    """Progress calls each poll makes, as an in-process engine does between windows."""
    engine: str = "fake"
    max_in_flight: int = 4

    vocabulary: list[str] = field(default_factory=list)

    @property
    def model_version(self) -> str:
        return "fake-1"

    def use_vocabulary(self, words: list[str]) -> None:
        self.vocabulary = words

    def publish_vocabulary(self, words: list[str]) -> None:
        pass

    def close(self) -> None:
        pass

    def start(self, recording: Recording) -> str:
        self.started.append(recording.key)
        return f"job-{recording.syncd_id}"

    def poll(self, recording: Recording, progress: Progress = no_progress) -> Transcript | None:
        for n in range(self.progress_reports):
            progress((n + 1) / self.progress_reports)
        if self.while_polling is not None:
            self.while_polling()
        if recording.key in self.fail:
            raise self.fail[recording.key]
        words = [Word(i * 0.5, i * 0.5 + 0.4, w, self.confidence) for i, w in enumerate(self.words.split())]
        return Transcript(segments=(Segment.from_words(words),), engine=self.engine, model="fake-1", duration=2.0)


def settings(tmp_path: Path, **sections: Any) -> Settings:
    raw: dict[str, Any] = {
        "sources": [{"bucket": "b"}],
        "state": {"path": str(tmp_path / "state.db")},
        "labelstudio": {"layout": "whole"},
    }
    for name, values in sections.items():
        raw[name] = values if isinstance(values, list) else raw.get(name, {}) | values
    return parse(raw)


POSTGRES_ENV = "SYNCD_TEST_POSTGRES"
"""A PostgreSQL server URL (with its password): when set, every unit test's store is a database there instead of a
SQLite file (tests/integration/test_state_postgres.py runs the unit tier this way)."""


def new_store(tmp_path: Path, name: str = "state.db") -> StateStore:
    """The store a unit test works on; the same ``tmp_path`` and ``name`` open the same store again."""
    return StateStore(new_target(tmp_path, name))


def new_target(tmp_path: Path, name: str = "state.db") -> str:
    """Where ``new_store`` keeps that store, not opened (nor migrated) yet: a SQLite file, or a PostgreSQL database
    of its own (created empty) when ``SYNCD_TEST_POSTGRES`` names a server."""
    server = os.environ.get(POSTGRES_ENV)
    if not server:
        return str(tmp_path / name)
    import psycopg

    database = "t_" + hashlib.sha256(f"{tmp_path}/{name}".encode()).hexdigest()[:20]
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone():
            conn.execute(f"CREATE DATABASE {database}")
    return f"{server}/{database}"


class Stack(NamedTuple):
    """Services over fakes, and the fakes themselves for the test to drive and inspect (unpacks as a tuple)."""

    svc: Services
    ls: FakeLabelStudio
    storage: FakeStorage
    engine: FakeTranscriber


GO = threading.Event()
"""A stop event that is never set: the stages run to the end of their work."""


def services(tmp_path: Path, *, client: Any = None, **sections: Any) -> Stack:
    """Services over fakes; ``client`` stands in for Label Studio instead of a FakeLabelStudio."""
    ls, storage, engine = client or FakeLabelStudio(), FakeStorage(), FakeTranscriber()
    svc = Services.assemble(
        settings=settings(tmp_path, **sections),
        state=new_store(tmp_path),
        storage=storage,  # type: ignore[arg-type]
        transcriber=engine,
        labelstudio=ls,  # type: ignore[arg-type]
    )
    svc.projects.current_id = 1
    return Stack(svc, ls, storage, engine)


def recording(key: str = "calls/a.mp3") -> Recording:
    """A recording as the scan records it, in a state of its own."""
    state = StateStore(":memory:")
    ((rec_id, _),) = state.recordings.add_objects([S3Object("bucket", key, "etag1", 10)])
    return state.recordings.get(rec_id)


def with_state(svc: Services, state: StateStore) -> Services:
    """The same clients over another state (restored from a backup, lost and begun anew), connected to the same
    project as a restarted daemon would be."""
    other = Services.assemble(
        svc.settings, state, svc.storage, svc.transcriber, svc.labelstudio, paced=svc.paced, log=svc.log
    )
    other.projects.current_id = svc.projects.current
    return other


def healthy_probes(settings: Settings) -> Probes:
    """/healthz probes that answer "reachable" without calling anything (for an hour)."""
    return Probes(settings, ttl=3600, checks=lambda _settings: {"labelstudio": {"ok": True}, "s3": {"ok": True}})
