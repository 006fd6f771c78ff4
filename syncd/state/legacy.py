"""The SQLite schema history before Alembic: ``PRAGMA user_version`` 1 to 7, frozen.

A state file made by an older syncd is brought to version 7 with these, then stamped as Alembic's baseline
(``0001``, the same schema) and carried on by Alembic like any new database. Never edit or extend this list: new
schema changes are Alembic revisions in ``migrations/versions``.
"""

from __future__ import annotations

from sqlalchemy import Connection

LAST = 7
"""The ``user_version`` the baseline revision stands for."""

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE recordings (
        id INTEGER PRIMARY KEY,
        syncd_id TEXT NOT NULL UNIQUE,
        bucket TEXT NOT NULL,
        key TEXT NOT NULL,
        etag TEXT NOT NULL,
        size INTEGER NOT NULL DEFAULT 0,
        last_modified TEXT,
        status TEXT NOT NULL,
        reason TEXT,
        failed_stage TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL DEFAULT 0,
        engine TEXT,
        job_name TEXT,
        transcript TEXT,
        score REAL,
        task_id INTEGER,
        project_id INTEGER,
        annotation_id INTEGER,
        annotation_updated_at TEXT,
        exported_at REAL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        UNIQUE (bucket, key, etag)
    );
    CREATE INDEX recordings_status ON recordings (status, next_attempt_at);
    CREATE INDEX recordings_key ON recordings (bucket, key);
    CREATE INDEX recordings_task ON recordings (task_id);
    CREATE TABLE cursors (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    """
    CREATE TABLE export_queue (
        task_id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL,
        recording_id INTEGER,
        reason TEXT NOT NULL,
        task_updated_at TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        parked INTEGER NOT NULL DEFAULT 0,
        updated_at REAL NOT NULL
    );
    """,
    # Every Label Studio task seen in a project, ours or not, with the syncd_id it carries (NULL when foreign): how a
    # state older than Label Studio adopts tasks instead of importing them twice, and how deletions are noticed.
    """
    CREATE TABLE labelstudio_tasks (
        project_id INTEGER NOT NULL,
        task_id INTEGER NOT NULL,
        syncd_id TEXT,
        PRIMARY KEY (project_id, task_id)
    );
    CREATE INDEX labelstudio_tasks_syncd ON labelstudio_tasks (syncd_id);
    INSERT OR IGNORE INTO labelstudio_tasks (project_id, task_id, syncd_id)
        SELECT project_id, task_id, syncd_id FROM recordings WHERE task_id IS NOT NULL AND project_id IS NOT NULL;
    """,
    # The Label Studio projects syncd writes to and reads from (rollover), and since when a recording has waited to be
    # imported (paced imports). Rows transcribed before this migration count as waiting since they were last updated.
    """
    CREATE TABLE projects (
        id INTEGER PRIMARY KEY,
        title TEXT NOT NULL,
        seq INTEGER NOT NULL,
        created_at REAL NOT NULL
    );
    ALTER TABLE recordings ADD COLUMN ready_at REAL;
    UPDATE recordings SET ready_at = updated_at WHERE status = 'transcribed';
    CREATE INDEX recordings_ready ON recordings (status, ready_at);
    """,
    # Review triage and its report: how a recording was routed ("review", "audit" or "auto"), when its task was
    # created and its review submitted, who reviewed it, and the ASR's word errors against the review.
    """
    ALTER TABLE recordings ADD COLUMN review_mode TEXT;
    ALTER TABLE recordings ADD COLUMN imported_at REAL;
    ALTER TABLE recordings ADD COLUMN submitted_at REAL;
    ALTER TABLE recordings ADD COLUMN annotator TEXT;
    ALTER TABLE recordings ADD COLUMN word_errors INTEGER;
    ALTER TABLE recordings ADD COLUMN reference_words INTEGER;
    ALTER TABLE recordings ADD COLUMN duration REAL;
    UPDATE recordings SET duration = json_extract(transcript, '$.duration') WHERE transcript IS NOT NULL;
    UPDATE recordings SET review_mode = 'review' WHERE transcript IS NOT NULL;
    """,
    # Words reviewers added that the ASR never produced, per reviewed recording (syncd.vocabulary).
    """
    CREATE TABLE added_words (
        recording_id INTEGER NOT NULL,
        project_id INTEGER,
        word TEXT NOT NULL,
        PRIMARY KEY (recording_id, word)
    );
    CREATE INDEX added_words_word ON added_words (word);
    """,
    # Review units (syncd.units): a unit is a recording of its own with its parent's id and its start there; its
    # review, moved to the parent's clock, waits in ``review`` until every unit has one. ``units_changed`` marks a
    # parent whose units' reviews changed since its transcripts were last written.
    """
    ALTER TABLE recordings ADD COLUMN parent_id INTEGER;
    ALTER TABLE recordings ADD COLUMN unit_start REAL;
    ALTER TABLE recordings ADD COLUMN review TEXT;
    ALTER TABLE recordings ADD COLUMN units_changed REAL;
    CREATE INDEX recordings_parent ON recordings (parent_id);
    CREATE INDEX recordings_units_changed ON recordings (units_changed);
    """,
)


def user_version(conn: Connection) -> int:
    return int(conn.exec_driver_sql("PRAGMA user_version").scalar_one())


def upgrade(conn: Connection) -> None:
    """Bring a pre-Alembic state file to version 7 (inside the caller's transaction)."""
    version = user_version(conn)
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        for statement in filter(str.strip, script.split(";")):
            conn.exec_driver_sql(statement)
        conn.exec_driver_sql(f"PRAGMA user_version = {number}")
