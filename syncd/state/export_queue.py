"""The ``export_queue`` table: tasks the export reads again whatever its cursor says (failed ones, parked ones, ones
whose audio came back), with why and how many attempts they have had; and the webhook deliveries any instance
received, waiting for the export lease holder (reason ``webhook``, ``updated_at`` = when received)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, NamedTuple

from syncd.state.db import Database

WEBHOOK = "webhook"
"""The reason of a row a webhook delivery queued: the holder's webhook job exports it at once."""


class WebhookDelivery(NamedTuple):
    task: int
    project: int
    """0 when the delivery did not name it (the task, once read, does)."""
    received: float
    """Seconds since the epoch on the receiving instance's clock; also the row's version (see ``unqueue_webhook``)."""


class ExportQueue:
    """The export queue and the webhook deliveries waiting in it (``StateStore.export_queue``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def queue_export(
        self,
        project_id: int,
        task_id: int,
        rec_id: int | None,
        reason: str,
        *,
        attempt: bool = False,
        park_after: int = 0,
        task_updated_at: str | None = None,
    ) -> bool:
        """Ask the export stage to read ``task_id`` again next cycle, with why. ``attempt`` counts a failed attempt; at
        ``park_after`` attempts the task is parked (left alone until `syncd retry` or until it changes again in
        Label Studio: ``task_updated_at`` is the version that failed). Returns True once parked."""
        counted = int(attempt)
        with self.db.tx() as db:
            db.execute(
                "INSERT INTO export_queue (task_id, project_id, recording_id, reason, task_updated_at, attempts,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (task_id) DO UPDATE SET"
                " reason = excluded.reason, project_id = excluded.project_id, recording_id = excluded.recording_id,"
                " task_updated_at = excluded.task_updated_at, attempts = export_queue.attempts + excluded.attempts,"
                " updated_at = excluded.updated_at",
                (task_id, project_id, rec_id, reason, task_updated_at, counted, time.time()),
            )
            if park_after:
                db.execute(
                    "UPDATE export_queue SET parked = 1 WHERE task_id = ? AND attempts >= ?", (task_id, park_after)
                )
            parked = db.execute("SELECT parked FROM export_queue WHERE task_id = ?", (task_id,)).scalar_one()
        return bool(parked)

    def queue_webhook(self, task_id: int, project_id: int | None, received: float | None = None) -> None:
        """A webhook asked for ``task_id`` (on whichever instance it reached): the export holder's webhook job picks it
        up. A parked task comes back: a delivery means it changed."""
        with self.db.tx() as db:
            db.execute(
                "INSERT INTO export_queue (task_id, project_id, reason, attempts, updated_at) VALUES (?, ?, ?, 0, ?)"
                " ON CONFLICT (task_id) DO UPDATE SET reason = excluded.reason, parked = 0,"
                " project_id = CASE WHEN excluded.project_id = 0 THEN export_queue.project_id"
                " ELSE excluded.project_id END, updated_at = excluded.updated_at",
                (task_id, project_id or 0, WEBHOOK, time.time() if received is None else received),
            )

    def webhook_deliveries(self, limit: int = 100) -> list[WebhookDelivery]:
        """The deliveries waiting for the export holder, oldest first."""
        rows = self.db.read(
            "SELECT task_id, project_id, updated_at FROM export_queue WHERE reason = ? AND parked = 0"
            " ORDER BY updated_at LIMIT ?",
            (WEBHOOK, limit),
        )
        return [WebhookDelivery(int(r["task_id"]), int(r["project_id"]), float(r["updated_at"])) for r in rows]

    def unqueue_webhook(self, delivery: WebhookDelivery) -> bool:
        """``delivery`` is exported: its row leaves the queue unless a newer delivery of the task came meanwhile
        (that one is exported next). False when one did."""
        with self.db.tx() as db:
            gone = db.execute(
                "DELETE FROM export_queue WHERE task_id = ? AND updated_at <= ?", (delivery.task, delivery.received)
            ).rowcount
        return bool(gone)

    def webhook_backlog(self) -> tuple[int, float | None]:
        """(deliveries waiting, when the oldest was received): what /metrics and `syncd status` show."""
        row = self.db.read_one(
            "SELECT count(*) AS n, min(updated_at) AS oldest FROM export_queue WHERE reason = ? AND parked = 0",
            (WEBHOOK,),
        )
        if row is None or not row["n"]:
            return 0, None
        return int(row["n"]), float(row["oldest"])

    def queued(self, project_id: int) -> list[int]:
        """Task ids the export stage reads again this cycle (queued, not parked)."""
        rows = self.db.read(
            "SELECT task_id FROM export_queue WHERE project_id = ? AND parked = 0 ORDER BY task_id", (project_id,)
        )
        return [int(r["task_id"]) for r in rows]

    def parked_tasks(self, project_id: int) -> dict[int, str | None]:
        """task id -> the task version (updated_at) that was parked: an unchanged parked task is not read again."""
        rows = self.db.read(
            "SELECT task_id, task_updated_at FROM export_queue WHERE project_id = ? AND parked = 1", (project_id,)
        )
        return {int(r["task_id"]): r["task_updated_at"] for r in rows}

    def unqueue_exports(self, task_ids: Iterable[int]) -> None:
        """Exported (or nothing to export): these tasks leave the queue, parked or not."""
        ids = list(task_ids)
        with self.db.tx() as db:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                among, args = db.one_of("task_id", chunk)
                db.execute(f"DELETE FROM export_queue WHERE {among}", args)

    def parked_exports(self, limit: int = 100) -> list[dict[str, Any]]:
        """Parked tasks with their reason and recording (for `syncd status`)."""
        rows = self.db.read(
            "SELECT q.task_id, q.project_id, q.reason, q.attempts, q.updated_at, r.id AS recording, r.bucket, r.key"
            " FROM export_queue q LEFT JOIN recordings r ON r.id = q.recording_id WHERE q.parked = 1"
            " ORDER BY q.updated_at DESC LIMIT ?",
            (limit,),
        )
        return [dict(r) for r in rows]

    def parked_counts(self) -> dict[str, int]:
        """Items parked by stage: what /healthz ("degraded") and /metrics report."""
        return {"export": int(self.db.scalar("SELECT count(*) FROM export_queue WHERE parked = 1"))}

    def requeue_parked(self) -> int:
        """`syncd retry`: parked tasks are read again, with a fresh attempt budget."""
        with self.db.tx() as db:
            return db.execute("UPDATE export_queue SET parked = 0, attempts = 0 WHERE parked = 1").rowcount
