"""POST /webhook: the secret header, then the payload, then the queue; each outcome counted and answered apart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from syncd.daemon.metrics import Metrics
from syncd.daemon.webhook import WebhookEndpoint, read_webhook_secret
from syncd.errors import ConfigError
from syncd.labelstudio.webhooks import HEADER
from tests.unit.fakes import services, settings

SECRET = "s3cr3t-shared"
CREATED = json.dumps({"action": "ANNOTATION_CREATED", "task": {"id": 7, "project": 2}}).encode()


def _endpoint(tmp_path: Path, queued: list[tuple[int, int | None]], **http: Any) -> tuple[WebhookEndpoint, Metrics]:
    metrics = Metrics()
    endpoint = WebhookEndpoint(metrics, lambda task, project: queued.append((task, project)))
    svc = services(tmp_path, http=http).svc
    endpoint.register(svc.settings, svc, SECRET)
    return endpoint, metrics


def _counted(metrics: Metrics, outcome: str) -> float:
    return metrics.registry.get_sample_value("syncd_webhook_requests_total", {"outcome": outcome}) or 0.0


def test_a_delivery_with_the_secret_queues_its_tasks_export(tmp_path: Path) -> None:
    queued: list[tuple[int, int | None]] = []
    endpoint, metrics = _endpoint(tmp_path, queued)
    with capture_logs() as logs:
        answer = endpoint.handle({HEADER: SECRET}, CREATED)
    assert answer == (202, {"queued": True, "action": "ANNOTATION_CREATED", "task": 7})
    assert queued == [(7, 2)] and _counted(metrics, "accepted") == 1
    assert [(e["event"], e["task"]) for e in logs] == [("webhook.received", 7)]


@pytest.mark.parametrize("headers", [{}, {HEADER: "wrong"}])
def test_without_the_secret_nothing_is_queued(tmp_path: Path, headers: dict[str, str]) -> None:
    queued: list[tuple[int, int | None]] = []
    endpoint, metrics = _endpoint(tmp_path, queued)
    with capture_logs() as logs:
        assert endpoint.handle(headers, CREATED) == (401, {"error": "unauthorized"})
    assert queued == [] and _counted(metrics, "unauthorized") == 1
    assert [e["event"] for e in logs] == ["webhook.rejected"]


def test_no_secret_configured_refuses_every_delivery(tmp_path: Path) -> None:
    queued: list[tuple[int, int | None]] = []
    endpoint = WebhookEndpoint(Metrics(), lambda task, project: queued.append((task, project)))
    assert endpoint.handle({HEADER: ""}, CREATED)[0] == 401 and queued == []


def test_a_payload_that_is_not_a_delivery_is_a_400(tmp_path: Path) -> None:
    endpoint, metrics = _endpoint(tmp_path, [])
    status, body = endpoint.handle({HEADER: SECRET}, b"[1, 2]")
    assert (status, body) == (400, {"error": "payload is not a JSON object"}) and _counted(metrics, "invalid") == 1


def test_an_action_not_exported_or_a_draining_daemon_is_ignored(tmp_path: Path) -> None:
    queued: list[tuple[int, int | None]] = []
    endpoint, metrics = _endpoint(tmp_path, queued)
    assert endpoint.handle({HEADER: SECRET}, b'{"action": "PROJECT_UPDATED"}') == (
        200,
        {"queued": False, "action": "PROJECT_UPDATED"},
    )
    endpoint.accepting = False
    assert endpoint.handle({HEADER: SECRET}, CREATED)[1] == {"queued": False, "action": "ANNOTATION_CREATED"}
    assert queued == [] and _counted(metrics, "ignored") == 2


def test_a_queue_that_fails_answers_503_and_leaves_the_task_to_the_poll(tmp_path: Path) -> None:
    def down(_task: int, _project: int | None) -> None:
        raise ConnectionError("state database unreachable")

    endpoint = WebhookEndpoint(Metrics(), down)
    svc = services(tmp_path).svc
    endpoint.register(svc.settings, svc, SECRET)
    with capture_logs() as logs:
        status, _ = endpoint.handle({HEADER: SECRET}, CREATED)
    assert status == 503
    assert logs[0]["event"] == "webhook.not_queued"
    assert logs[0]["error"] == "ConnectionError: state database unreachable"


def test_register_puts_the_webhook_on_every_project_when_a_public_url_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = services(tmp_path, http={"public_url": "https://syncd.example.org", "listen": "127.0.0.1:8081"}).svc
    registered: list[tuple[int, str, str]] = []
    monkeypatch.setattr(svc.projects, "all", lambda: [1, 2])
    monkeypatch.setattr(svc.projects, "register_webhook", lambda *args: registered.append(args))
    WebhookEndpoint(Metrics(), lambda *_: None).register(svc.settings, svc, SECRET)
    assert svc.projects.webhook == ("https://syncd.example.org/webhook", SECRET)  # for projects created later
    assert registered == [
        (1, "https://syncd.example.org/webhook", SECRET),
        (2, "https://syncd.example.org/webhook", SECRET),
    ]


def test_without_a_public_url_nothing_is_registered(tmp_path: Path) -> None:
    svc = services(tmp_path).svc
    WebhookEndpoint(Metrics(), lambda *_: None).register(svc.settings, svc, SECRET)
    assert svc.projects.webhook is None


def test_the_secret_is_read_from_its_file_and_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text(SECRET + "\n")
    assert read_webhook_secret(settings(tmp_path, http={"webhook_secret_file": str(path)})) == SECRET
    assert read_webhook_secret(settings(tmp_path, http={"webhook_secret_env": "SYNCD_NO_SUCH_VAR"})) == ""
    with pytest.raises(ConfigError):
        read_webhook_secret(settings(tmp_path, http={"webhook_secret_file": str(tmp_path / "gone")}))
