"""The ``export_queue`` table: tasks the export reads again whatever its cursor says (failed ones, parked ones, ones
whose audio came back), with why and how many attempts they have had."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from syncd.state.db import Database


class ExportQueue:
    """The export queue (a part of ``StateStore``)."""

    db: Database

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
                " reason = excluded.reason, recording_id = excluded.recording_id,"
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

    def export_queue(self, project_id: int) -> list[int]:
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
                db.execute(f"DELETE FROM export_queue WHERE task_id IN ({','.join('?' * len(chunk))})", chunk)

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
