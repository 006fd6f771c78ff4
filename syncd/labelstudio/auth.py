"""Label Studio tokens as Label Studio hands them out: personal access tokens (JWT refresh tokens, the default since
1.17) and legacy ``Token`` keys.

label-studio-sdk exchanges a personal access token for short-lived access tokens itself. What it does not do, and
this module does: tell a token that can never work (expired, revoked, an access token pasted instead of a personal
access token, a legacy key on a server with legacy tokens off) from one that is merely refused right now, in words
naming the config key and what to do, and try a refused access token once more with a fresh one before a 401 counts.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt

from syncd.config import LabelStudioSettings
from syncd.domain.moments import iso

LEGACY = "legacy"
PERSONAL = "personal access token"


def sdk_base_url(url: str) -> str:
    """The base URL for label-studio-sdk: with a trailing slash. The SDK builds its refresh URL with
    ``urljoin(base_url, "api/token/refresh/")``, which drops a sub-path written without one (``https://host/ls``
    refreshes at ``https://host/api/token/refresh/``); its other calls join paths by concatenation either way."""
    return url.rstrip("/") + "/"


def token_kind(token: str) -> str:
    """``PERSONAL`` for a JWT refresh token, ``LEGACY`` for anything that is not a JWT; a ``TokenError`` for a JWT
    that can never work (expired, no expiry, an access token)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return LEGACY
    kind = claims.get("token_type")
    if kind != "refresh":
        raise TokenError(
            f"is a JWT {kind or 'without a token type'}, not a personal access token: an access token expires within"
            " minutes. Copy the personal access token itself (Account & Settings, Personal Access Token)"
        )
    expires = claims.get("exp")
    if expires is None:
        raise TokenError("is a JWT without an expiry, which Label Studio never issues: create a new one")
    if datetime.fromtimestamp(expires, UTC) <= datetime.now(UTC):
        moment = iso(expires)
        raise TokenError(f"expired at {moment}: create a new personal access token (Account & Settings)")
    return PERSONAL


class TokenError(Exception):
    """A token that can never work: a configuration problem (exit 78), phrased as what is wrong and what to do."""


_REFUSALS = (
    ("blacklisted", "was revoked in Label Studio: create a new personal access token (Account & Settings)"),
    ("wrong type", "is not a personal access token: copy the personal access token itself (Account & Settings)"),
    ("expired", "has expired: create a new personal access token (Account & Settings)"),
    (
        "legacy token authentication has been disabled",
        "is a legacy token and this Label Studio has legacy tokens off (the default since 1.17): create a personal"
        " access token (Account & Settings), or turn legacy tokens on (Organization, API Tokens Settings)",
    ),
)


def refusal_reason(body: str) -> str | None:
    """What a 401 body from Label Studio says is permanently wrong with the token, or None for a plain refusal."""
    text = body.lower()
    return next((reason for marker, reason in _REFUSALS if marker in text), None)


def issued_ahead(token: str, now: float | None = None) -> str:
    """Words for a personal access token issued later than this machine's clock reads (empty otherwise): Label
    Studio refuses a token issued in its own future as "Token is invalid", so clocks apart look like a bad token."""
    try:
        issued = float(jwt.decode(token, options={"verify_signature": False}).get("iat") or 0)
    except (jwt.InvalidTokenError, TypeError, ValueError):
        return ""
    ahead = issued - (time.time() if now is None else now)
    if ahead < 1:
        return ""
    moment = iso(issued)
    return (
        f"; the token was issued at {moment}, {ahead:.0f} s later than this machine's clock reads: Label Studio"
        " refuses a token issued in its future, so check that its clock and the issuing server's are right"
    )


_JWT = re.compile(r"eyJ[\w-]*\.[\w-]*\.?[\w-]*")


def refusal_words(body: object, limit: int = 200) -> str:
    """Label Studio's own words for a refusal (its ``detail`` and each token check's ``message``), for an operator
    to read beside ours: "Token is invalid" (signed with another key, or issued later than this machine's clock
    reads) is not "Authentication credentials were not provided". Anything shaped like a token is blanked."""
    if isinstance(body, str):
        with contextlib.suppress(ValueError):
            body = json.loads(body)
    if isinstance(body, dict):
        messages = [m.get("message") for m in body.get("messages") or [] if isinstance(m, dict)]
        words = "; ".join(dict.fromkeys(str(w) for w in [body.get("detail"), *messages] if w))
    else:
        words = str(body or "")
    return _JWT.sub("<token>", words)[:limit]


def where(settings: LabelStudioSettings) -> str:
    """The config key the token came from, as the operator would look for it."""
    if settings.api_key_file:
        return f"labelstudio.api_key_file ({settings.api_key_file})"
    return f"labelstudio.api_key_env (${settings.api_key_env})"


class RefreshOn401(httpx.BaseTransport):
    """Transport under the SDK's client: a request refused with 401 while a personal access token is in use is sent
    once more with a freshly exchanged access token (the one held may have been revoked, or the server's clock run
    ahead of ours); the second answer stands. The refresh request itself is never retried."""

    def __init__(self, tokens: Any = None, inner: httpx.BaseTransport | None = None) -> None:
        self.tokens = tokens
        self.inner = inner or httpx.HTTPTransport()
        self.refused = threading.Event()
        """Set while Label Studio refuses the token even after a refresh; cleared by the next accepted request."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if response.status_code != 401 or self.tokens is None or self.tokens._use_legacy_token:
            self._answered(response)
            return response
        if request.url.path.endswith("/api/token/refresh/"):
            self._answered(response)
            return response
        response.read()
        response.close()
        self.tokens._access_token = None
        request.headers["Authorization"] = f"Bearer {self.tokens.api_key}"
        retried = self.inner.handle_request(request)
        self._answered(retried)
        return retried

    def _answered(self, response: httpx.Response) -> None:
        if response.status_code == 401:
            self.refused.set()
        elif response.status_code < 400:
            self.refused.clear()

    def close(self) -> None:
        self.inner.close()
