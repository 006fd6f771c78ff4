"""The daemon's HTTP endpoint against the real stack: /healthz, /metrics, and Label Studio webhooks that export a
reviewed task at once (the export poll is set to an hour here, so only the webhook can have written it)."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from devstack import PG_PASSWORD, SENTENCES, Postgres, Stack, free_port, speak, until, upload_with_results
from devstack import SyncdProcess as Daemon
from syncd.config import parse
from syncd.daemon import Daemon as DaemonCore
from syncd.labelstudio import as_dict
from syncd.labelstudio.webhooks import HEADER, url_for

SECRET = "webhook-shared-secret-for-tests-0123"


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _wait_object(s3: Any, bucket: str, key: str, timeout: float) -> float:
    started = time.monotonic()
    until(
        lambda: s3.head_object(Bucket=bucket, Key=key),
        timeout,
        f"s3://{bucket}/{key} to be written",
        interval=0.1,
        ignore=(s3.exceptions.ClientError,),
    )
    return time.monotonic() - started


@pytest.fixture
def http_daemon(stack: Stack, s3: Any, bucket: str, config_file: Path, tmp_path: Path) -> Any:
    s3.upload_file(str(speak(SENTENCES[0], tmp_path / "a.wav")), bucket, "calls/a.wav")
    port = free_port()
    config = config_file.read_text().replace('listen = ""', f'listen = "127.0.0.1:{port}"')
    config = config.replace("[http]\n", f'[http]\npublic_url = "http://127.0.0.1:{port}"\n')
    config += "\n[schedule]\nscan_interval = 1\ntranscribe_interval = 1\nimport_interval = 1\nexport_interval = 3600\n"
    config_file.write_text(config)
    daemon = Daemon(config_file, stack, env={"SYNCD_WEBHOOK_SECRET": SECRET})
    yield daemon, f"http://127.0.0.1:{port}"
    daemon.kill()


def test_health_metrics_and_webhook_export(http_daemon: Any, stack: Stack, ls: Any, s3: Any, bucket: str) -> None:
    daemon, base = http_daemon
    registered = daemon.events[daemon.wait("webhook.registered")]
    imported = daemon.events[daemon.wait("task.imported", timeout=120)]
    daemon.wait("stage.completed", stage="import", count=1)

    health = requests.get(f"{base}/healthz", timeout=10)
    assert health.status_code == 200, health.text
    body = health.json()
    assert body["status"] == "ok"
    assert body["checks"]["labelstudio"]["ok"] and body["checks"]["s3"]["ok"]
    assert 0 <= body["checks"]["cycle"]["last_good_age_seconds"] <= body["checks"]["cycle"]["max_age_seconds"]

    metrics = requests.get(f"{base}/metrics", timeout=10)
    assert metrics.headers["Content-Type"].startswith("text/plain")
    samples = _samples(metrics.text)
    assert samples[("syncd_recordings", (("state", "imported"),))] == 1
    assert samples[("syncd_stage_runs_total", (("outcome", "ok"), ("stage", "scan")))] >= 1
    assert samples[("syncd_stage_items_total", (("stage", "import"),))] == 1
    assert samples[("syncd_stage_duration_seconds_count", (("stage", "transcribe"),))] >= 1
    assert samples[("syncd_transcript_confidence_count", ())] == 1
    assert samples[("syncd_log_events_total", (("event", "task.imported"), ("level", "info")))] == 1
    assert samples[("syncd_up", ())] == 1
    before = samples.get(("syncd_stage_items_total", (("stage", "export"),)), 0.0)

    # The webhook is on the project, for annotation created/updated, carrying the shared secret.
    project = registered["project"]
    (hook,) = [h for h in ls.webhooks.list(project=str(project)) if h.url == url_for(base)]
    assert set(hook.actions) == {"ANNOTATION_CREATED", "ANNOTATION_UPDATED"}
    assert hook.headers == {HEADER: SECRET}

    # Without the secret, or with a wrong one, the endpoint refuses and exports nothing.
    payload = {"action": "ANNOTATION_CREATED", "task": {"id": imported["task"]}, "annotation": {"id": 1}}
    assert requests.post(f"{base}/webhook", json=payload, timeout=10).status_code == 401
    wrong = requests.post(f"{base}/webhook", json=payload, headers={HEADER: "guess"}, timeout=10)
    assert wrong.status_code == 401

    # A reviewer submits: Label Studio calls the webhook and the transcript lands in S3 right away.
    result = as_dict(ls.tasks.get(str(imported["task"])))["predictions"][0]["result"]
    submitted = time.monotonic()
    ls.annotations.create(id=imported["task"], result=result, was_cancelled=False)
    waited = _wait_object(s3, bucket, "calls/a.transcript.json", timeout=30)
    exported = daemon.events[daemon.wait("webhook.exported", task=imported["task"], timeout=10)]
    assert exported["written"] is True
    assert time.monotonic() - submitted < 30 and waited < 30
    samples = _samples(requests.get(f"{base}/metrics", timeout=10).text)
    exports = samples[("syncd_stage_items_total", (("stage", "export"),))]
    assert exports == before + 1, "the webhook export counts as the export stage's item, once"
    assert samples[("syncd_webhook_requests_total", (("outcome", "unauthorized"),))] == 2
    assert samples[("syncd_webhook_requests_total", (("outcome", "accepted"),))] >= 1
    [(labels, count)] = [(dict(k[1]), v) for k, v in samples.items() if k[0] == "syncd_review_word_error_rate_count"]
    assert count == 1 and labels["model"] and set(labels) == {"model", "language"}

    assert daemon.stop() == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{base}/healthz", timeout=2)


def test_health_fails_while_nothing_is_reachable(tmp_path: Path) -> None:
    """Before connecting, and with Label Studio and S3 down, /healthz's answer says so (503 body)."""
    dead = f"http://127.0.0.1:{free_port()}"
    settings = parse(
        {
            "labelstudio": {"url": dead},
            "s3": {"endpoint_url": dead},
            "sources": [{"bucket": "b"}],
            "state": {"path": str(tmp_path / "state.db")},
        }
    )
    ok, body = DaemonCore(str(tmp_path / "c.toml"), settings).health()
    assert not ok
    assert body["status"] == "starting"
    assert not body["checks"]["labelstudio"]["ok"] and not body["checks"]["s3"]["ok"]
    assert body["checks"]["cycle"] == {"ok": False, "last_good_age_seconds": None, "max_age_seconds": 105.0}


def test_daemon_events_are_counted_and_a_missing_secret_on_reload_keeps_the_running_config(
    stack: Stack, config_file: Path, tmp_path: Path
) -> None:
    """At log level warning, the daemon's own events (rejected webhooks, failed reloads, cycles) still reach
    syncd_log_events_total; SIGHUP with a webhook secret file that is gone keeps the daemon on its old config."""
    port = free_port()
    secret = tmp_path / "webhook-secret"
    secret.write_text(SECRET)
    config = config_file.read_text().replace('listen = ""', f'listen = "127.0.0.1:{port}"')
    config = config.replace("[http]\n", f'[http]\nwebhook_secret_file = "{secret}"\n')
    config = config.replace('level = "debug"', 'level = "warning"')
    config += "\n[schedule]\nscan_interval = 1\ntranscribe_interval = 1\nimport_interval = 1\nexport_interval = 1\n"
    config_file.write_text(config)
    daemon = Daemon(config_file, stack)
    base = f"http://127.0.0.1:{port}"
    try:
        until(
            lambda: _samples(_get(f"{base}/metrics")).get(_event("cycle.completed", "debug"), 0) >= 1,
            60,
            "a first cycle in /metrics",
            interval=0.5,
            abort=lambda: None if daemon.proc.poll() is None else f"syncd exited with {daemon.proc.returncode}",
            detail=lambda: "".join(daemon.lines)[-3000:],
        )
        assert requests.post(f"{base}/webhook", json={}, timeout=10).status_code == 401

        config_file.write_text(config.replace(str(secret), str(tmp_path / "gone")))
        daemon.proc.send_signal(signal.SIGHUP)
        failed = daemon.events[daemon.wait("config.reload_failed", timeout=30)]
        assert "gone" in failed["error"] and failed["kept"] == "running config"

        cycles = _samples(_get(f"{base}/metrics"))[_event("cycle.completed", "debug")]
        until(
            lambda: _samples(_get(f"{base}/metrics")).get(_event("cycle.completed", "debug"), 0) > cycles,
            30,
            "a cycle after the failed reload",
            interval=0.5,
        )
        samples = _samples(_get(f"{base}/metrics"))
        assert samples[_event("webhook.rejected", "warning")] == 1
        assert samples[_event("config.reload_failed", "error")] == 1
        assert requests.post(f"{base}/webhook", json={}, headers={HEADER: SECRET}, timeout=10).status_code == 200
        assert daemon.proc.poll() is None
        assert daemon.stop() == 0
    finally:
        daemon.kill()


def _get(url: str) -> str:
    """The body, or "" while the daemon's endpoint is not up yet."""
    try:
        return requests.get(url, timeout=10).text
    except requests.ConnectionError:
        return ""


def _event(name: str, level: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return ("syncd_log_events_total", (("event", name), ("level", level)))


def test_a_webhook_reaching_an_instance_without_the_export_lease_is_exported_by_the_holder_at_once(
    stack: Stack, postgres: Postgres, ls: Any, s3: Any, bucket: str, tmp_path: Path
) -> None:
    """Two instances share one PostgreSQL state: the front one (scan, transcribe, import) is the webhook's address;
    only the back one may export. Label Studio calls the front one; the delivery waits in the state, and the back
    one's webhook job exports it within a tick. The export poll is an hour, so nothing else can have written it."""
    url = postgres.database("webhook_routing")
    port = free_port()
    schedule = "\n[schedule]\nscan_interval = 1\ntranscribe_interval = 1\nimport_interval = 1\nexport_interval = 3600\n"

    def config(name: str, roles: str, http: str) -> Path:
        text = stack.config(tmp_path, bucket, project=f"routing {bucket}", engine="aws")
        text = text.replace(f'path = "{tmp_path / "state.db"}"', f'url = "{url}"').replace('listen = ""', http)
        path = tmp_path / f"{name}.toml"
        path.write_text(text + f'\n[instance]\nname = "{name}"\nroles = {roles}\nlease_seconds = 6\n' + schedule)
        return path

    public = f'listen = "127.0.0.1:{port}"\npublic_url = "http://127.0.0.1:{port}"'
    env = {"SYNCD_WEBHOOK_SECRET": SECRET, "SYNCD_STATE_PASSWORD": PG_PASSWORD}
    upload_with_results(s3, bucket, {"calls/a.wav": "single_speaker.json"})
    front = Daemon(config("front", '["scan", "transcribe", "import"]', public), stack, env=env)
    back = Daemon(config("back", '["export"]', 'listen = ""'), stack, env=env)
    try:
        imported = front.events[front.wait("task.imported", timeout=120)]
        back.wait("lease.acquired", lease="export")
        front.wait("webhook.registered")
        result = as_dict(ls.tasks.get(str(imported["task"])))["predictions"][0]["result"]
        ls.annotations.create(id=imported["task"], result=result, was_cancelled=False)
        waited = _wait_object(s3, bucket, "calls/a.transcript.json", timeout=30)
        front.wait("webhook.received", task=imported["task"])
        exported = back.events[back.wait("webhook.exported", task=imported["task"], timeout=10)]
        assert exported["written"] is True and exported["seconds"] < 10 and waited < 30
        assert not [e for e in front.events if e["event"] == "webhook.exported"], "the front holds no export lease"
        health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).json()
        assert health["checks"]["webhooks"] == {"ok": True, "waiting": 0, "oldest_age_seconds": None}
        samples = _samples(requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)
        assert samples[("syncd_webhook_deliveries_waiting", ())] == 0
    finally:
        front.kill()
        back.kill()
