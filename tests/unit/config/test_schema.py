"""Schema rules that are not plain types: the state URL holds no password; roles name the stages."""

from __future__ import annotations

import pytest

from syncd.config import parse
from tests.unit.scenarios import MINIMAL, error_for


def test_state_url_is_postgresql_without_a_password(monkeypatch: pytest.MonkeyPatch) -> None:
    held = error_for({**MINIMAL, "state": {"url": "postgresql://syncd:hunter2@db/syncd"}})
    assert "state.url = 'postgresql://syncd:***@db/syncd'" in held and "must not hold the password" in held
    assert "hunter2" not in held
    assert "postgresql://" in error_for({**MINIMAL, "state": {"url": "mysql://db/syncd"}})
    settings = parse({**MINIMAL, "state": {"url": "postgresql://syncd@db:5432/syncd"}})
    monkeypatch.delenv("SYNCD_STATE_PASSWORD", raising=False)
    assert settings.state.target() == "postgresql://syncd@db:5432/syncd"
    monkeypatch.setenv("SYNCD_STATE_PASSWORD", "p@ss/word")
    assert settings.state.target() == "postgresql://syncd:p%40ss%2Fword@db:5432/syncd"
    assert parse(MINIMAL).state.target() == "/var/lib/syncd/state.db"


def test_roles_name_the_stages() -> None:
    message = error_for({**MINIMAL, "instance": {"roles": ["transcribe", "gpu"]}})
    assert "instance.roles.1 = 'gpu'" in message and "'scan', 'transcribe', 'import' or 'export'" in message
    assert "lists a role twice" in error_for({**MINIMAL, "instance": {"roles": ["scan", "scan"]}})
    assert "instance.roles" in error_for({**MINIMAL, "instance": {"roles": []}})


def test_a_lease_outlasts_one_label_studio_request_by_a_second() -> None:
    assert parse({**MINIMAL, "labelstudio": {"timeout": 7.5}}).labelstudio.lease_margin == 8.5
