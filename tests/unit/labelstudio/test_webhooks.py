"""Label Studio webhook deliveries: which task (and project) a payload asks to export, and who may send one."""

from __future__ import annotations

import json

import pytest

from syncd.labelstudio.webhooks import HEADER, Delivery, authorized, task_to_export

SECRET = "webhook-shared-secret-for-tests-0123"


def test_a_delivery_names_its_task_and_project() -> None:
    created = {"action": "ANNOTATION_CREATED", "task": {"id": 7, "project": 4}, "annotation": {"id": 3, "task": 7}}
    assert task_to_export(json.dumps(created).encode()) == Delivery("ANNOTATION_CREATED", 7, 4)
    nested = {"action": "ANNOTATION_UPDATED", "annotation": {"id": 3, "task": {"id": 9}}, "project": {"id": 2}}
    assert task_to_export(json.dumps(nested).encode()) == Delivery("ANNOTATION_UPDATED", 9, 2)
    bare = {"action": "ANNOTATION_UPDATED", "annotation": {"id": 3, "task": 9}}
    assert task_to_export(json.dumps(bare).encode()) == Delivery("ANNOTATION_UPDATED", 9, None)


def test_other_actions_ask_for_nothing_and_bad_payloads_are_refused() -> None:
    deleted = task_to_export(b'{"action": "ANNOTATIONS_DELETED", "annotations": [{"id": 3}]}')
    assert deleted == Delivery("ANNOTATIONS_DELETED") and deleted.task is None
    with pytest.raises(ValueError, match="without a task id"):
        task_to_export(b'{"action": "ANNOTATION_CREATED"}')
    with pytest.raises(ValueError, match="not a JSON object"):
        task_to_export(b"[]")


def test_only_the_shared_secret_is_authorized() -> None:
    assert authorized({HEADER: SECRET}, SECRET)
    assert not authorized({HEADER: SECRET[:-1]}, SECRET)
    assert not authorized({}, SECRET)
    assert not authorized({HEADER: ""}, "")  # no secret configured: nothing is accepted
