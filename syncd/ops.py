"""Operator commands: `syncd check` (can this config work?), `syncd status` (what is where?), `syncd retry`.

`check` only reads, except one small object it writes beside the audio and deletes again (proving output writes
work); it never creates the Label Studio project or registers storage.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from syncd import dependencies, exitcodes
from syncd.cluster import silent
from syncd.config import Settings
from syncd.log import describe_error
from syncd.probe import ProbeError, classify, conditional_writes, labelstudio_alive, quick_s3_client
from syncd.recording import PENDING
from syncd.state import StateStore


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"


def _run(name: str, probe: Callable[[], str]) -> Check:
    try:
        return Check(name, True, probe())
    except ProbeError as exc:
        return Check(name, False, str(exc))
    except Exception as exc:
        return Check(name, False, f"{describe_error(exc)} ({exitcodes.DOC[classify(exc)]})")


def checks(settings: Settings, config_path: str) -> Iterator[Check]:
    """Each check in order; later ones are skipped (not run) when what they need already failed."""
    from syncd.labelstudio import LabelStudioClient
    from syncd.services import labelstudio_token

    engine = settings.transcriber.engine
    yield Check("config", True, f"{config_path}: valid ({len(settings.sources)} source(s), engine {engine})")
    yield _run("state", lambda: _state_writable(settings))
    token = _run("labelstudio.token", lambda: "found" if labelstudio_token(settings) else "")
    yield token
    alive = _run("labelstudio.reachable", lambda: _alive(settings))
    yield alive
    if token.ok and alive.ok:
        client = LabelStudioClient(settings.labelstudio, labelstudio_token(settings))
        auth = _run("labelstudio.auth", lambda: f"token accepted (user {client.whoami()})")
        yield auth
        if auth.ok:
            yield _run("labelstudio.project", lambda: client.describe_project(_current_title(settings)))
    s3 = quick_s3_client(settings)
    for source in settings.sources:
        where = f"s3://{source.bucket}/{source.prefix}"
        listed = _run(f"s3.list {where}", partial(_list, s3, source.bucket, source.prefix))
        yield listed
        if listed.ok:
            yield _run(f"s3.read {where}", partial(_read, s3, source.bucket, source.prefix))
            yield _run(f"s3.write {where}", partial(_write_delete, settings, source.bucket, source.prefix))
            yield _run(f"s3.conditional_writes {where}", partial(_conditional, settings, s3, source))
    if engine == "aws":
        yield _run("transcribe", lambda: _transcribe(settings))


def _current_title(settings: Settings) -> str:
    """The project new tasks go to, as far as the state knows (after rollover), else the configured one."""
    from syncd.services import period_title

    wanted = settings.labelstudio.project
    if not wanted.isdigit() and (settings.state.url or Path(settings.state.path).exists()):
        store = StateStore.open(settings.state)
        try:
            projects = store.projects()
        finally:
            store.close()
        if projects:
            return str(projects[-1]["title"])
    return wanted if wanted.isdigit() else period_title(wanted)


def _state_writable(settings: Settings) -> str:
    store = StateStore.open(settings.state)
    try:
        return f"{store.where} opened ({sum(store.counts().values())} recordings)"
    finally:
        store.close()


def _alive(settings: Settings) -> str:
    labelstudio_alive(settings)
    return f"{settings.labelstudio.url} answers /health"


def _list(s3: Any, bucket: str, prefix: str) -> str:
    page = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1000)
    return f"listed {page.get('KeyCount', 0)} object(s){' (more)' if page.get('IsTruncated') else ''}"


def _read(s3: Any, bucket: str, prefix: str) -> str:
    page = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1000)
    first = next((o for o in page.get("Contents", []) if o["Size"] > 0), None)
    if first is None:
        return "no object to read yet (nothing to check)"
    s3.get_object(Bucket=bucket, Key=first["Key"], Range="bytes=0-0")["Body"].read()
    return f"read {first['Key']!r}"


def _write_delete(settings: Settings, bucket: str, prefix: str) -> str:
    """Writes a .txt (never taken for audio) where outputs go, through the writer the exporter uses, then deletes it."""
    from syncd.storage import Storage

    storage = Storage(settings.s3, conditional=settings.output.conditional_writes == "require")
    key = f"{prefix}syncd-check-{uuid.uuid4().hex[:12]}.transcript.txt"
    storage.write(bucket, key, b"syncd check: safe to delete\n", "txt", {}, if_absent=True)
    storage.delete(bucket, key)
    return f"wrote and deleted {key!r}"


def _conditional(settings: Settings, s3: Any, source: Any) -> str:
    if settings.output.conditional_writes == "single-writer":
        return 'not required: output.conditional_writes = "single-writer" (one syncd writes these outputs)'
    return conditional_writes(s3, source.bucket, source.prefix)


def _transcribe(settings: Settings) -> str:
    from syncd.storage import boto_client

    client = boto_client("transcribe", settings.s3, settings.transcriber.aws.endpoint_url)
    client.list_transcription_jobs(MaxResults=1)
    return f"transcribe:ListTranscriptionJobs allowed in {settings.s3.region}"


def run_checks(settings: Settings, config_path: str, out: Callable[[str], None] = print) -> int:
    failed = 0
    for check in checks(settings, config_path):
        out(check.line())
        failed += not check.ok
    out(f"{'all checks passed' if not failed else f'{failed} check(s) failed'}")
    return exitcodes.CHECK_FAILED if failed else exitcodes.OK


# --- status / retry -------------------------------------------------------------------------------------------


def _iso(moment: float | None) -> str | None:
    return None if moment is None else datetime.fromtimestamp(moment, tz=UTC).isoformat(timespec="seconds")


def _instances(store: StateStore, lease_seconds: float) -> list[dict[str, Any]]:
    now = time.time()
    return [
        {
            "name": i["name"],
            "host": i["host"],
            "pid": i["pid"],
            "roles": i["roles"].split(","),
            "version": i["version"],
            "started": _iso(i["started_at"]),
            "last_seen_seconds": round(now - i["seen_at"], 1),
            "silent": silent(i, lease_seconds),
            "holds": i["holds"],
            "working_on": i["claimed"],
        }
        for i in store.leases.instances()
    ]


def status_report(store: StateStore, lease_seconds: float = 30.0) -> dict[str, Any]:
    oldest = store.oldest_pending()
    counts = store.counts()
    now = time.time()
    projects = store.projects()
    tasks = store.project_task_counts()
    return {
        "recordings": counts,
        "instances": _instances(store, lease_seconds),
        "projects": [
            {
                "id": p["id"],
                "title": p["title"],
                "tasks": tasks.get(str(p["id"]), 0),
                "role": "imports and exports" if p is projects[-1] else "exports",
            }
            for p in projects
        ],
        "pending": sum(counts[s] for s in PENDING),
        "oldest_pending": None
        if oldest is None
        else {
            "bucket": oldest.bucket,
            "key": oldest.key,
            "status": oldest.status,
            "since": _iso(oldest.updated_at),
            "age_seconds": round(now - oldest.updated_at, 1),
        },
        "dependencies": {
            name: {
                "ok": dep.ok,
                "down_since": _iso(dep.down_since),
                "down_seconds": None if dep.ok else round(dep.down_seconds(now), 1),
                "error": dep.error,
                "retry_at": None if dep.ok else _iso(dep.retry_at),
            }
            for name, dep in sorted(dependencies.all_known(store).items())
        },
        "parked": [
            {
                "task": p["task_id"],
                "recording": p["recording"],
                "bucket": p["bucket"],
                "key": p["key"],
                "reason": p["reason"],
                "attempts": p["attempts"],
                "at": _iso(p["updated_at"]),
            }
            for p in store.parked_exports()
        ],
        "last_errors": [
            {
                "id": r.id,
                "bucket": r.bucket,
                "key": r.key,
                "status": r.status,
                "reason": r.reason,
                "attempts": r.attempts,
                "at": _iso(r.updated_at),
            }
            for r in store.last_errors()
        ],
    }


def format_status(report: dict[str, Any]) -> str:
    lines = ["recordings:"]
    lines += [f"  {state:<13} {count}" for state, count in report["recordings"].items()]
    lines.append("instances:" if report["instances"] else "instances: none running")
    for i in report["instances"]:
        seen = f"SILENT {i['last_seen_seconds']:.0f}s" if i["silent"] else f"seen {i['last_seen_seconds']:.0f}s ago"
        holds = ", ".join(i["holds"]) or "no lease"
        lines.append(
            f"  {i['name']:<16} {i['host']}:{i['pid']:<8} {seen:<16} roles {','.join(i['roles'])};"
            f" holds {holds}; working on {i['working_on']}"
        )
    lines.append("projects (tasks as last seen):" if report["projects"] else "projects: none yet")
    lines += [f"  {p['id']:<6} {p['tasks']:>7} tasks  {p['role']:<19} {p['title']}" for p in report["projects"]]
    oldest = report["oldest_pending"]
    if oldest:
        lines.append(
            f"oldest pending: s3://{oldest['bucket']}/{oldest['key']} ({oldest['status']} since {oldest['since']})"
        )
    else:
        lines.append("oldest pending: none")
    down = {name: dep for name, dep in report["dependencies"].items() if not dep["ok"]}
    lines.append("dependencies: " + ("all up" if not down else f"{len(down)} down"))
    for name, dep in down.items():
        since = f"{dep['down_since']} ({dep['down_seconds']:.0f}s)"
        lines.append(f"  {name} DOWN since {since}, next try {dep['retry_at']}")
        lines.append(f"      {dep['error']}")
    parked = report["parked"]
    lines.append(f"parked exports ({len(parked)}; `syncd retry` re-queues):" if parked else "parked exports: none")
    for item in parked:
        lines.append(
            f"  [{item['at']}] task {item['task']} s3://{item['bucket']}/{item['key']} ({item['attempts']} attempts)"
        )
        lines.append(f"      {item['reason']}")
    lines.append("last errors:" if report["last_errors"] else "last errors: none")
    for err in report["last_errors"]:
        lines.append(f"  [{err['at']}] s3://{err['bucket']}/{err['key']} ({err['status']}, {err['attempts']} attempts)")
        lines.append(f"      {err['reason']}")
    return "\n".join(lines)


def print_status(settings: Settings, as_json: bool) -> int:
    store = StateStore.open(settings.state)
    try:
        report = status_report(store, settings.instance.lease_seconds)
    finally:
        store.close()
    print(json.dumps(report, indent=2) if as_json else format_status(report))
    return exitcodes.OK


def retry(settings: Settings) -> int:
    store = StateStore.open(settings.state)
    try:
        count = store.requeue_failed()
        parked = store.requeue_parked()
    finally:
        store.close()
    print(f"re-queued {count} failed recording(s) and {parked} parked export(s)")
    return exitcodes.OK
