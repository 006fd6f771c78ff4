"""The supported Label Studio range, end to end: the same smoke run on syncd's default review layout (import with
predictions, least confident first, a review, its export by webhook, healthy) against the oldest supported release
(.stack/ls-old-venv) and the newest (the session stack's 1.23.2), each with a personal access token as Label Studio
defaults it.

The oldest release runs as a second Label Studio server started once for this module (~60 s with its migrations);
S3 and moto are the session stack's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from devstack import OLD_LS_VENV, LabelStudio, Stack, SyncdProcess, free_port, seed_formula, until, upload_with_results
from syncd.labelstudio import as_dict

RECORDINGS = {
    "calls/a.mp3": "two_speakers.json",
    "calls/b.mp3": "single_speaker.json",
    "calls/c.mp3": "two_speakers_new.json",
}
SECRET = "webhook-shared-secret-for-versions-01"


@pytest.fixture(scope="module")
def oldest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelStudio]:
    with LabelStudio("labelstudio-oldest", tmp_path_factory.mktemp("ls-oldest"), venv=OLD_LS_VENV) as server:
        yield server


@pytest.fixture(params=["oldest", "newest"])
def server(request: pytest.FixtureRequest, stack: Stack) -> LabelStudio:
    if request.param == "oldest":
        return request.getfixturevalue("oldest")  # type: ignore[no-any-return]
    return stack.labelstudio


def _wait_imported(daemon: SyncdProcess, count: int, timeout: float) -> None:
    until(
        lambda: sum(e["event"] == "task.imported" for e in daemon.events) >= count,
        timeout,
        f"{count} task.imported",
        abort=lambda: None if daemon.proc.poll() is None else f"syncd exited: {daemon.lines[-20:]}",
        describe=lambda _: f"events {[e['event'] for e in daemon.events]}",
    )


def _wait_object(s3: Any, bucket: str, key: str, timeout: float) -> None:
    until(
        lambda: s3.head_object(Bucket=bucket, Key=key),
        timeout,
        f"s3://{bucket}/{key} to be written",
        ignore=(s3.exceptions.ClientError,),
    )


def test_smoke_on_the_oldest_and_newest_supported_release(
    server: LabelStudio, stack: Stack, s3: Any, bucket: str, tmp_path: Path
) -> None:
    upload_with_results(s3, bucket, RECORDINGS)
    port = free_port()
    title = f"smoke {server.version} {bucket}"
    config = stack.config(
        tmp_path, bucket, project=title, engine="aws", layout="transcript", labelstudio_url=server.url
    )
    config = config.replace('listen = ""', f'listen = "127.0.0.1:{port}"\npublic_url = "http://127.0.0.1:{port}"')
    config += "\n[schedule]\nscan_interval = 1\ntranscribe_interval = 1\nimport_interval = 1\nexport_interval = 3600\n"
    path = tmp_path / "syncd.toml"
    path.write_text(config)
    env = {"LABEL_STUDIO_API_KEY": server.token, "SYNCD_WEBHOOK_SECRET": SECRET}
    assert server.token.count(".") == 2, "a personal access token (JWT), as Label Studio defaults it"
    daemon = SyncdProcess(path, stack, env=env)
    try:
        registered = daemon.events[daemon.wait("webhook.registered", timeout=120)]
        _wait_imported(daemon, len(RECORDINGS), timeout=120)
        project = registered["project"]

        # Imported with predictions; Label Studio serves the least confident first, and the sorted view exists.
        tasks = server.api(
            "GET", "/api/tasks/", params={"project": project, "fields": "all", "resolve_uri": "false"}
        ).json()["tasks"]
        assert len(tasks) == 3 and all(len(t["predictions"]) == 1 for t in tasks)
        lowest = min(tasks, key=lambda t: t["predictions"][0]["score"])
        assert lowest["predictions"][0]["score"] == pytest.approx(min(map(seed_formula, RECORDINGS.values())), 1e-4)
        assert server.api("GET", f"/api/projects/{project}/next").json()["id"] == lowest["id"]
        views = server.api("GET", "/api/dm/views", params={"project": project}).json()
        assert any(v["data"].get("ordering") == ["tasks:predictions_score"] for v in views)

        # A review: Label Studio calls the webhook (the poll is an hour away) and the transcript lands beside it.
        result = as_dict(server.client().tasks.get(str(lowest["id"])))["predictions"][0]["result"]
        server.client().annotations.create(id=lowest["id"], result=result, was_cancelled=False)
        source = lowest["data"]["source"].removeprefix(f"s3://{bucket}/")
        _wait_object(s3, bucket, source.rsplit(".", 1)[0] + ".transcript.json", timeout=60)
        assert daemon.events[daemon.wait("webhook.exported", task=lowest["id"], timeout=30)]["written"] is True

        health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).json()
        assert health["status"] == "ok", health
        assert not [e for e in daemon.events if e.get("level") in ("error", "critical")]
    finally:
        assert daemon.stop() == 0


def test_label_studio_runs_with_telemetry_off(server: LabelStudio) -> None:
    """Each release runs as a self-hosted operator runs it (devstack.LS_TELEMETRY_OFF): the settings its own page
    hands the browser carry no Sentry DSN (the server side's DSN is the same empty setting) and no analytics on."""
    page = requests.get(f"{server.url}/user/login/", timeout=30)
    assert page.status_code == 200
    assert "sentry.io" not in page.text, "a Sentry DSN reaches the browser"
    assert "collect_analytics: true" not in page.text, "usage analytics on"
