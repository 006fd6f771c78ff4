"""The shared state database (a real PostgreSQL) down at start and while `syncd run` works: syncd waits instead of
failing, health names the state meanwhile, and nothing is lost or imported twice once it is back."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import requests

from devstack import PG_PASSWORD, Postgres, Stack, SyncdProcess, free_port, project_tasks, until, upload_with_results

RECORDINGS = {"db/a.mp3": "single_speaker.json", "db/b.mp3": "two_speakers.json"}
LATER = {"db/c.mp3": "spanish.json"}


def _config(stack: Stack, tmp_path: Path, bucket: str, pg: Postgres, title: str, port: int) -> Path:
    text = stack.config(
        tmp_path,
        bucket,
        project=title,
        engine="aws",
        extra="[schedule]\nscan_interval = 1\ntranscribe_interval = 1\nimport_interval = 1\nexport_interval = 1\n"
        '[instance]\nname = "db-fault"\nlease_seconds = 6\n',
    )
    text = text.replace(f'path = "{tmp_path / "state.db"}"', f'url = "{pg.url}"')
    text = text.replace('listen = ""', f'listen = "127.0.0.1:{port}"')
    path = tmp_path / "syncd.toml"
    path.write_text(text)
    return path


def _health_body(port: int, status: int) -> dict[str, Any] | None:
    """/healthz's body once it answers with ``status``."""
    response = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
    return response.json() if response.status_code == status else None


def test_state_database_down_at_start_and_while_running(
    stack: Stack, s3: Any, ls: Any, bucket: str, tmp_path: Path
) -> None:
    pg = Postgres("pg-fault", tmp_path / "pg", port=free_port())  # not started yet
    port = free_port()
    title = f"state down {bucket}"
    config = _config(stack, tmp_path, bucket, pg, title, port)
    upload_with_results(s3, bucket, RECORDINGS)
    daemon = SyncdProcess(config, stack, env={"SYNCD_STATE_PASSWORD": PG_PASSWORD})
    try:
        # Down at start: syncd waits for it, naming it, rather than crashing.
        waiting = daemon.events[daemon.wait("daemon.waiting", timeout=60)]
        assert waiting["reason"].startswith("state:") and PG_PASSWORD not in str(waiting)
        pg.start()
        pg.wait()
        daemon.wait("daemon.started", timeout=60)
        until(lambda: len(project_tasks(ls, title)) == 2, 60, "two tasks", interval=0.5)
        body = until(lambda: _health_body(port, 200), 60, "a healthy daemon", interval=0.5)
        assert body["instance"] == {"name": "db-fault", "roles": ["scan", "transcribe", "import", "export"],
                                    "holds": ["export", "import", "scan"]}  # fmt: skip

        # Down while running: health names the state, stages fail as "unavailable", nothing is lost.
        mark = len(daemon.events)
        pg.stop(keep=True)
        body = until(lambda: _health_body(port, 503), 30, "/healthz 503", interval=0.5)
        assert body["down"] == ["state"] and body["checks"]["state"]["ok"] is False and PG_PASSWORD not in str(body)
        daemon.wait("stage.failed", after=mark, timeout=30, cause="unavailable")
        upload_with_results(s3, bucket, LATER)
        pg.start()
        pg.wait()
        until(lambda: len(project_tasks(ls, title)) == 3, 90, "the third task, after the outage", interval=0.5)
        until(lambda: _health_body(port, 200), 60, "healthy again", interval=0.5)
        assert daemon.stop() == 0
    finally:
        daemon.kill()
        pg.stop()

    tasks = project_tasks(ls, title)
    assert sorted(Counter(t["data"]["syncd_id"] for t in tasks).values()) == [1, 1, 1]
    assert all(len(t["predictions"]) == 1 for t in tasks)
    assert not [line for line in daemon.lines if PG_PASSWORD in line], "the password never reaches the log"
