"""`syncd status`: what is where, read from the state alone (no call to Label Studio or S3), as text or JSON.

Recordings per state, the instances and their leases, the projects, the oldest pending recording, the dependencies
that are down, parked exports, twin tasks left standing, predictions left unchecked and the last errors: what an
operator needs to tell "busy" from "stuck".
"""

from __future__ import annotations

import json
import time
from typing import Any

from syncd import __version__, errors
from syncd.config import Settings
from syncd.domain.moments import iso
from syncd.domain.recording import PENDING
from syncd.state import StateStore, migrate, refusals
from syncd.state.cluster import silent


def _instances(store: StateStore, lease_seconds: float) -> list[dict[str, Any]]:
    now = store.leases.now()  # the clock the instances' beats are stamped with
    return [
        {
            "name": i["name"],
            "host": i["host"],
            "pid": i["pid"],
            "roles": i["roles"].split(","),
            "version": i["version"],
            "started": iso(i["started_at"]),
            "last_seen_seconds": round(now - i["seen_at"], 1),
            "silent": silent(i, lease_seconds, now),
            "holds": i["holds"],
            "working_on": i["claimed"],
        }
        for i in store.leases.instances()
    ]


def status_report(store: StateStore, lease_seconds: float = 30.0) -> dict[str, Any]:
    oldest = store.recordings.oldest_pending()
    counts = store.recordings.counts()
    now = time.time()
    projects = store.tasks.projects()
    tasks = store.tasks.project_task_counts()
    revision, app_version = store.schema()
    return {
        "version": {
            "running": __version__,
            "state_app_version": app_version,
            "state_schema": revision,
            "schema_head": migrate.head(),
        },
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
            "since": iso(oldest.updated_at),
            "age_seconds": round(now - oldest.updated_at, 1),
        },
        "dependencies": {
            name: {
                "ok": dep.ok,
                "down_since": iso(dep.down_since),
                "down_seconds": None if dep.ok else round(dep.down_seconds(now), 1),
                "error": dep.error,
                "retry_at": None if dep.ok else iso(dep.retry_at),
            }
            for name, dep in sorted(store.outages.all_known().items())
        },
        "parked": [
            {
                "task": p["task_id"],
                "recording": p["recording"],
                "bucket": p["bucket"],
                "key": p["key"],
                "reason": p["reason"],
                "attempts": p["attempts"],
                "at": iso(p["updated_at"]),
            }
            for p in store.export_queue.parked_exports()
        ],
        "twins": [
            {
                "syncd_id": sid,
                "key": group.get("key"),
                "tasks": group["tasks"],
                "reviewed": group.get("reviewed", []),
                "checked": iso(group.get("checked") or None),
            }
            for sid, group in sorted(store.twins.all().items())
        ],
        "labelstudio_refused": [
            {
                "what": r.what,
                "project": r.project,
                "target": r.target,
                "reason": r.reason,
                "means": r.consequence,
                "at": iso(r.at),
            }
            for r in store.refusals.all_known()
        ],
        "predictions_unchecked": {str(p): n for p, n in sorted(store.tasks.unchecked_predictions().items())},
        "webhooks_waiting": _webhooks_waiting(store),
        "last_errors": [
            {
                "id": r.id,
                "bucket": r.bucket,
                "key": r.key,
                "status": r.status,
                "reason": r.reason,
                "attempts": r.attempts,
                "at": iso(r.updated_at),
            }
            for r in store.recordings.last_errors()
        ],
    }


def _webhooks_waiting(store: StateStore) -> dict[str, Any]:
    count, oldest = store.export_queue.webhook_backlog()
    return {"count": count, "oldest": iso(oldest)}


def format_status(report: dict[str, Any]) -> str:
    version = report["version"]
    lines = [
        f"syncd {version['running']}; state schema {version['state_schema']} (this release's newest:"
        f" {version['schema_head']}), brought up to date by syncd {version['state_app_version']}",
        "recordings:",
    ]
    lines += [f"  {state:<13} {count}" for state, count in report["recordings"].items()]
    lines.append("instances:" if report["instances"] else "instances: none running")
    for i in report["instances"]:
        seen = f"SILENT {i['last_seen_seconds']:.0f}s" if i["silent"] else f"seen {i['last_seen_seconds']:.0f}s ago"
        holds = ", ".join(i["holds"]) or "no lease"
        lines.append(
            f"  {i['name']:<16} {i['host']}:{i['pid']:<8} syncd {i['version']:<11} {seen:<16}"
            f" roles {','.join(i['roles'])};"
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
    twins = report["twins"]
    lines.append(f"twin tasks ({len(twins)} audio versions with more than one task):" if twins else "twin tasks: none")
    for twin in twins:
        reviewed = f"reviewed on {', '.join(map(str, twin['reviewed']))}" if twin["reviewed"] else "unreviewed"
        lines.append(f"  {twin['key'] or twin['syncd_id']}: tasks {', '.join(map(str, twin['tasks']))} ({reviewed})")
    refused = report["labelstudio_refused"]
    lines.append("refused by Label Studio:" if refused else "refused by Label Studio: nothing")
    for item in refused:
        where = f"{item['what']} on project {item['project']} ({item['target']})"
        lines.append(f"  [{item['at']}] {where}: {item['reason']}")
        lines.append(f"      meanwhile {item['means']}")
    if refused:
        lines.append(f"  {refusals.REMEDY}")
    unchecked = report["predictions_unchecked"]
    if unchecked:
        lines.append("predictions unchecked (checked again by each import run):")
        lines += [f"  project {project}: {count} tasks" for project, count in unchecked.items()]
    hooks = report["webhooks_waiting"]
    if hooks["count"]:
        lines.append(
            f"webhook deliveries waiting for the export holder: {hooks['count']} (oldest since {hooks['oldest']})"
        )
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
    return errors.OK
