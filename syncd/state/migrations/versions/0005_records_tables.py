"""Twins, outages and refusals get tables of their own: until now they were JSON documents in the ``cursors`` table
(``task-twins``, ``dependency:<name>``, ``refused:<what>:<project>``). Their content moves into the new tables and
those cursor rows go.

The old names are written here as they were, not read from ``syncd.state.keys``: a revision is history, and the
registry lists only what the table holds now.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"

TWINS = "task-twins"
OUTAGE = "dependency:"
REFUSAL = "refused:"
_MOVED = "name = :twins OR substr(name, 1, :n) = :outage OR substr(name, 1, :m) = :refusal"
_MOVED_ARGS = {"twins": TWINS, "n": len(OUTAGE), "outage": OUTAGE, "m": len(REFUSAL), "refusal": REFUSAL}


def upgrade() -> None:
    twins = op.create_table(
        "twins",
        sa.Column("syncd_id", sa.Text, primary_key=True),
        sa.Column("tasks", sa.Text, nullable=False),
        sa.Column("reviewed", sa.Text, nullable=False),
        sa.Column("key", sa.Text),
        sa.Column("checked", sa.Float, nullable=False),
    )
    outages = op.create_table(
        "outages",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("ok", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("down_since", sa.Float),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("retry_at", sa.Float, nullable=False),
    )
    refusals = op.create_table(
        "refusals",
        sa.Column("what", sa.Text, primary_key=True),
        sa.Column("project", sa.Integer, primary_key=True),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    docs = _documents()
    _insert(twins, [_twin(sid, group) for sid, group in docs.get(TWINS, {}).items()])
    _insert(outages, [_outage(doc) for name, doc in docs.items() if name.startswith(OUTAGE)])
    _insert(refusals, [_refusal(doc) for name, doc in docs.items() if name.startswith(REFUSAL)])
    op.get_bind().execute(sa.text(f"DELETE FROM cursors WHERE {_MOVED}"), _MOVED_ARGS)


def _documents() -> dict[str, Any]:
    """The cursor rows that move, by name, their JSON read (an empty value holds nothing)."""
    rows = op.get_bind().execute(sa.text(f"SELECT name, value FROM cursors WHERE {_MOVED}"), _MOVED_ARGS)
    return {str(name): json.loads(value) for name, value in rows if value}


def _insert(table: sa.Table, rows: list[dict[str, Any]]) -> None:
    if rows:
        op.bulk_insert(table, rows)


def _twin(sid: str, group: dict[str, Any]) -> dict[str, Any]:
    return {
        "syncd_id": sid,
        "tasks": json.dumps(list(group.get("tasks", []))),
        "reviewed": json.dumps(list(group.get("reviewed", []))),
        "key": group.get("key"),
        "checked": float(group.get("checked") or 0),
    }


def _outage(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": doc["name"],
        "ok": int(bool(doc.get("ok"))),
        "error": doc.get("error"),
        "down_since": doc.get("down_since"),
        "failures": int(doc.get("failures", 0)),
        "retry_at": float(doc.get("retry_at", 0.0)),
    }


def _refusal(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "what": doc["what"],
        "project": int(doc["project"]),
        "target": doc["target"],
        "reason": doc["reason"],
        "at": float(doc["at"]),
    }
