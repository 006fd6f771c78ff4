"""Health probes run once per TTL however many requests ask."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from syncd import errors
from syncd.config import parse
from syncd.daemon import health
from syncd.errors import ProbeError
from syncd.log import get_logger
from syncd.state import StateStore
from syncd.state.outages import Dependency, Outages


def test_health_probes_run_once_per_ttl_however_many_ask(tmp_path: Path) -> None:
    rounds: list[int] = []

    def checks(_settings: Any) -> dict[str, dict[str, Any]]:
        rounds.append(1)
        return {"labelstudio": {"ok": True}, "s3": {"ok": True}}

    settings = parse({"sources": [{"bucket": "b"}], "state": {"path": str(tmp_path / "s.db")}})
    probes = health.Probes(settings, ttl=3600, checks=checks)
    threads = [
        threading.Thread(target=lambda: health.health_report(settings, "running", 1.0, probes)) for _ in range(50)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(rounds) == 1 and probes.rounds == 1
    ok, body = health.health_report(settings, "running", 1.0, probes)
    assert ok and body["checks"]["labelstudio"] == {"ok": True}
    assert len(rounds) == 1


class _OutagesDown(Outages):
    def all_known(self) -> dict[str, Dependency]:
        raise ConnectionError("connection refused")


def _state_down(path: Path) -> StateStore:
    """A state whose database cannot be read (the outages table is what ``dependencies_up`` reads)."""
    store = StateStore(path)
    store.outages = _OutagesDown(store.db)
    return store


def test_dependencies_up_names_the_probed_services_the_outages_and_the_state(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """What syncd_dependency_up shows: the probes of /healthz, outages the stages recorded, and the state database."""

    def refused(*_: Any, **__: Any) -> None:
        raise ProbeError("labelstudio: connection refused", errors.UNAVAILABLE)

    monkeypatch.setattr(health, "labelstudio_alive", refused)
    monkeypatch.setattr(health, "buckets_readable", lambda *_: None)
    monkeypatch.setattr(health, "quick_s3_client", lambda _settings: None)
    settings = parse({"sources": [{"bucket": "b"}], "state": {"path": str(tmp_path / "s.db")}})
    probes = health.Probes(settings, ttl=3600)
    state = StateStore(tmp_path / "s.db")
    state.outages.mark_down("transcribe", "ThrottlingException", 60, get_logger())
    state.outages.mark_down("s3", "HTTP 503", 60, get_logger())
    assert health.dependencies_up(probes, state) == {
        "labelstudio": False,
        "s3": False,
        "transcribe": False,
        "state": True,
    }
    state.outages.mark_up(["s3", "transcribe"], get_logger())
    up = health.dependencies_up(probes, state)
    assert up == {"labelstudio": False, "s3": True, "transcribe": True, "state": True}
    assert health.dependencies_up(probes, _state_down(tmp_path / "down.db")) == {
        "labelstudio": False,
        "s3": True,
        "state": False,
    }
    assert probes.rounds == 1
