"""Label Studio webhook deliveries: who may send them, and which task a delivery asks us to export now.

Label Studio sends each event once, without retry or signature, so a shared-secret header authenticates it and the
export poll stays as the safety net for anything missed.
"""

from __future__ import annotations

import hmac
import json
from typing import Any, NamedTuple

HEADER = "X-Syncd-Webhook-Secret"
PATH = "/webhook"
ACTIONS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED")


def url_for(public_url: str) -> str:
    return public_url.rstrip("/") + PATH


def authorized(headers: Any, secret: str) -> bool:
    given = headers.get(HEADER) or ""
    return bool(secret) and hmac.compare_digest(given.encode(), secret.encode())


class Delivery(NamedTuple):
    """What a delivery asks: ``task`` is None for actions we do not export on; ``project`` is None when the payload
    does not name it (the export learns it from the task)."""

    action: str
    task: int | None = None
    project: int | None = None


def task_to_export(body: bytes) -> Delivery:
    """The task (and its project) a delivery asks us to export; ValueError for a payload that is not one."""
    try:
        payload = json.loads(body or b"{}")
    except RecursionError:
        raise ValueError("payload is nested too deeply to be a Label Studio delivery") from None
    if not isinstance(payload, dict):
        raise ValueError("payload is not a JSON object")
    action = str(payload.get("action", ""))
    if action not in ACTIONS:
        return Delivery(action)
    task = payload.get("task") or {}
    annotation = payload.get("annotation") or {}
    task_id = _id(task) or (_id(annotation.get("task")) if isinstance(annotation, dict) else None)
    if task_id is None:
        raise ValueError(f"{action} without a task id")
    project = (task.get("project") if isinstance(task, dict) else None) or payload.get("project")
    return Delivery(action, task_id, _id(project))


def _id(ref: Any) -> int | None:
    """An id given bare or as an object's ``id`` (Label Studio nests some, not others)."""
    if isinstance(ref, dict):
        ref = ref.get("id")
    if isinstance(ref, bool):
        return None
    number = int(ref) if isinstance(ref, int | str) and str(ref).isdecimal() else 0
    return number or None  # Label Studio's ids start at 1
