"""Building the services: a missing Label Studio token is a config error that says where it was looked for."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd import cli, errors


def test_missing_token_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    path = tmp_path / "c.toml"
    path.write_text(f'[[sources]]\nbucket = "b"\n[state]\npath = "{tmp_path / "s.db"}"\n')
    assert cli.main(["once", "-c", str(path)]) == errors.CONFIG
    assert "LABEL_STUDIO_API_KEY" in capsys.readouterr().err
