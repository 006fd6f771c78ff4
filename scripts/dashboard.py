"""The Grafana dashboard for syncd, as code: `python -m scripts.dashboard` writes deploy/grafana/syncd.json.

Panels are listed once below (section, title, queries); the layout, ids and Grafana's boilerplate are derived. Queries
use the recording rules of deploy/prometheus/rules.yml where the alerts share them, so that file must be loaded into
the Prometheus the dashboard reads. tests/integration/test_monitoring.py checks that the JSON in the repository is
what this script writes, and every metric its queries name against a live /metrics of syncd.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "syncd.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
WAITING = "discovered|transcribing|transcribed|accepted|importing|imported"
J = 'job="$job"'


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[tuple[str, str], ...]
    """(PromQL, legend) pairs."""
    unit: str = "short"
    description: str = ""
    kind: str = "timeseries"
    options: dict[str, Any] = field(default_factory=dict)


SECTIONS: tuple[tuple[str, tuple[Panel, ...]], ...] = (
    (
        "Throughput",
        (
            Panel(
                "Items handled per second, by stage",
                ((f"job_stage:syncd_stage_items:rate5m{{{J}}}", "{{stage}}"),),
                "ops",
                "New objects (scan), transcripts started and finished (transcribe), tasks created or adopted (import),"
                " reviews written (export).",
            ),
            Panel(
                "Stage failures per second, by cause",
                ((f"job_stage_cause:syncd_stage_failures:rate5m{{{J}}} > 0", "{{stage}} {{cause}}"),),
                "ops",
                "unavailable: a service down (see Outages); denied: credentials refused; error: anything else.",
            ),
            Panel(
                "Stage run time, 90th percentile",
                (
                    (
                        "histogram_quantile(0.9, sum by (le, stage)"
                        f" (rate(syncd_stage_duration_seconds_bucket{{{J}}}[$__rate_interval])))",
                        "{{stage}}",
                    ),
                ),
                "s",
            ),
            Panel(
                "Transcripts written per second",
                (
                    (
                        f'sum(rate(syncd_log_events_total{{{J}, event=~"annotation.exported|transcript.stitched"}}'
                        "[$__rate_interval]))",
                        "reviewed",
                    ),
                    (f"sum(rate(syncd_auto_accepted_total{{{J}}}[$__rate_interval]))", "auto-accepted"),
                ),
                "ops",
            ),
        ),
    ),
    (
        "Backlog",
        (
            Panel(
                "Recordings waiting, by state",
                ((f'job_state:syncd_recordings:max{{{J}, state=~"{WAITING}"}}', "{{state}}"),),
                description="imported: waiting for a reviewer; the others wait for a stage.",
            ),
            Panel(
                "Oldest waiting recording's age, by state",
                ((f"job_state:syncd_oldest_recording_age_seconds:max{{{J}}}", "{{state}}"),),
                "s",
                "Since the longest-waiting recording in each state last changed (SyncdReviewBacklogOld: imported).",
            ),
            Panel(
                "Audio waiting, by state",
                ((f'job_state:syncd_backlog_audio_seconds:max{{{J}, state=~"{WAITING}"}}', "{{state}}"),),
                "s",
                "Known once a recording is transcribed.",
            ),
            Panel(
                "Needs a person",
                (
                    (f"job_stage:syncd_parked:max{{{J}}}", "parked {{stage}}"),
                    (f'job_state:syncd_recordings:max{{{J}, state="failed"}}', "failed recordings"),
                    (f"job:syncd_import_in_doubt_recordings:max{{{J}}}", "import in doubt"),
                ),
                description="See the runbook (docs/how-to/runbook.md): SyncdItemsParked, SyncdRecordingsFailed,"
                " SyncdImportInDoubtOverdue.",
            ),
        ),
    ),
    (
        "Review quality",
        (
            Panel(
                "Review word error rate by model, mean over a day",
                ((f"job_model:syncd_review_word_error_rate:mean1d{{{J}}}", "{{model}}"),),
                "percentunit",
                "The machine transcript against the reviewer's correction (SyncdReviewWordErrorRateHigh).",
            ),
            Panel(
                "Review word error rate by model, 90th percentile over an hour",
                (
                    (
                        "histogram_quantile(0.9, sum by (le, model)"
                        f" (rate(syncd_review_word_error_rate_bucket{{{J}}}[1h])))",
                        "{{model}}",
                    ),
                ),
                "percentunit",
            ),
            Panel(
                "Audited auto-accepted transcripts: word error rate, mean over a day",
                ((f"job:syncd_audit_word_error_rate:mean1d{{{J}}}", "audit"),),
                "percentunit",
                "What auto-accepting costs (SyncdAuditWordErrorRateHigh).",
            ),
            Panel(
                "Machine transcript confidence, median over an hour",
                (
                    (
                        f"histogram_quantile(0.5, sum by (le) (rate(syncd_transcript_confidence_bucket{{{J}}}[1h])))",
                        "median",
                    ),
                ),
                "percentunit",
            ),
        ),
    ),
    (
        "Outages",
        (
            Panel(
                "Services up (1) or down (0)",
                ((f"job_dependency:syncd_dependency_up:min{{{J}}}", "{{dependency}}"),),
                description="Down when any instance finds it down (SyncdDependencyDown).",
            ),
            Panel(
                "Scraped and connected",
                ((f"up{{{J}}}", "scraped {{instance}}"), (f"syncd_up{{{J}}}", "connected {{instance}}")),
            ),
            Panel(
                "Last clean cycle's age, and stuck stages",
                (
                    (f"time() - syncd_last_good_cycle_timestamp_seconds{{{J}}} < 1e9", "{{instance}}"),
                    (f"syncd_stuck_stages{{{J}}} > 0", "stuck {{instance}}"),
                ),
                "s",
            ),
            Panel(
                "Webhooks",
                (
                    (f"job_outcome:syncd_webhook_requests:rate5m{{{J}}}", "{{outcome}} /s"),
                    (f"syncd_webhook_registered{{{J}}} == 0", "refused on project {{project}}"),
                ),
                description="Requests by outcome; a refused registration leaves polling only.",
            ),
        ),
    ),
    (
        "Instances and leases",
        (
            Panel("Instances", ((f"job_state:syncd_instances:max{{{J}}}", "{{state}}"),)),
            Panel(
                "Lease holders",
                ((f"syncd_lease_held{{{J}}} == 1", "{{lease}}: {{instance}}"),),
                description="Which instance holds each single-writer lease.",
            ),
            Panel(
                "Lease changes over the last hour",
                ((f"job_lease:syncd_lease_held:changes1h{{{J}}}", "{{lease}}"),),
                description="SyncdLeaseFlapping fires above 8.",
            ),
            Panel(
                "Tasks per Label Studio project",
                ((f"max by (project) (syncd_project_tasks{{{J}}})", "project {{project}}"),),
            ),
        ),
    ),
)


def _panel(panel: Panel, pid: int, x: int, y: int, width: int) -> dict[str, Any]:
    return {
        "id": pid,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}} | panel.options,
        "targets": [
            {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": chr(ord("A") + i)}
            for i, (expr, legend) in enumerate(panel.queries)
        ],
    }


def dashboard() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    y = 0
    for title, section in SECTIONS:
        row = {"id": len(panels) + 1, "type": "row", "title": title, "collapsed": False, "panels": []}
        panels.append(row | {"gridPos": {"h": 1, "w": 24, "x": 0, "y": y}})
        y += 1
        width = 24 // len(section)
        for i, panel in enumerate(section):
            panels.append(_panel(panel, len(panels) + 1, i * width, y, width))
        y += 8
    return {
        "title": "syncd",
        "uid": "syncd",
        "description": "S3 audio -> ASR -> Label Studio review -> transcripts in S3 (deploy/grafana, from"
        " scripts/dashboard.py)",
        "tags": ["syncd"],
        "editable": True,
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-24h", "to": "now"},
        "refresh": "1m",
        "timezone": "",
        "annotations": {"list": []},
        "templating": {
            "list": [
                {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus"},
                {
                    "name": "job",
                    "label": "Job",
                    "type": "query",
                    "datasource": DATASOURCE,
                    "definition": "label_values(syncd_up, job)",
                    "query": {"query": "label_values(syncd_up, job)", "refId": "job"},
                    "refresh": 2,
                },
            ]
        },
        "panels": panels,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


def main() -> int:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(render())
    print(f"wrote {OUT.relative_to(OUT.parent.parent.parent)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
