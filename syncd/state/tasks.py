"""The ``projects`` and ``labelstudio_tasks`` tables: the Label Studio projects syncd writes to and reads from (oldest
first; the last one takes new tasks), and every task seen in them, ours or not (task id -> the ``syncd_id`` in its
data). Deletions, twins and adoptions are found by comparing these with what Label Studio holds, without rescanning
a project."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from syncd.domain.recording import Recording, Status
from syncd.state import keys
from syncd.state.cursors import Cursors
from syncd.state.db import Database
from syncd.state.recordings import COLUMNS, with_extra


class Tasks:
    """Projects and the tasks seen in them (``StateStore.tasks``); the prediction checks left to do are cursors
    (``keys.UNCHECKED``)."""

    def __init__(self, db: Database, cursors: Cursors) -> None:
        self.db = db
        self.cursors = cursors

    def unchecked_predictions(self) -> dict[int, int]:
        """project -> how many of our tasks wait for their predictions to be checked again (from the lowest task
        id a failed check left on)."""
        found = {}
        for name, low in self.cursors.prefixed(keys.UNCHECKED.name).items():
            project = int(name.removeprefix(keys.UNCHECKED.name))
            sql = "SELECT count(*) FROM recordings WHERE project_id = ? AND task_id >= ?"
            found[project] = int(self.db.scalar(sql, (project, int(low))))
        return found

    def note_tasks(self, project_id: int, tasks: dict[int, str | None]) -> list[int]:
        """Remember tasks seen in Label Studio (task id -> the syncd_id in its data, None for others' tasks); returns
        the ids not seen before."""
        added = []
        with self.db.tx() as db:
            for task_id, sid in tasks.items():
                cur = db.execute(
                    "INSERT INTO labelstudio_tasks (project_id, task_id, syncd_id) VALUES (?, ?, ?)"
                    " ON CONFLICT DO NOTHING",
                    (project_id, task_id, sid),
                )
                if cur.rowcount:
                    added.append(task_id)
        return added

    def twin_groups(self, sids: list[str]) -> dict[str, list[tuple[int, int]]]:
        """Of ``sids``, those seen on more than one task: syncd_id -> [(project, task id)]. Indexed by syncd_id, so
        its cost follows the tasks just seen, not the projects."""
        groups: dict[str, list[tuple[int, int]]] = {}
        for start in range(0, len(sids), 500):
            chunk = sids[start : start + 500]
            among, args = self.db.one_of("syncd_id", chunk)
            rows = self.db.read(
                f"SELECT syncd_id, project_id, task_id FROM labelstudio_tasks WHERE {among} ORDER BY syncd_id, task_id",
                args,
            )
            for r in rows:
                groups.setdefault(str(r["syncd_id"]), []).append((int(r["project_id"]), int(r["task_id"])))
        return {sid: found for sid, found in groups.items() if len(found) > 1}

    def forget_tasks(self, project_id: int, task_ids: Iterable[int]) -> None:
        with self.db.tx() as db:
            db.executemany(
                "DELETE FROM labelstudio_tasks WHERE project_id = ? AND task_id = ?",
                [(project_id, task_id) for task_id in task_ids],
            )

    def seen_task_count(self, project_id: int) -> int:
        """How many tasks, ours or not, the project held when we last looked: one indexed count."""
        sql = "SELECT count(*) FROM labelstudio_tasks WHERE project_id = ?"
        return int(self.db.scalar(sql, (project_id,)))

    def seen_tasks(self, project_id: int) -> dict[int, str | None]:
        """task id -> syncd_id of every task seen in the project: read only when the counts disagree."""
        rows = self.db.read("SELECT task_id, syncd_id FROM labelstudio_tasks WHERE project_id = ?", (project_id,))
        return {int(r["task_id"]): r["syncd_id"] for r in rows}

    def adoptable(self, project_id: int) -> list[tuple[Recording, int]]:
        """Recordings waiting to be imported (transcribed or importing) whose task Label Studio already holds, with
        that task (the lowest id when there are several): these are adopted, never imported again."""
        columns = ", ".join(f"r.{c.strip()}" for c in COLUMNS.split(","))
        rows = self.db.read(
            f"SELECT {columns}, min(t.task_id) AS found FROM recordings r JOIN labelstudio_tasks t"
            " ON t.syncd_id = r.syncd_id AND t.project_id = ? WHERE r.status IN (?, ?) GROUP BY r.id ORDER BY r.id",
            (project_id, Status.TRANSCRIBED, Status.IMPORTING),
        )
        return [(rec, int(more["found"])) for rec, more in (with_extra(r, "found") for r in rows)]

    def project_tasks(self, project_id: int) -> dict[int, int]:
        """task id -> recording id of every task we hold in a project (export: notice tasks deleted there)."""
        rows = self.db.read(
            "SELECT task_id, id FROM recordings WHERE project_id = ? AND task_id IS NOT NULL", (project_id,)
        )
        return {int(r["task_id"]): int(r["id"]) for r in rows}

    def projects(self) -> list[dict[str, Any]]:
        rows = self.db.read("SELECT id, title, seq, created_at FROM projects ORDER BY seq, id")
        return [dict(r) for r in rows]

    def add_project(self, project_id: int, title: str, seq: int) -> None:
        with self.db.tx() as db:
            db.execute(
                "INSERT INTO projects (id, title, seq, created_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET title = excluded.title, seq = excluded.seq",
                (project_id, title, seq, time.time()),
            )

    def project_task_counts(self) -> dict[str, int]:
        """Tasks seen per project syncd writes to or reads from (project id -> count, ours and others'): status and
        metrics, with no call to Label Studio."""
        rows = self.db.read(
            "SELECT p.id, (SELECT count(*) FROM labelstudio_tasks t WHERE t.project_id = p.id) AS n FROM projects p"
        )
        return {str(r["id"]): int(r["n"]) for r in rows}
