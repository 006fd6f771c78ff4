"""Label Studio webhook deliveries: who may send them, and which task a delivery asks us to export now.

Label Studio sends each event once, without retry or signature, so a shared-secret header authenticates it and the
export poll stays as the safety net for anything missed.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

HEADER = "X-Syncd-Webhook-Secret"
PATH = "/webhook"
ACTIONS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED")


def url_for(public_url: str) -> str:
    return public_url.rstrip("/") + PATH


def authorized(headers: Any, secret: str) -> bool:
    given = headers.get(HEADER) or ""
    return bool(secret) and hmac.compare_digest(given.encode(), secret.encode())


def task_to_export(body: bytes) -> tuple[str, int | None]:
    """(action, task id) of a delivery; the task id is None for actions we do not export on."""
    payload = json.loads(body or b"{}")
    if not isinstance(payload, dict):
        raise ValueError("payload is not a JSON object")
    action = str(payload.get("action", ""))
    if action not in ACTIONS:
        return action, None
    task = payload.get("task") or {}
    annotation = payload.get("annotation") or {}
    task_id = task.get("id") if isinstance(task, dict) else task
    task_id = task_id or (annotation.get("task") if isinstance(annotation, dict) else None)
    if isinstance(task_id, dict):
        task_id = task_id.get("id")
    if task_id is None:
        raise ValueError(f"{action} without a task id")
    return action, int(task_id)
