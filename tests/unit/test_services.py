"""Building the services: a missing Label Studio token is a config error that says where it was looked for; the
services are a frozen container of collaborators passed in."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import pytest

from syncd import cli, errors
from syncd.services import Services
from syncd.state.cluster import PROJECT
from syncd.state.db import FencedError
from tests.unit.fakes import services
from tests.unit.scenarios import expire_lease, second_instance


def test_missing_token_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    path = tmp_path / "c.toml"
    path.write_text(f'[[sources]]\nbucket = "b"\n[state]\npath = "{tmp_path / "s.db"}"\n')
    assert cli.main(["once", "-c", str(path)]) == errors.CONFIG
    assert "LABEL_STUDIO_API_KEY" in capsys.readouterr().err


def test_services_are_a_frozen_container_whose_projects_recheck_the_project_lease(tmp_path: Path) -> None:
    """Every collaborator is passed in when the services are built, the projects' lease check among them: a holder
    whose ``project`` lease another instance took creates nothing in Label Studio."""
    created: list[str] = []
    client = SimpleNamespace(
        find_projects=lambda prefix: {}, ensure_project=lambda *a, **kw: created.append(kw["title"])
    )
    base, *_ = services(tmp_path, labelstudio={"project": "Review {year}-{month}"})
    svc = Services.assemble(base.settings, base.state, base.storage, base.transcriber, client)  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        svc.paced = True  # type: ignore[misc]
    svc.projects.current_id = 1
    other = second_instance(svc, tmp_path, "b")
    with pytest.raises(FencedError), svc.instance.exclusively(PROJECT):
        expire_lease(svc, PROJECT)
        assert other.instance.hold(PROJECT)
        svc.projects.ensure()
    assert created == []
