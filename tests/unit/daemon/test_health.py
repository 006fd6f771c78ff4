"""Health probes run once per TTL however many requests ask."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from syncd.config import parse
from syncd.daemon import health


def test_health_probes_run_once_per_ttl_however_many_ask(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = {"labelstudio": 0, "s3": 0}

    def alive(*_: Any, **__: Any) -> None:
        calls["labelstudio"] += 1

    def readable(*_: Any) -> None:
        calls["s3"] += 1

    monkeypatch.setattr(health, "labelstudio_alive", alive)
    monkeypatch.setattr(health, "buckets_readable", readable)
    monkeypatch.setattr(health, "quick_s3_client", lambda _settings: None)
    settings = parse({"sources": [{"bucket": "b"}], "state": {"path": str(tmp_path / "s.db")}})
    probes = health.Probes(settings, ttl=3600)
    threads = [
        threading.Thread(target=lambda: health.health_report(settings, "running", 1.0, probes)) for _ in range(50)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == {"labelstudio": 1, "s3": 1} and probes.rounds == 1
    ok, body = health.health_report(settings, "running", 1.0, probes)
    assert ok and body["checks"]["labelstudio"] == {"ok": True}
    assert calls == {"labelstudio": 1, "s3": 1}
