"""A webhook delivery: any body anyone who holds the shared secret could send (Label Studio of any version, a proxy,
a person with curl) is a task to export, an action ignored, or a 400 with a reason; the endpoint never raises."""

from __future__ import annotations

import json

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from syncd.daemon.metrics import Metrics
from syncd.daemon.webhook import WebhookEndpoint
from syncd.labelstudio.webhooks import ACTIONS, HEADER, task_to_export
from tests.properties.conftest import Border
from tests.unit.fakes import services

SECRET = "s3cret-header-value"
ids = st.integers() | st.text(max_size=6) | st.none() | st.floats() | st.booleans()
ref = ids | st.fixed_dictionaries({}, optional={"id": ids, "project": ids, "task": ids})
json_any = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda x: st.lists(x, max_size=3) | st.dictionaries(st.text(max_size=6), x, max_size=3),
    max_leaves=10,
)
payload = st.fixed_dictionaries(
    {},
    optional={
        "action": st.sampled_from([*ACTIONS, "ANNOTATIONS_DELETED", "TASKS_CREATED"]) | json_any,
        "task": ref,
        "annotation": ref | json_any,
        "project": ref,
    },
)
bodies = (
    payload.map(lambda p: json.dumps(p).encode())
    | json_any.map(lambda p: json.dumps(p).encode())
    | st.binary(max_size=64)
)


QUEUED: list[tuple[int, int | None]] = []


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> WebhookEndpoint:
    """One endpoint for every example, registered as the daemon registers it (with the fakes' services)."""
    endpoint = WebhookEndpoint(Metrics(), lambda task, project: QUEUED.append((task, project)))
    svc = services(tmp_path_factory.mktemp("webhook")).svc
    endpoint.register(svc.settings, svc, SECRET)
    return endpoint


@pytest.mark.border("webhook payload")
@given(bodies)
@example(b"[" * 100_000)
@example(json.dumps({"action": "ANNOTATION_CREATED", "task": {"id": "0"}, "annotation": {"task": 0}}).encode())
@example(json.dumps({"action": "ANNOTATION_CREATED", "task": {"id": "\u00b2"}}).encode())
@example(json.dumps({"action": "ANNOTATION_UPDATED", "annotation": {"task": 12}, "project": {"id": 3}}).encode())
def test_a_delivery_is_a_task_an_ignored_action_or_a_named_refusal(
    border: Border, endpoint: WebhookEndpoint, body: bytes
) -> None:
    QUEUED.clear()
    status, answer = endpoint.handle({HEADER: SECRET}, body)
    assert status in (200, 202, 400), (status, answer)
    if status == 400:
        assert answer["error"], answer
        border.refused_for(answer["error"])
        return
    if status == 202:
        delivery = task_to_export(body)
        assert [(delivery.task, delivery.project)] == QUEUED and isinstance(delivery.task, int) and delivery.task > 0
    border.took()
