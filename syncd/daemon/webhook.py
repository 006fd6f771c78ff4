"""POST /webhook: authenticate a Label Studio delivery and queue that task's export at once.

Label Studio sends each event once, without retry or signature, so a shared-secret header authenticates it and the
export poll stays as the safety net for anything missed. Any instance may receive it: the delivery is written to the
state, where the export lease holder's webhook job finds it (``syncd.stages.export.webhooked``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from syncd.config import Settings, read_secret
from syncd.daemon.metrics import Metrics
from syncd.labelstudio import webhooks
from syncd.log import describe_error, get_logger
from syncd.services import Services


class WebhookEndpoint:
    def __init__(self, metrics: Metrics, queue_export: Callable[[int, int | None], None]) -> None:
        self._metrics = metrics
        self._queue_export = queue_export
        self._secret = ""
        self.accepting = True
        self.log = get_logger()

    def handle(self, headers: Any, body: bytes) -> tuple[int, dict[str, Any]]:
        if not webhooks.authorized(headers, self._secret):
            self._metrics.webhooks.labels("unauthorized").inc()
            self.log.warning("webhook.rejected", reason="missing or wrong secret header")
            return 401, {"error": "unauthorized"}
        try:
            delivery = webhooks.task_to_export(body)
        except ValueError as exc:
            self._metrics.webhooks.labels("invalid").inc()
            self.log.warning("webhook.invalid", error=str(exc))
            return 400, {"error": str(exc)}
        action, task_id = delivery.action, delivery.task
        if task_id is None or not self.accepting:
            self._metrics.webhooks.labels("ignored").inc()
            return 200, {"queued": False, "action": action}
        try:
            self._queue_export(task_id, delivery.project)
        except Exception as exc:
            self._metrics.webhooks.labels("failed").inc()
            self.log.warning("webhook.not_queued", action=action, task=task_id, error=describe_error(exc))
            return 503, {"error": "could not queue the export; the next export poll reads the task"}
        self._metrics.webhooks.labels("accepted").inc()
        self.log.info("webhook.received", action=action, task=task_id)
        return 202, {"queued": True, "action": action, "task": task_id}

    def register(self, settings: Settings, svc: Services, secret: str) -> None:
        """Use ``secret`` from now on and register the webhook on every project syncd reads from (and, through
        ``svc.projects.webhook``, on each project it creates later). A refusal is logged and leaves polling as the way
        reviews arrive: it never stops the daemon."""
        http = settings.http
        self._secret = secret
        if not (http.public_url and http.listen and self._secret):
            return
        svc.projects.webhook = (webhooks.url_for(http.public_url), self._secret)
        for project in svc.projects.all():
            svc.projects.register_webhook(project, *svc.projects.webhook)


def read_webhook_secret(settings: Settings) -> str:
    """The shared secret ("" when none is configured); a configured file that cannot be read is a ConfigError."""
    return read_secret(settings.http.webhook_secret_env, settings.http.webhook_secret_file) or ""
