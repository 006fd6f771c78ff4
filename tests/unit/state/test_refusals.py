"""Refusals: a webhook or audio storage Label Studio refuses (SSRF protection, permissions) never stops syncd, and
shows with its reason in /healthz ("degraded"), `syncd status`, `syncd check` and ``syncd_labelstudio_refused`` until
a later registration succeeds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from syncd.commands.check import refusal_checks
from syncd.commands.status import format_status, status_report
from syncd.daemon.health import health_report
from syncd.daemon.metrics import Metrics
from tests.unit.fakes import FakeLabelStudio, healthy_probes, services

SSRF = "URL resolves to a reserved network address (block: 127.0.0.0/8)"


class ApiError(Exception):
    """As label-studio-sdk raises it: status and the JSON body Label Studio answered with."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.body = {"status_code": status_code, "detail": detail}


class RefusingLabelStudio(FakeLabelStudio):
    refuse: bool = True
    storages: int = 0

    def ensure_webhook(self, project: int, url: str, secret: str) -> tuple[int, bool]:
        if self.refuse:
            raise ApiError(403, SSRF)
        return 7, True

    def ensure_storage(self, project: int, bucket: str, s3: dict[str, Any]) -> int:
        if self.refuse:
            raise ApiError(403, SSRF)
        self.storages += 1
        return 3


def test_a_refused_webhook_and_storage_show_everywhere_until_accepted(tmp_path: Path) -> None:
    ls = RefusingLabelStudio()
    svc, *_ = services(tmp_path, client=ls, http={"public_url": "http://127.0.0.1:9464"})
    with capture_logs() as logs:
        svc.projects.ensure_storages(1)
        svc.projects.register_webhook(1, "http://127.0.0.1:9464/webhook", "s3cret")
    failed = {e["event"]: e for e in logs if e["event"].endswith("register_failed")}
    assert failed["webhook.register_failed"]["error"] == f"HTTP 403: {SSRF}"
    assert "export poll only" in failed["webhook.register_failed"]["means"]
    assert failed["storage.register_failed"]["bucket"] == "b"

    ok, body = health_report(svc.settings, "running", 1.0, healthy_probes(svc.settings), svc.state)
    assert ok and body["status"] == "degraded"
    check = body["checks"]["labelstudio_refused"]
    assert not check["ok"] and "SSRF_PROTECTION_ENABLED" in check["remedy"]
    assert [(r["what"], r["project"], r["reason"]) for r in check["refused"]] == [
        ("storage", 1, f"HTTP 403: {SSRF}"),
        ("webhook", 1, f"HTTP 403: {SSRF}"),
    ]
    text = format_status(status_report(svc.state))
    assert "webhook on project 1 (http://127.0.0.1:9464/webhook): HTTP 403" in text
    assert "meanwhile reviews reach S3 by the export poll only" in text
    checks = {c.name: c for c in refusal_checks(svc.settings, svc.state.refusals.all_known())}
    assert not checks["labelstudio.webhook"].ok and SSRF in checks["labelstudio.webhook"].detail
    assert not checks["labelstudio.storage"].ok

    metrics = Metrics()
    metrics.watch_refused(lambda: svc.state.refusals.counts())
    samples = {
        (s.name, s.labels.get("what")): s.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for s in family.samples
        if s.name == "syncd_labelstudio_refused"
    }
    assert samples == {("syncd_labelstudio_refused", "webhook"): 1, ("syncd_labelstudio_refused", "storage"): 1}

    ls.refuse = False
    svc.projects.ensure_storages(1)
    svc.projects.register_webhook(1, "http://127.0.0.1:9464/webhook", "s3cret")
    assert svc.state.refusals.all_known() == []
    _, body = health_report(svc.settings, "running", 1.0, healthy_probes(svc.settings), svc.state)
    assert body["status"] == "ok" and body["checks"]["labelstudio_refused"] == {"ok": True, "refused": []}
    assert "refused by Label Studio: nothing" in format_status(status_report(svc.state))
    assert [c.ok for c in refusal_checks(svc.settings, svc.state.refusals.all_known())] == [True]


def test_a_storage_error_that_is_no_refusal_still_stops_the_set_up(tmp_path: Path) -> None:
    class Down(RefusingLabelStudio):
        def ensure_storage(self, project: int, bucket: str, s3: dict[str, Any]) -> int:
            raise ApiError(502, "Bad Gateway")

    svc, *_ = services(tmp_path, client=Down())
    try:
        svc.projects.ensure_storages(1)
    except ApiError as exc:
        assert exc.status_code == 502
    else:
        raise AssertionError("a 502 is an outage, not a refusal")
    assert svc.state.refusals.all_known() == []
