"""The connection to Label Studio: the token found (or where it was looked for), a token that can never work named as
a config error before any call, and each refusal of the login worded with its exit code."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jwt
import pytest
import requests

from syncd import errors
from syncd.config import LabelStudioSettings
from syncd.errors import ConfigError, ProbeError
from syncd.labelstudio import connection

TOKEN = "f" * 40


def _jwt(**claims: Any) -> str:
    return jwt.encode(claims, "not-the-server-key-but-32-bytes-long", algorithm="HS256")


def _settings(tmp_path: Path, token: str | None = TOKEN) -> LabelStudioSettings:
    path = tmp_path / "token"
    if token is not None:
        path.write_text(token)
    return LabelStudioSettings(api_key_file=str(path))


def test_a_missing_token_says_where_it_was_looked_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"no API token found in file .*token"):
        connection.token(_settings(tmp_path, token=""))
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="environment variable LABEL_STUDIO_API_KEY"):
        connection.token(LabelStudioSettings())
    assert connection.token(_settings(tmp_path)) == TOKEN


def test_a_token_that_can_never_work_is_a_config_error_naming_its_key(tmp_path: Path) -> None:
    expired = _jwt(token_type="refresh", exp=int(time.time()) - 60)
    with pytest.raises(ConfigError, match=r"labelstudio.api_key_file \(.*\): the Label Studio token expired at"):
        connection.client(_settings(tmp_path, expired))
    client = connection.client(_settings(tmp_path))
    assert client.token_kind == "legacy" and client.token == TOKEN


class _RefusedError(Exception):
    def __init__(self, status: int, body: Any = "") -> None:
        super().__init__(f"HTTP {status}")
        self.status_code, self.body = status, body


def _login(tmp_path: Path, error: Exception | None, token: str = TOKEN) -> str:
    def whoami() -> str:
        if error is not None:
            raise error
        return "syncd@example.com"

    return connection.login(_settings(tmp_path), SimpleNamespace(whoami=whoami, token=token))  # type: ignore[arg-type]


def test_login_names_the_user(tmp_path: Path) -> None:
    assert _login(tmp_path, None) == "syncd@example.com"


def test_a_revoked_token_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ProbeError, match="the Label Studio token was revoked") as refused:
        _login(tmp_path, _RefusedError(401, '{"detail": "Token is blacklisted"}'))
    assert refused.value.code == errors.CONFIG


def test_a_plain_refusal_quotes_label_studio_and_names_a_clock_ahead(tmp_path: Path) -> None:
    ahead = _jwt(token_type="refresh", iat=int(time.time()) + 600, exp=int(time.time()) + 9999)
    with pytest.raises(ProbeError, match=r"refused the token \(HTTP 401: Token is invalid\); the token was") as refused:
        _login(tmp_path, _RefusedError(401, {"detail": "Token is invalid"}), token=ahead)
    assert refused.value.code == errors.NOPERM


def test_another_failure_is_classified(tmp_path: Path) -> None:
    with pytest.raises(ProbeError, match="Label Studio: ConnectionError") as failed:
        _login(tmp_path, requests.ConnectionError("refused"))
    assert failed.value.code == errors.UNAVAILABLE
