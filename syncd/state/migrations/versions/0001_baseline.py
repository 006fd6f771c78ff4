"""Baseline: the schema a pre-Alembic SQLite state reached at ``user_version`` 7 (see ``syncd.state.legacy``).

Revision ID: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None

KEY = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")
"""Object keys compare byte-wise, as S3 lists them (the deletion merge-join walks both in the same order)."""


def upgrade() -> None:
    op.create_table(
        "recordings",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("syncd_id", sa.Text, nullable=False, unique=True),
        sa.Column("bucket", sa.Text, nullable=False),
        sa.Column("key", KEY, nullable=False),
        sa.Column("etag", sa.Text, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("last_modified", sa.Text),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("failed_stage", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.Float, nullable=False, server_default="0"),
        sa.Column("engine", sa.Text),
        sa.Column("job_name", sa.Text),
        sa.Column("transcript", sa.Text),
        sa.Column("score", sa.Float),
        sa.Column("task_id", sa.Integer),
        sa.Column("project_id", sa.Integer),
        sa.Column("annotation_id", sa.Integer),
        sa.Column("annotation_updated_at", sa.Text),
        sa.Column("exported_at", sa.Float),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("ready_at", sa.Float),
        sa.Column("review_mode", sa.Text),
        sa.Column("imported_at", sa.Float),
        sa.Column("submitted_at", sa.Float),
        sa.Column("annotator", sa.Text),
        sa.Column("word_errors", sa.Integer),
        sa.Column("reference_words", sa.Integer),
        sa.Column("duration", sa.Float),
        sa.Column("parent_id", sa.Integer),
        sa.Column("unit_start", sa.Float),
        sa.Column("review", sa.Text),
        sa.Column("units_changed", sa.Float),
        sa.UniqueConstraint("bucket", "key", "etag"),
    )
    op.create_index("recordings_status", "recordings", ["status", "next_attempt_at"])
    op.create_index("recordings_key", "recordings", ["bucket", "key"])
    op.create_index("recordings_task", "recordings", ["task_id"])
    op.create_index("recordings_ready", "recordings", ["status", "ready_at"])
    op.create_index("recordings_parent", "recordings", ["parent_id"])
    op.create_index("recordings_units_changed", "recordings", ["units_changed"])
    op.create_table(
        "cursors", sa.Column("name", sa.Text, primary_key=True), sa.Column("value", sa.Text, nullable=False)
    )
    op.create_table(
        "export_queue",
        sa.Column("task_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("recording_id", sa.Integer),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("task_updated_at", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("parked", sa.Integer, nullable=False, server_default="0"),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "labelstudio_tasks",
        sa.Column("project_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("task_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("syncd_id", sa.Text),
    )
    op.create_index("labelstudio_tasks_syncd", "labelstudio_tasks", ["syncd_id"])
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "added_words",
        sa.Column("recording_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("project_id", sa.Integer),
        sa.Column("word", sa.Text, primary_key=True),
    )
    op.create_index("added_words_word", "added_words", ["word"])
