"""Prometheus metrics for /metrics, fed from the events the stages already log.

Stages only log; ``observe`` is an event sink (syncd.log) that turns every event, at any level and from any logger,
into counters and histograms, so the log catalogue and the metrics can never disagree. Stage runs are counted from
``stage.completed``, which `once`, the daemon's jobs and the webhook export all log through one code path.
Recordings by state, the backlog's age, an import in doubt and the services up or down are read at scrape time (the
state store, and the cached probes of /healthz). A state database that cannot be read leaves its families out of the
scrape instead of failing it: ``syncd_dependency_up{dependency="state"}`` then says why they are missing.

The alert rules, recording rules and dashboard in ``deploy/`` use these names; a test checks them against a live scrape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from syncd.pipeline import CAUSES
from syncd.stages import STAGE_NAMES

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REVIEWED = ("annotation.exported", "transcript.stitched")
"""The events of a reviewed transcript written beside its audio (whole, or stitched from review units)."""


class _StateCollector(Collector):
    def __init__(
        self,
        counts: Callable[[], Mapping[str, float]],
        name: str = "syncd_recordings",
        doc: str = "Recordings in the state store by life-cycle state",
        label: str = "state",
    ) -> None:
        self._counts = counts
        self._family = (name, doc, label)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        name, doc, label = self._family
        try:
            counts = self._counts()
        except Exception:  # the state database is down: leave this family out, keep the rest of the scrape
            return
        family = GaugeMetricFamily(name, doc, labels=[label])
        for state, count in sorted(counts.items()):
            family.add_metric([state], count)
        yield family


class _WebhookCollector(Collector):
    """The timestamp is absent while none wait, so ``time() - it`` is only ever a real wait."""

    def __init__(self, backlog: Callable[[], tuple[int, float | None]]) -> None:
        self._backlog = backlog

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            waiting, oldest = self._backlog()
        except Exception:  # the state database is down: leave these out, keep the rest of the scrape
            return
        yield GaugeMetricFamily(
            "syncd_webhook_deliveries_waiting",
            "Webhook deliveries (on any instance) waiting in the state for the export lease holder",
            value=waiting,
        )
        if oldest is not None:
            yield GaugeMetricFamily(
                "syncd_webhook_oldest_delivery_timestamp_seconds",
                "Unix time the oldest waiting webhook delivery was received",
                value=oldest,
            )


class _DoubtCollector(Collector):
    """An import in doubt (see syncd.stages.import_doubt): how many recordings wait, and when Label Studio is asked
    again. The timestamp is absent while nothing is in doubt, so ``time() - it`` is only ever a real overdue time."""

    def __init__(self, doubt: Callable[[], Mapping[str, Any] | None]) -> None:
        self._doubt = doubt

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            doubt = self._doubt()
        except Exception:  # the state database is down (see _StateCollector)
            return
        yield GaugeMetricFamily(
            "syncd_import_in_doubt_recordings",
            "Recordings whose import is in doubt (a batch timed out, failed with 5xx or was cut off), waiting to be"
            " settled",
            value=doubt["recordings"] if doubt else 0,
        )
        retry = GaugeMetricFamily(
            "syncd_import_doubt_retry_timestamp_seconds",
            "Unix time Label Studio is asked again about the imports in doubt (absent while none is)",
        )
        if doubt:
            retry.add_metric([], doubt["retry_at"])
        yield retry


class _DependencyCollector(Collector):
    def __init__(self, up: Callable[[], dict[str, bool]]) -> None:
        self._up = up

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "syncd_dependency_up",
            "1 while a service the stages need answers, 0 while it is down (outages seen by the stages)",
            labels=["dependency"],
        )
        for name, up in sorted(self._up().items()):
            family.add_metric([name], 1 if up else 0)
        yield family


class Metrics:
    """One registry per daemon (not the global one), so tests and reloads never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.stage_runs = Counter("syncd_stage_runs", "Stage runs by outcome", ["stage", "outcome"], registry=r)
        self.stage_items = Counter(
            "syncd_stage_items", "Items a stage handled (new, transcribed, ...)", ["stage"], registry=r
        )
        self.stage_seconds = Histogram(
            "syncd_stage_duration_seconds",
            "Wall time of one stage run",
            ["stage"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
            registry=r,
        )
        self.events = Counter("syncd_log_events", "Log events by name and level", ["event", "level"], registry=r)
        self.confidence = Histogram(
            "syncd_transcript_confidence",
            "Mean word confidence of each machine transcript",
            buckets=tuple(i / 10 for i in range(1, 11)),
            registry=r,
        )
        wer_buckets = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0)
        self.wer = Histogram(
            "syncd_review_word_error_rate",
            "Word error rate of the machine transcript against the reviewer's correction, by model and language",
            ["model", "language"],
            buckets=wer_buckets,
            registry=r,
        )
        self.audit_wer = Histogram(
            "syncd_audit_word_error_rate",
            "Word error rate of audited transcripts (confident enough to auto-accept, reviewed as a sample): what"
            " auto-accepting costs",
            buckets=wer_buckets,
            registry=r,
        )
        self.auto_accepted = Counter(
            "syncd_auto_accepted", "Transcripts written without review (review.auto_accept_above)", registry=r
        )
        self.webhooks = Counter("syncd_webhook_requests", "Webhook requests by outcome", ["outcome"], registry=r)
        self.webhook_registered = Gauge(
            "syncd_webhook_registered",
            "1 for each project whose webhook Label Studio accepted, 0 where it refused it (reviews then arrive by"
            " polling only)",
            ["project"],
            registry=r,
        )
        self.stage_failures = Counter(
            "syncd_stage_failures",
            "Stage runs that raised, by cause: unavailable (a service down), denied (credentials refused), error",
            ["stage", "cause"],
            registry=r,
        )
        for stage in STAGE_NAMES:  # every series exists from the start, so rates read 0 rather than nothing
            for cause in (*CAUSES.values(), "error"):
                self.stage_failures.labels(stage, cause)
        self.fenced = Counter(
            "syncd_fenced",
            "Stage runs given up because the lease they ran under was taken by another instance (this one froze)",
            ["lease"],
            registry=r,
        )
        self.twins_deleted = Counter(
            "syncd_task_twins_deleted", "Unreviewed twin tasks deleted (labelstudio.on_duplicate)", registry=r
        )
        self.last_good_cycle = Gauge(
            "syncd_last_good_cycle_timestamp_seconds",
            "Unix time of the last cycle in which every stage ran cleanly",
            registry=r,
        )
        self.up = Gauge("syncd_up", "1 once syncd is connected and scheduling", registry=r)
        self.stuck = Gauge(
            "syncd_stuck_stages",
            "Stage runs silent (no heartbeat) past schedule.stage_timeout right now; the watchdog is withheld",
            registry=r,
        )

    def watch_state(self, counts: Callable[[], dict[str, int]]) -> None:
        self.registry.register(_StateCollector(counts))

    def watch_dependencies(self, up: Callable[[], dict[str, bool]]) -> None:
        self.registry.register(_DependencyCollector(up))

    def watch_backlog(self, seconds: Callable[[], dict[str, float]]) -> None:
        doc = "Audio seconds of the recordings in each life-cycle state (known once transcribed)"
        self.registry.register(_StateCollector(seconds, "syncd_backlog_audio_seconds", doc, "state"))

    def watch_parked(self, counts: Callable[[], dict[str, int]]) -> None:
        doc = "Items parked until `syncd retry` (they kept failing), by stage"
        self.registry.register(_StateCollector(counts, "syncd_parked", doc, "stage"))

    def watch_projects(self, counts: Callable[[], dict[str, int]]) -> None:
        doc = (
            "Tasks in each Label Studio project syncd writes to or reads from, as last seen (rollover:"
            " docs/how-to/large-projects.md)"
        )
        self.registry.register(_StateCollector(counts, "syncd_project_tasks", doc, "project"))

    def watch_leases(self, held: Callable[[], dict[str, int]]) -> None:
        doc = "1 for each single-writer lease this instance holds (scan, import, export, project), 0 for the others"
        self.registry.register(_StateCollector(held, "syncd_lease_held", doc, "lease"))

    def watch_instances(self, counts: Callable[[], dict[str, int]]) -> None:
        doc = 'Instances sharing the state: "live" renew their leases, "silent" stopped without leaving'
        self.registry.register(_StateCollector(counts, "syncd_instances", doc, "state"))

    def watch_oldest(self, since: Callable[[], dict[str, float]]) -> None:
        doc = (
            "Unix time the longest-waiting recording in each waiting state (work to do, or awaiting review) last"
            " changed: time() minus it is the oldest one's age"
        )
        self.registry.register(_StateCollector(since, "syncd_oldest_recording_timestamp_seconds", doc, "state"))

    def watch_import_doubt(self, doubt: Callable[[], Mapping[str, Any] | None]) -> None:
        self.registry.register(_DoubtCollector(doubt))

    def watch_twins(self, counts: Callable[[], dict[str, int]]) -> None:
        doc = (
            "Twin groups (two or more tasks for one audio version) left standing: reviewed (more than one twin"
            ' reviewed: a person should look) or unreviewed (kept by labelstudio.on_duplicate = "keep")'
        )
        self.registry.register(_StateCollector(counts, "syncd_task_twins", doc, "state"))

    def watch_refused(self, counts: Callable[[], dict[str, int]]) -> None:
        doc = (
            "Projects on which Label Studio refused what syncd registers (webhook: reviews arrive by polling only;"
            " storage: audio does not play), as the state records it"
        )
        self.registry.register(_StateCollector(counts, "syncd_labelstudio_refused", doc, "what"))

    def watch_unchecked(self, counts: Callable[[], dict[str, int]]) -> None:
        doc = "Tasks whose predictions wait to be checked again (a check or an addition Label Studio refused)"
        self.registry.register(_StateCollector(counts, "syncd_predictions_unchecked", doc, "project"))

    def watch_webhooks(self, backlog: Callable[[], tuple[int, float | None]]) -> None:
        """Webhook deliveries left in the state for the export lease holder: how many, and when the oldest came."""
        self.registry.register(_WebhookCollector(backlog))

    def observe(self, level: str, event: str, fields: Mapping[str, Any]) -> None:
        """Count every event; a few also feed a figure of their own."""
        self.events.labels(event, level).inc()
        if event == "stage.completed":
            stage = str(fields["stage"])
            self.stage_runs.labels(stage, "ok" if fields["ok"] else "failed").inc()
            self.stage_items.labels(stage).inc(fields["count"])
            self.stage_seconds.labels(stage).observe(fields["seconds"])
        elif event == "stage.failed":
            self.stage_failures.labels(str(fields["stage"]), str(fields.get("cause") or "error")).inc()
        elif event in ("webhook.registered", "webhook.register_failed"):
            self.webhook_registered.labels(str(fields["project"])).set(event == "webhook.registered")
        elif event == "transcription.completed" and isinstance(fields.get("confidence"), int | float):
            self.confidence.observe(fields["confidence"])
        elif event in REVIEWED and isinstance(fields.get("word_error_rate"), int | float):
            wer = fields["word_error_rate"]
            self.wer.labels(str(fields.get("model") or ""), str(fields.get("language") or "")).observe(wer)
            if fields.get("review") == "audit":
                self.audit_wer.observe(wer)
        elif event == "transcript.auto_accepted":
            self.auto_accepted.inc()
        elif event == "lease.fenced":
            self.fenced.labels(str(fields["lease"])).inc()
        elif event == "task.twin_deleted":
            self.twins_deleted.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
