"""The metrics of /metrics that the alert rules and the dashboard (deploy/) read: fed from log events, or read at scrape
time, and a scrape that survives a state database it cannot read."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from syncd.daemon.metrics import Metrics


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for s in family.samples
    }


def test_stage_failures_are_counted_by_stage_and_cause_and_every_series_exists_from_the_start() -> None:
    metrics = Metrics()
    failures = {k: v for k, v in _samples(metrics).items() if k[0] == "syncd_stage_failures_total"}
    assert len(failures) == 4 * 3 and set(failures.values()) == {0}
    metrics.observe("error", "stage.failed", {"stage": "export", "cause": "denied", "error": "HTTP 401"})
    metrics.observe("error", "stage.failed", {"stage": "export", "cause": "denied", "error": "HTTP 401"})
    metrics.observe("error", "stage.failed", {"stage": "scan", "cause": "unavailable", "error": "refused"})
    samples = _samples(metrics)
    assert samples[("syncd_stage_failures_total", (("cause", "denied"), ("stage", "export")))] == 2
    assert samples[("syncd_stage_failures_total", (("cause", "unavailable"), ("stage", "scan")))] == 1
    assert samples[("syncd_stage_failures_total", (("cause", "error"), ("stage", "import")))] == 0


def test_a_webhook_refused_on_a_project_shows_until_it_is_registered() -> None:
    metrics = Metrics()
    metrics.observe("error", "webhook.register_failed", {"project": 12, "url": "u", "error": "HTTP 403"})
    metrics.observe("info", "webhook.registered", {"project": 13, "webhook": 1, "url": "u", "created": True})
    samples = _samples(metrics)
    assert samples[("syncd_webhook_registered", (("project", "12"),))] == 0
    assert samples[("syncd_webhook_registered", (("project", "13"),))] == 1
    metrics.observe("info", "webhook.registered", {"project": 12, "webhook": 2, "url": "u", "created": True})
    assert _samples(metrics)[("syncd_webhook_registered", (("project", "12"),))] == 1


def test_an_import_in_doubt_shows_its_recordings_and_when_it_is_settled() -> None:
    doubt: list[dict[str, object] | None] = [None]
    metrics = Metrics()
    metrics.watch_import_doubt(lambda: doubt[0])
    samples = _samples(metrics)
    assert samples[("syncd_import_in_doubt_recordings", ())] == 0
    assert not [k for k in samples if k[0] == "syncd_import_doubt_retry_timestamp_seconds"]
    doubt[0] = {"recordings": 3, "reason": "ReadTimeout", "retry_at": 1_800_000_000.0}
    samples = _samples(metrics)
    assert samples[("syncd_import_in_doubt_recordings", ())] == 3
    assert samples[("syncd_import_doubt_retry_timestamp_seconds", ())] == 1_800_000_000.0


def test_the_oldest_waiting_recording_per_state() -> None:
    metrics = Metrics()
    metrics.watch_oldest(lambda: {"imported": 1_700_000_000.0, "discovered": 1_700_000_100.0})
    samples = _samples(metrics)
    assert samples[("syncd_oldest_recording_timestamp_seconds", (("state", "imported"),))] == 1_700_000_000.0
    assert samples[("syncd_oldest_recording_timestamp_seconds", (("state", "discovered"),))] == 1_700_000_100.0


def test_a_state_that_cannot_be_read_leaves_its_families_out_not_the_scrape() -> None:
    def unreachable() -> dict[str, int]:
        raise ConnectionError("connection refused")

    metrics = Metrics()
    metrics.watch_state(unreachable)
    metrics.watch_parked(unreachable)
    metrics.watch_import_doubt(unreachable)
    metrics.watch_dependencies(lambda: {"state": False, "labelstudio": True})
    metrics.up.set(1)
    samples = _samples(metrics)
    assert samples[("syncd_dependency_up", (("dependency", "state"),))] == 0
    assert samples[("syncd_up", ())] == 1
    assert not [k for k in samples if k[0] in ("syncd_recordings", "syncd_parked", "syncd_import_in_doubt_recordings")]
