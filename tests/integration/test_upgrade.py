"""Upgrading in place from real earlier releases of syncd.

A kept state file names Label Studio task and project ids and S3 objects of the stack it was built on, which this
run's fresh stack does not have: pointed at it, the current release would find its projects and audio missing, and a
pass would prove nothing about an upgrade. So the in-place upgrade is run live: the earlier release's own code (its
``syncd`` package as ``git archive`` made it, kept in tests/fixtures/upgrade so the test needs no git history; CI may
clone shallowly) runs against this stack with this checkout's virtual environment, imports, exports reviews and stops;
then the current release starts on the same config file, state and project. The kept state files, which those
releases wrote on the real stack (scripts/build_upgrade_fixtures.py), are tested apart: migrated by the current
release, every row they held survives.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from contextlib import closing
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from devstack import Stack, SyncdProcess, project_tasks, run_syncd, upload_with_results
from devstack.releases import FIRST, FIRST_WORDS, RELEASES, REVIEWED, first_half, reviewed_result, unpack
from syncd import __version__
from syncd.config.load import load
from syncd.errors import ConfigError
from syncd.labelstudio.layouts import result_layout
from syncd.state import StateStore, migrate
from syncd.state.outages import Dependency
from syncd.state.refusals import Refusal

FORMATS = ("txt", "json", "srt", "vtt")
EDITED = "Edited after the upgrade."
LIVE = ["0.2.0", "0.3.0"]
"""Upgraded from live: the last pre-Alembic state (0.2.0) and the first Alembic one (0.3.0)."""


def _outputs(s3: Any, bucket: str, key: str) -> dict[str, tuple[str, Any]]:
    stem = key.rsplit(".", 1)[0]
    heads = {fmt: s3.head_object(Bucket=bucket, Key=f"{stem}.transcript.{fmt}") for fmt in FORMATS}
    return {fmt: (h["ETag"], h["LastModified"]) for fmt, h in heads.items()}


def _text(s3: Any, bucket: str, key: str) -> str:
    stem = key.rsplit(".", 1)[0]
    return str(s3.get_object(Bucket=bucket, Key=f"{stem}.transcript.txt")["Body"].read().decode())


@pytest.mark.parametrize("version", LIVE)
def test_an_earlier_release_upgraded_in_place(
    version: str, stack: Stack, s3: Any, ls: Any, bucket: str, tmp_path: Path
) -> None:
    """Earlier release: imports a, b, c, exports reviews of a and b, stops. Meanwhile a's review is edited and d
    arrives. The current release on the same config file (written for the earlier one), state and project: no
    second task, a re-exported, d imported into the project's own layout, b's outputs not rewritten."""
    release = RELEASES[version]
    source = unpack(release, tmp_path / "release")
    config, project = tmp_path / "syncd.toml", f"upgrade {version} {bucket}"
    first_half(release, source, stack, s3, ls, bucket, config, project)
    tasks = {t["data"]["source"].removeprefix(f"s3://{bucket}/"): t for t in project_tasks(ls, project)}
    project_id = tasks["calls/a.mp3"]["project"]
    label_config = ls.projects.get(project_id).label_config
    before = {key: _outputs(s3, bucket, key) for key in REVIEWED}
    assert all(FIRST_WORDS in _text(s3, bucket, key) for key in REVIEWED)

    # While no syncd runs: a reviewer edits a's review, and new audio arrives.
    a = tasks["calls/a.mp3"]
    ls.annotations.update(id=a["annotations"][0]["id"], result=reviewed_result(a, EDITED))
    upload_with_results(s3, bucket, {"calls/d.mp3": "two_speakers_new.json"})

    daemon = SyncdProcess(config, stack)
    try:
        daemon.wait("task.imported", timeout=120, key="calls/d.mp3")
        daemon.wait("annotation.exported", timeout=120, key="calls/a.mp3")
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    events = daemon.events

    # The state was carried forward, with a copy of what the earlier release left.
    [migrated] = [e for e in events if e["event"] == "state.migrated"]
    assert migrated["revision"] == migrate.head() and migrated["app_version"] == __version__
    assert migrated["previous_app_version"] == migrate.UNRECORDED
    assert Path(migrated["backup"]) == tmp_path / f"state.db.before-{__version__}"
    status = json.loads(run_syncd(["status", "--json", "-c", str(config)], stack).stdout)
    assert status["version"] == {
        "running": __version__,
        "state_app_version": __version__,
        "state_schema": migrate.head(),
        "schema_head": migrate.head(),
    }

    # One task per audio version: the earlier release's tasks kept, d added, in the same project and its layout.
    after = {t["data"]["source"].removeprefix(f"s3://{bucket}/"): t for t in project_tasks(ls, project)}
    assert sorted(after) == sorted([*FIRST, "calls/d.mp3"])
    assert {k: after[k]["id"] for k in FIRST} == {k: tasks[k]["id"] for k in FIRST}
    assert [e for e in events if e["event"] == "task.imported"] == [
        e for e in events if e["event"] == "task.imported" and e["key"] == "calls/d.mp3"
    ]
    assert ls.projects.get(project_id).label_config == label_config
    layouts = {k: result_layout(t["predictions"][0]["result"], "none") for k, t in after.items()}
    assert layouts["calls/d.mp3"] == layouts["calls/a.mp3"] == "segments", layouts

    # The edited review re-exported; the unchanged one not rewritten (same ETag and LastModified on every output).
    assert EDITED in _text(s3, bucket, "calls/a.mp3")
    changed = _outputs(s3, bucket, "calls/a.mp3")
    assert all(changed[fmt][0] != before["calls/a.mp3"][fmt][0] for fmt in FORMATS)
    assert _outputs(s3, bucket, "calls/b.mp3") == before["calls/b.mp3"]
    assert sorted(e["key"] for e in events if e["event"] == "annotation.exported") == ["calls/a.mp3"]


def _rows(path: Path) -> dict[str, list[dict[str, Any]]]:
    with closing(sqlite3.connect(path)) as db:
        db.row_factory = sqlite3.Row
        tables = [
            r[0]
            for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not r[0].startswith("sqlite_") and r[0] != "alembic_version"
        ]
        return {t: [dict(r) for r in db.execute(f"SELECT * FROM {t}")] for t in tables}


def _key(row: dict[str, Any]) -> str:
    return json.dumps(row, sort_keys=True, default=str)


DOWN = Dependency("s3", False, "HTTP 503", 1796304700.5, 2, 1796304710.5)
REFUSED = Refusal("webhook", 1, "http://127.0.0.1:8900/webhook", "HTTP 400: URL is not allowed", 1796304701.25)
MOVED = {
    "task-twins": json.dumps({"sid": {"tasks": [3, 4], "reviewed": [4], "key": "calls/a.mp3", "checked": 17.5}}),
    "dependency:s3": json.dumps(asdict(DOWN)),
    "refused:webhook:1": json.dumps(asdict(REFUSED)),
}
"""Documents the earlier releases kept in the cursors table as they wrote them (the kept files hold none, so they are
added to the copy): revision 0005 moves them to tables of their own, checked there instead."""


@pytest.mark.parametrize("version", sorted(RELEASES))
def test_a_state_an_earlier_release_wrote_migrates_with_every_row(version: str, tmp_path: Path) -> None:
    """The state file the release wrote on the real stack: opened by the current release it reaches the newest
    schema, every row of every table keeps every value it had (the cursor documents revision 0005 moves, in their new
    tables), the release is recorded, and the copy left beside it is the file as it was."""
    path = tmp_path / "state.db"
    shutil.copyfile(RELEASES[version].state, path)
    with closing(sqlite3.connect(path)) as db, db:
        db.executemany("INSERT INTO cursors (name, value) VALUES (?, ?)", MOVED.items())
    before = _rows(path)
    assert sum(map(len, before.values())) > len(FIRST), "a kept state holds the recordings, tasks and cursors"

    store = StateStore(path)
    assert store.schema() == (migrate.head(), __version__)
    after = _rows(path)
    stay = before | {"cursors": [r for r in before["cursors"] if r["name"] not in MOVED]}
    for table, rows in stay.items():
        kept = sorted(_key({c: r[c] for c in (rows[0] if rows else {})}) for r in after[table])
        assert kept == sorted(map(_key, rows)), table
    assert store.twins.all() == json.loads(MOVED["task-twins"])
    assert store.outages.all_known() == {"s3": DOWN}
    assert store.refusals.all_known() == [REFUSED]
    statuses = {r.key: r.status for r in store.recordings.all()}
    assert statuses == {"calls/a.mp3": "exported", "calls/b.mp3": "exported", "calls/c.mp3": "imported"}
    assert _rows(tmp_path / f"state.db.before-{__version__}") == before


@pytest.mark.parametrize("version", sorted(RELEASES))
def test_the_config_example_of_an_earlier_release_still_loads(version: str, tmp_path: Path) -> None:
    """Every key an earlier release knew, at its default (its own ``syncd config example``), is still accepted, as
    ``syncd config validate`` and every start read it; a key this release does not know is refused with its name
    and the keys allowed there."""
    example = RELEASES[version].example
    load(example)
    retired = tmp_path / "retired.toml"
    retired.write_text(example.read_text().replace("[labelstudio]\n", "[labelstudio]\nretired_key = 1\n", 1))
    with pytest.raises(ConfigError, match=r"labelstudio\.retired_key: unknown key; allowed here: api_key_env"):
        load(retired)
