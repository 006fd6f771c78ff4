"""Secrets read from files under $CREDENTIALS_DIRECTORY or from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.config import read_secret
from syncd.errors import ConfigError


def test_secret_from_credentials_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ls-token").write_text("abc123\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    monkeypatch.setenv("SOME_ENV", "from-env")
    assert read_secret("SOME_ENV", "ls-token") == "abc123"
    assert read_secret("SOME_ENV") == "from-env"
    with pytest.raises(ConfigError, match="cannot read secret file"):
        read_secret("SOME_ENV", "missing")
