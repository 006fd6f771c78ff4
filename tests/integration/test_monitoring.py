"""What operators get for Prometheus and Grafana (deploy/), tested with Prometheus's own tools: `promtool check rules`,
the alerts' unit tests (`promtool test rules`, each alert firing and quiet), `promtool check metrics` over a live
/metrics of a running syncd, and every metric the rules and the dashboard's panels name found in that scrape."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from devstack import ROOT, SENTENCES, Stack, SyncdProcess, free_port, speak
from scripts import dashboard

PROMETHEUS = ROOT / "deploy" / "prometheus"
RULE_FILES = (PROMETHEUS / "rules.yml", PROMETHEUS / "alerts.yml")
TEST_FILES = (PROMETHEUS / "alerts_test.yml", PROMETHEUS / "alerts_daily_test.yml")
DASHBOARD = ROOT / "deploy" / "grafana" / "syncd.json"
RUNBOOK = ROOT / "docs" / "how-to" / "runbook.md"
PROMETHEUS_OWN = {"up"}
"""Series Prometheus itself writes for each target, which rules may use beside syncd's."""
GRAFANA_RANGES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


@pytest.fixture(scope="module")
def promtool() -> str:
    """promtool, from Debian's prometheus package (scripts/stack-install.sh): missing fails under CI, else skips."""
    found = shutil.which("promtool")
    if found:
        return found
    message = "promtool not found: scripts/stack-install.sh installs Debian's prometheus package"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def _promtool(promtool: str, *args: str | Path, stdin: str | None = None) -> str:
    proc = subprocess.run(
        [promtool, *map(str, args)], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, f"promtool {' '.join(map(str, args))}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def _rules(path: Path) -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


ALERTS = _rules(PROMETHEUS / "alerts.yml")
RECORDED = {rule["record"]: rule["expr"] for rule in _rules(PROMETHEUS / "rules.yml")}


# --- the rules, on their own -------------------------------------------------------------------------------------


def test_promtool_checks_the_rules(promtool: str) -> None:
    out = _promtool(promtool, "check", "rules", *RULE_FILES)
    assert out.count("SUCCESS") == len(RULE_FILES)


def test_promtool_unit_tests_of_the_alerts_pass(promtool: str) -> None:
    out = _promtool(promtool, "test", "rules", *TEST_FILES)
    assert "FAILED" not in out and out.count("SUCCESS") == len(TEST_FILES)


def test_every_alert_is_tested_firing_and_quiet() -> None:
    cases: dict[str, set[bool]] = {}
    for path in TEST_FILES:
        for group in yaml.safe_load(path.read_text())["tests"]:
            for case in group["alert_rule_test"]:
                cases.setdefault(case["alertname"], set()).add(bool(case["exp_alerts"]))
    assert {alert["alert"]: cases.get(alert["alert"], set()) for alert in ALERTS} == {
        alert["alert"]: {True, False} for alert in ALERTS
    }


def _anchor(heading: str) -> str:
    """The anchor of a heading, as MkDocs (and GitHub) make it."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_alert_has_a_severity_annotations_and_a_runbook_section() -> None:
    runbook = RUNBOOK.read_text()
    sections = {_anchor(line.removeprefix("## ")) for line in runbook.splitlines() if line.startswith("## ")}
    for alert in ALERTS:
        name = alert["alert"]
        assert alert["labels"]["severity"] in ("critical", "warning"), name
        assert {"summary", "description", "runbook_url"} <= set(alert["annotations"]), name
        assert alert["annotations"]["runbook_url"] == f"docs/how-to/runbook.md#{_anchor(name)}", name
        assert _anchor(name) in sections, f"{RUNBOOK.relative_to(ROOT)} has no section {name}"
        assert f"| [{name}](#{_anchor(name)}) |" in runbook, f"the runbook's table has no row for {name}"
    assert len(sections) == len(ALERTS), "a Runbook section for an alert that does not exist"


def test_the_dashboard_is_what_its_script_writes() -> None:
    assert DASHBOARD.read_text() == dashboard.render(), "run `python -m scripts.dashboard` and commit the JSON"


# --- metric names in the rules and the dashboard ----------------------------------------------------------------


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects (functions, keywords, label matchers and durations left out)."""
    for variable, value in GRAFANA_RANGES.items():
        expr = expr.replace(variable, value)
    expr = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\boffset\s+\w+", " ", expr)
    expr = re.sub(r"(?<![\w:])\d+(?:\.\d+)?(?:[eE][+-]?\d+)?", " ", expr)
    keywords = {"and", "or", "unless", "bool", "inf", "nan", "Inf", "NaN"}
    names = set(re.findall(r"[a-zA-Z_:][\w:]*(?!\s*\()(?![\w:])", expr))
    return names - keywords


def test_metric_names_are_read_from_promql() -> None:
    expr = (
        'histogram_quantile(0.9, sum by (le, model) (rate(syncd_review_word_error_rate_bucket{job="$job",'
        ' x=~"a|b"}[$__rate_interval]))) > 1e10 and on (job) up offset 1d unless job:syncd_x:max > bool 0.5'
    )
    assert metric_names(expr) == {"syncd_review_word_error_rate_bucket", "up", "job:syncd_x:max"}
    assert metric_names("time() - min by (job, state) (syncd_oldest_recording_timestamp_seconds)") == {
        "syncd_oldest_recording_timestamp_seconds"
    }


def _resolved(expr: str) -> set[str]:
    """Series names with recording rules replaced by what they are recorded from (rules.yml)."""
    names: set[str] = set()
    for name in metric_names(expr):
        if name in RECORDED:
            names |= _resolved(RECORDED[name])
        else:
            assert ":" not in name, f"{name} is no recording rule of rules.yml"
            names.add(name)
    return names


def _dashboard_queries() -> list[str]:
    board = yaml.safe_load(DASHBOARD.read_text())
    panels = [p for row in board["panels"] for p in (row, *row.get("panels", []))]
    queries = [target["expr"] for panel in panels for target in panel.get("targets", [])]
    variables = [var["definition"] for var in board["templating"]["list"] if var["type"] == "query"]
    return queries + [v.removeprefix("label_values(").split(",")[0] for v in variables]


def test_the_dashboard_queries_are_valid_promql(promtool: str, tmp_path: Path) -> None:
    """promtool parses each panel's query, as a recording rule of a scratch file."""
    queries = _dashboard_queries()
    for variable, value in GRAFANA_RANGES.items():
        queries = [q.replace(variable, value) for q in queries]
    rules = [{"record": f"dashboard:query_{i}:check", "expr": q} for i, q in enumerate(queries)]
    scratch = tmp_path / "dashboard-rules.yml"
    scratch.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    _promtool(promtool, "check", "rules", scratch)


# --- against a live scrape ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scrape(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """/metrics of a real `syncd run` that has found, transcribed and imported one recording and registered its
    webhook, scraped once for every test below."""
    tmp = tmp_path_factory.mktemp("monitoring")
    s3 = stack.s3.client()
    bucket = f"monitoring-{os.getpid()}"
    s3.create_bucket(Bucket=bucket)
    s3.upload_file(str(speak(SENTENCES[0], tmp / "a.wav")), bucket, "calls/a.wav")
    port = free_port()
    config = stack.config(tmp, bucket, project="t monitoring")
    config = config.replace('listen = ""', f'listen = "127.0.0.1:{port}"\npublic_url = "http://127.0.0.1:{port}"')
    config += "\n[schedule]\nscan_interval = 1\ntranscribe_interval = 1\nimport_interval = 1\nexport_interval = 1\n"
    (tmp / "syncd.toml").write_text(config)
    daemon = SyncdProcess(tmp / "syncd.toml", stack, env={"SYNCD_WEBHOOK_SECRET": "monitoring-secret-0123456789"})
    try:
        daemon.wait("webhook.registered")
        daemon.wait("task.imported", timeout=120)
        started = daemon.wait("stage.completed", stage="import", count=1)
        daemon.wait("cycle.completed", after=started)
        body = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    yield body


def _exported(text: str) -> set[str]:
    """Every series name a scrape offers, including those of families with no sample yet (a labelled counter never
    incremented): its _total, a histogram's _bucket, _sum and _count."""
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created")}
    names = set()
    for family in text_string_to_metric_families(text):
        names |= {family.name} | {family.name + s for s in suffixes.get(family.type, ())}
        names |= {sample.name for sample in family.samples}
    return names


def test_promtool_checks_a_live_scrape(promtool: str, scrape: str) -> None:
    started = time.monotonic()
    assert _promtool(promtool, "check", "metrics", stdin=scrape).strip() == ""
    assert time.monotonic() - started < 10


def test_the_live_scrape_carries_what_the_alerts_read(scrape: str) -> None:
    exported = _exported(scrape)
    for name in (
        "syncd_stage_failures_total",
        "syncd_oldest_recording_timestamp_seconds",
        "syncd_import_in_doubt_recordings",
        "syncd_stuck_stages",
        "syncd_webhook_registered",
    ):
        assert name in exported
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(scrape)
        for sample in family.samples
    }
    deps = {labels: value for (name, labels), value in samples.items() if name == "syncd_dependency_up"}
    assert deps[(("dependency", "labelstudio"),)] == 1 and deps[(("dependency", "state"),)] == 1
    assert samples[("syncd_oldest_recording_timestamp_seconds", (("state", "imported"),))] <= time.time()
    assert samples[("syncd_import_in_doubt_recordings", ())] == 0
    assert [v for (name, _), v in samples.items() if name == "syncd_webhook_registered"] == [1]


def test_the_rules_read_only_metrics_syncd_exports(scrape: str) -> None:
    exported = _exported(scrape) | PROMETHEUS_OWN
    for path in RULE_FILES:
        for rule in _rules(path):
            missing = _resolved(rule["expr"]) - exported
            assert not missing, f"{rule.get('alert') or rule.get('record')} reads {missing}, not in /metrics"


def test_every_dashboard_query_reads_metrics_syncd_exports(scrape: str) -> None:
    exported = _exported(scrape) | PROMETHEUS_OWN
    queries = _dashboard_queries()
    assert len(queries) >= 20
    for query in queries:
        names = _resolved(query)
        assert names and not names - exported, f"{query!r} reads {names - exported}, not in /metrics"
