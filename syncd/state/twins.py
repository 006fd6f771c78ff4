"""The ``twins`` table: the twin groups (two or more tasks for one audio version) found and not yet resolved, by
syncd_id: their tasks, which of them hold a review, the recording's key, and when they were last looked at. The import
stage notes and repairs them; `syncd status`, /metrics and /healthz read what is left standing."""

from __future__ import annotations

import json
from typing import Any

from syncd.state.db import Database, Tx

Group = dict[str, Any]
"""A twin group as the stages read it: ``tasks``, ``reviewed`` (task ids), ``checked`` (unix time), ``key``."""


class Twins:
    """Twin groups left standing (``StateStore.twins``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def all(self) -> dict[str, Group]:
        """The twin groups left standing, by syncd_id."""
        rows = self.db.read("SELECT syncd_id, tasks, reviewed, key, checked FROM twins ORDER BY syncd_id")
        return {str(r["syncd_id"]): _group(dict(r)) for r in rows}

    def counts(self) -> dict[str, int]:
        """Twin groups standing: "reviewed" (more than one of the twins holds a review; a person should look, and
        /healthz is degraded) and "unreviewed" (kept by ``labelstudio.on_duplicate = "keep"``)."""
        groups = self.all().values()
        reviewed = sum(len(g.get("reviewed", [])) > 1 for g in groups)
        return {"reviewed": reviewed, "unreviewed": len(groups) - reviewed}

    def note(self, found: dict[str, list[int]]) -> None:
        """Groups just seen holding these tasks (syncd_id -> task ids) are due for repair: nothing reviewed known yet,
        never looked at; a group already standing keeps its key."""
        with self.db.tx() as db:
            for sid, tasks in found.items():
                db.execute(
                    "INSERT INTO twins (syncd_id, tasks, reviewed, checked) VALUES (?, ?, '[]', 0)"
                    " ON CONFLICT (syncd_id) DO UPDATE SET tasks = excluded.tasks, reviewed = '[]', checked = 0",
                    (sid, json.dumps(sorted(tasks))),
                )

    def store(self, outcome: dict[str, Group | None]) -> None:
        """What repairs left of each group: None once it is resolved (its row goes), else the group as it stands."""
        with self.db.tx() as db:
            for sid, group in outcome.items():
                if group is None:
                    db.execute("DELETE FROM twins WHERE syncd_id = ?", (sid,))
                else:
                    _put(db, sid, group)


def _put(db: Tx, sid: str, group: Group) -> None:
    db.execute(
        "INSERT INTO twins (syncd_id, tasks, reviewed, key, checked) VALUES (?, ?, ?, ?, ?) ON CONFLICT (syncd_id)"
        " DO UPDATE SET tasks = excluded.tasks, reviewed = excluded.reviewed, key = excluded.key,"
        " checked = excluded.checked",
        (
            sid,
            json.dumps(list(group.get("tasks", []))),
            json.dumps(list(group.get("reviewed", []))),
            group.get("key"),
            float(group.get("checked") or 0),
        ),
    )


def _group(row: dict[str, Any]) -> Group:
    group: Group = {"tasks": json.loads(row["tasks"]), "reviewed": json.loads(row["reviewed"])}
    group["checked"] = float(row["checked"])
    if row["key"] is not None:
        group["key"] = row["key"]
    return group
