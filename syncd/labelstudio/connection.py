"""The connection to Label Studio, from its settings alone: the token read from where ``labelstudio.api_key_env`` or
``labelstudio.api_key_file`` says, the client built on it, the login that proves Label Studio accepts it, and each
refusal worded as what is wrong and what to do (a token that can never work is a config error, 78; one refused right
now, 77).
"""

from __future__ import annotations

from syncd import errors
from syncd.config import LabelStudioSettings, read_secret
from syncd.errors import ConfigError, ProbeError, classify
from syncd.labelstudio import auth
from syncd.labelstudio.client import LabelStudioClient
from syncd.log import describe_error


def token(settings: LabelStudioSettings) -> str:
    """The API token; a ConfigError naming where it was looked for when there is none."""
    found = read_secret(settings.api_key_env, settings.api_key_file)
    if not found:
        where = f"environment variable {settings.api_key_env}"
        if settings.api_key_file:
            where = f"file {settings.api_key_file!r}"
        raise ConfigError(
            f"labelstudio: no API token found in {where} (set labelstudio.api_key_env or labelstudio.api_key_file)"
        )
    return found


def client(settings: LabelStudioSettings) -> LabelStudioClient:
    """The Label Studio client, on the token read once; a token that can never work (expired, an access token) is a
    ConfigError naming the key it came from."""
    try:
        return LabelStudioClient(settings, token(settings))
    except auth.TokenError as exc:
        raise ConfigError(f"{auth.where(settings)}: the Label Studio token {exc}") from exc


def login(settings: LabelStudioSettings, labelstudio: LabelStudioClient) -> str:
    """Who the token logs in as; a ProbeError when Label Studio refuses it: CONFIG (78) when the token can never
    work (revoked, a legacy key where legacy tokens are off, not a personal access token), NOPERM (77) otherwise."""
    try:
        return labelstudio.whoami()
    except Exception as exc:
        if getattr(exc, "status_code", None) != 401:
            raise ProbeError(f"Label Studio: {describe_error(exc)}", classify(exc)) from exc
        body = getattr(exc, "body", "") or str(exc)
        reason = auth.refusal_reason(str(body))
        where = auth.where(settings)
        if reason is None:
            words = auth.refusal_words(body)
            said = f": {words}" if words else ""
            ahead = auth.issued_ahead(labelstudio.token)
            raise ProbeError(f"{where}: Label Studio refused the token (HTTP 401{said}){ahead}", errors.NOPERM) from exc
        raise ProbeError(f"{where}: the Label Studio token {reason}", errors.CONFIG) from exc
