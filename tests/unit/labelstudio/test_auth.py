"""Tokens: a personal access token that can never work is named as such before any call; a sub-path URL keeps its
path in the SDK's refresh URL; a 401 is tried once more with a fresh access token."""

from __future__ import annotations

import time
import urllib.parse
from typing import Any

import httpx
import jwt
import pytest

from syncd.config import LabelStudioSettings
from syncd.labelstudio import auth


def _jwt(**claims: Any) -> str:
    return jwt.encode(claims, "not-the-server-key-but-32-bytes-long", algorithm="HS256")


def test_token_kinds() -> None:
    assert auth.token_kind("0123456789abcdef" * 2) == auth.LEGACY
    assert auth.token_kind(_jwt(token_type="refresh", exp=time.time() + 3600)) == auth.PERSONAL
    with pytest.raises(auth.TokenError, match="expired at"):
        auth.token_kind(_jwt(token_type="refresh", exp=time.time() - 10))
    with pytest.raises(auth.TokenError, match="JWT access, not a personal access token"):
        auth.token_kind(_jwt(token_type="access", exp=time.time() + 300))
    with pytest.raises(auth.TokenError, match="without an expiry"):
        auth.token_kind(_jwt(token_type="refresh"))


def test_refusal_reasons_as_label_studio_words_them() -> None:
    assert "revoked" in (auth.refusal_reason('{"detail":"Token is blacklisted"}') or "")
    assert "not a personal access token" in (auth.refusal_reason('{"detail":"Token has wrong type"}') or "")
    legacy = "Authentication token no longer valid: legacy token authentication has been disabled for this organization"
    assert "legacy tokens off" in (auth.refusal_reason(legacy) or "")
    assert auth.refusal_reason('{"detail":"Invalid token."}') is None


def test_refusal_words_are_label_studios_own_without_any_token() -> None:
    access = _jwt(token_type="access", exp=time.time() + 300)
    body = {
        "detail": "Given token not valid for any token type",
        "code": "token_not_valid",
        "messages": [{"token_class": "AccessToken", "message": "Token is invalid"}],
    }
    assert auth.refusal_words(body) == "Given token not valid for any token type; Token is invalid"
    assert auth.refusal_words('{"detail":"Authentication credentials were not provided."}') == (
        "Authentication credentials were not provided."
    )
    assert auth.refusal_words(f"refused {access} here") == "refused <token> here"
    assert auth.refusal_words({"detail": access}) == "<token>"
    assert auth.refusal_words("") == ""


def test_where_names_the_key() -> None:
    assert auth.where(LabelStudioSettings()) == "labelstudio.api_key_env ($LABEL_STUDIO_API_KEY)"
    assert auth.where(LabelStudioSettings(api_key_file="ls.token")) == "labelstudio.api_key_file (ls.token)"


def test_the_refresh_url_keeps_a_sub_path() -> None:
    url = LabelStudioSettings(url="https://host/ls").url
    assert urllib.parse.urljoin(url, "api/token/refresh/") == "https://host/api/token/refresh/"  # the SDK's bug
    assert urllib.parse.urljoin(auth.sdk_base_url(url), "api/token/refresh/") == "https://host/ls/api/token/refresh/"
    assert auth.sdk_base_url("https://host/ls/") == "https://host/ls/"


class Tokens:
    """The SDK's token holder: a new access token on each refresh."""

    _use_legacy_token = False

    def __init__(self) -> None:
        self._access_token: str | None = "old"
        self.refreshes = 0

    @property
    def api_key(self) -> str:
        if self._access_token is None:
            self.refreshes += 1
            self._access_token = f"new{self.refreshes}"
        return self._access_token


def _client(accepted: set[str], tokens: Tokens) -> tuple[httpx.Client, auth.RefreshOn401, list[str]]:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        bearer = request.headers["Authorization"].removeprefix("Bearer ")
        seen.append(bearer)
        return httpx.Response(200 if bearer in accepted else 401, json={"detail": "Token is invalid"})

    transport = auth.RefreshOn401(tokens, httpx.MockTransport(answer))
    return httpx.Client(transport=transport), transport, seen


def test_a_401_is_tried_once_more_with_a_fresh_access_token() -> None:
    tokens = Tokens()
    client, transport, seen = _client({"new1"}, tokens)
    response = client.get("http://ls/api/projects/", headers={"Authorization": "Bearer old"})
    assert response.status_code == 200 and seen == ["old", "new1"] and not transport.refused.is_set()


def test_a_second_401_stands_and_marks_the_token_refused() -> None:
    tokens = Tokens()
    client, transport, seen = _client(set(), tokens)
    response = client.get("http://ls/api/projects/", headers={"Authorization": "Bearer old"})
    assert response.status_code == 401 and seen == ["old", "new1"] and transport.refused.is_set()
    refresh = client.post("http://ls/api/token/refresh/", headers={"Authorization": "Bearer x"})
    assert refresh.status_code == 401 and seen[-1] == "x" and tokens.refreshes == 1  # never retried


def test_a_token_issued_ahead_of_this_clock_is_named() -> None:
    now = float(int(time.time()))
    ahead = auth.issued_ahead(_jwt(token_type="refresh", iat=int(now) + 600, exp=now + 9999), now=now)
    assert "600 s later than this machine's clock reads" in ahead and "check that its clock" in ahead
    assert auth.issued_ahead(_jwt(token_type="refresh", iat=int(now), exp=now + 9999), now=now) == ""
    assert auth.issued_ahead("f" * 40) == ""
