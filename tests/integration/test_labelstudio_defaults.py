"""Label Studio as users run it: SSRF protection on (1.23's default), legacy tokens off, personal access tokens, and
served under a sub-path behind a reverse proxy (Debian's nginx, unprivileged, its own config; Label Studio told its
public URL with ``LABEL_STUDIO_HOST``). The session stack runs Label Studio with SSRF protection off, so this module
starts a second server once (~40 s) and every test here shares it; S3 and moto are the session stack's.

What the operator must see: a webhook and an audio storage Label Studio refuses (both point at loopback addresses)
named with the reason in /healthz, `syncd status`, /metrics and `syncd check`, while reviews still arrive by the
export poll; a token that can never work stopping the start with 78 and what to do; a token refused mid-run counted as
a Label Studio outage; the legacy ``Token`` path still working where an organization turns it on.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from devstack import (
    LabelStudio,
    Nginx,
    Stack,
    SyncdProcess,
    free_port,
    log_events,
    run_syncd,
    until,
    upload_with_results,
)
from syncd import errors
from syncd.labelstudio import as_dict

RECORDINGS = {"calls/a.mp3": "two_speakers.json"}
SSRF = "URL resolves to a reserved network address"


@dataclass
class Users:
    labelstudio: LabelStudio
    proxy: Nginx


@pytest.fixture(scope="module")
def users(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Users]:
    workdir = tmp_path_factory.mktemp("ls-defaults")
    proxy_port = free_port()
    server = LabelStudio("labelstudio", workdir / "labelstudio", ssrf=True, host=f"http://127.0.0.1:{proxy_port}/ls")
    with server, Nginx("nginx", workdir / "nginx", port=proxy_port, upstream=server.url) as proxy:
        yield Users(server, proxy)


def _config(stack: Stack, users: Users, tmp_path: Path, bucket: str, port: int, title: str) -> Path:
    """syncd pointed at the sub-path URL as an operator would write it (no trailing slash), webhooks on."""
    config = stack.config(tmp_path, bucket, project=title, engine="aws", labelstudio_url=users.proxy.public_url)
    config = config.replace('listen = ""', f'listen = "127.0.0.1:{port}"\npublic_url = "http://127.0.0.1:{port}"')
    config = config.replace("[http]\n", "[http]\ndependency_grace = 0\n")
    config += "\n[schedule]\nscan_interval = 1\ntranscribe_interval = 1\nimport_interval = 1\nexport_interval = 2\n"
    path = tmp_path / "syncd.toml"
    path.write_text(config)
    return path


def _samples(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = requests.get(f"{base}/metrics", timeout=10).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_behind_a_sub_path_with_ssrf_on_refusals_show_everywhere_and_reviews_arrive_by_polling(
    users: Users, stack: Stack, s3: Any, bucket: str, tmp_path: Path
) -> None:
    upload_with_results(s3, bucket, RECORDINGS)
    port, base = free_port(), ""
    config = _config(stack, users, tmp_path, bucket, port, f"refused {bucket}")
    base = f"http://127.0.0.1:{port}"
    daemon = SyncdProcess(
        config, stack, env={"LABEL_STUDIO_API_KEY": users.labelstudio.token, "SYNCD_WEBHOOK_SECRET": "s" * 32}
    )
    try:
        storage = daemon.events[daemon.wait("storage.register_failed", timeout=120)]
        webhook = daemon.events[daemon.wait("webhook.register_failed", timeout=60)]
        imported = daemon.events[daemon.wait("task.imported", timeout=120)]
        assert SSRF in storage["error"] and SSRF in webhook["error"] and "export poll only" in webhook["means"]
        project = webhook["project"]

        # Every call went through the sub-path, the SDK's token refresh included.
        access = (users.proxy.workdir / "access.log").read_text()
        assert re.search(r'"POST /ls/api/token/refresh/ HTTP/1.1" 200', access), access[-2000:]
        assert not re.search(r'" 404 ', access), "nothing missed the sub-path"

        # /healthz: degraded (200), naming both refusals, why, what it means and what to change.
        health = requests.get(f"{base}/healthz", timeout=10)
        assert health.status_code == 200 and health.json()["status"] == "degraded", health.text
        check = health.json()["checks"]["labelstudio_refused"]
        assert {(r["what"], r["project"]) for r in check["refused"]} == {("webhook", project), ("storage", project)}
        assert all(SSRF in r["reason"] for r in check["refused"]) and "USE_DEFAULT_BANNED_SUBNETS" in check["remedy"]
        samples = _samples(base)
        assert samples[("syncd_labelstudio_refused", (("what", "webhook"),))] == 1
        assert samples[("syncd_labelstudio_refused", (("what", "storage"),))] == 1
        assert samples[("syncd_webhook_registered", (("project", str(project)),))] == 0

        status = run_syncd(["status", "-c", str(config)], stack).stdout
        assert f"webhook on project {project} (http://127.0.0.1:{port}/webhook): HTTP 403: {SSRF}" in status
        assert "meanwhile reviews reach S3 by the export poll only" in status
        check_run = run_syncd(
            ["check", "-c", str(config)], stack, env={"LABEL_STUDIO_API_KEY": users.labelstudio.token}, check=False
        )
        assert check_run.returncode == errors.CHECK_FAILED
        assert re.search(rf"FAIL labelstudio.webhook: project {project} .*{SSRF}", check_run.stdout), check_run.stdout
        assert "FAIL labelstudio.storage" in check_run.stdout and "ok   labelstudio.auth" in check_run.stdout

        # Meanwhile a review still reaches S3, by the export poll.
        task = as_dict(users.labelstudio.client().tasks.get(str(imported["task"])))
        users.labelstudio.client().annotations.create(id=task["id"], result=task["predictions"][0]["result"])
        listed = lambda: s3.list_objects_v2(Bucket=bucket, Prefix="calls/a.transcript").get("KeyCount")  # noqa: E731
        until(listed, 60, "export", interval=0.3)
        assert not [e for e in daemon.events if e["event"] == "webhook.exported"]
    finally:
        assert daemon.stop() == 0


def _expired_token(users: Users) -> str:
    claims = jwt.decode(users.labelstudio.token, options={"verify_signature": False})
    return jwt.encode(claims | {"exp": int(time.time()) - 60}, "not-the-server-key-but-32-bytes-long", "HS256")


def test_tokens_that_can_never_work_stop_the_start_with_78_and_say_what_to_do(
    users: Users, stack: Stack, bucket: str, tmp_path: Path
) -> None:
    server = users.labelstudio
    revoked = server.rotate()
    access = server.client()._client_wrapper._tokens_client.api_key
    cases = {
        "expired": (_expired_token(users), "expired at"),
        "revoked": (revoked, "was revoked in Label Studio: create a new personal access token"),
        "access token": (access, "is a JWT access, not a personal access token"),
        "legacy key, legacy off": (
            server.legacy_token,
            "is a legacy token and this Label Studio has legacy tokens off",
        ),
    }
    config = _config(stack, users, tmp_path, bucket, free_port(), f"tokens {bucket}")
    for case, (token, words) in cases.items():
        result = run_syncd(
            ["run", "-c", str(config)], stack, env={"LABEL_STUDIO_API_KEY": token}, check=False, timeout=120
        )
        out = result.stdout + result.stderr
        assert result.returncode == errors.CONFIG, (case, out[-2000:])
        assert f"labelstudio.api_key_env ($LABEL_STUDIO_API_KEY): the Label Studio token {words}" in out, (case, out)
        assert token not in out, f"{case}: the token leaked into the output"


def test_the_legacy_token_path_where_an_organization_keeps_it(
    users: Users, stack: Stack, s3: Any, ls: Any, bucket: str, tmp_path: Path
) -> None:
    server = users.labelstudio
    upload_with_results(s3, bucket, RECORDINGS)
    config = _config(stack, users, tmp_path, bucket, free_port(), f"legacy {bucket}")
    legacy = {"LABEL_STUDIO_API_KEY": server.legacy_token}
    server.token_settings(personal=True, legacy=True)
    try:
        checked = run_syncd(["check", "-c", str(config)], stack, env=legacy, check=False).stdout
        assert "ok   labelstudio.token: found (legacy)" in checked and "ok   labelstudio.auth" in checked
        events: list[dict[str, Any]] = []
        for _ in range(4):
            events += log_events(run_syncd(["once", "-c", str(config)], stack, env=legacy, check=False).stdout)
            if any(e["event"] == "task.imported" for e in events):
                break
        assert any(e["event"] == "task.imported" for e in events), [e["event"] for e in events]
        headers = {"Authorization": f"Token {server.legacy_token}"}
        assert requests.get(f"{server.url}/api/projects/", headers=headers, timeout=30).status_code == 200
    finally:
        server.token_settings(personal=True, legacy=False)


def test_a_token_refused_mid_run_is_a_labelstudio_outage_until_accepted_again(
    users: Users, stack: Stack, s3: Any, bucket: str, tmp_path: Path
) -> None:
    server = users.labelstudio
    upload_with_results(s3, bucket, RECORDINGS)
    port = free_port()
    config = _config(stack, users, tmp_path, bucket, port, f"midrun {bucket}")
    base = f"http://127.0.0.1:{port}"
    daemon = SyncdProcess(config, stack, env={"LABEL_STUDIO_API_KEY": server.token})
    try:
        daemon.wait("task.imported", timeout=120)
        server.token_settings(personal=False, legacy=False)  # an administrator turns personal access tokens off
        down = daemon.events[daemon.wait("dependency.down", timeout=60, dependency="labelstudio")]
        assert "refuses the token (HTTP 401 after a fresh access token)" in down["error"]
        health = requests.get(f"{base}/healthz", timeout=10)
        assert health.status_code == 503 and "labelstudio" in health.json()["down"], health.text
        check = health.json()["checks"]["labelstudio"]
        assert check["up"] is False and "refuses the token" in check["error"]
        assert _samples(base)[("syncd_dependency_up", (("dependency", "labelstudio"),))] == 0
        status = run_syncd(["status", "-c", str(config)], stack).stdout
        assert "labelstudio DOWN since" in status and "refuses the token" in status

        server.token_settings(personal=True, legacy=False)
        daemon.wait("dependency.up", timeout=60, dependency="labelstudio")
        until(lambda: requests.get(f"{base}/healthz", timeout=10).status_code == 200, 30, "healthy again", interval=0.3)
    finally:
        server.token_settings(personal=True, legacy=False)
        assert daemon.stop() == 0
