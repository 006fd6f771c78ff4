"""What can go wrong, as the operator and systemd see it: one exit code per failure class (sysexits.h numbers, so
systemd and shells can tell them apart), the errors that carry one, and ``classify``, which maps any error a client
raises to the class it stands for (six stages and the daemon decide retry-or-fail by it)."""

from __future__ import annotations

import re

import requests
from botocore.exceptions import BotoCoreError, ClientError
from sqlalchemy.exc import DBAPIError, OperationalError

OK = 0
CHECK_FAILED = 1  # `syncd check` found a problem; `syncd once` finished with a failed stage
USAGE = 2  # bad command line (argparse)
UNAVAILABLE = 69  # Label Studio or S3 unreachable at start
SOFTWARE = 70  # a bug: unexpected internal error
NOPERM = 77  # credentials rejected (Label Studio token, S3 keys)
CONFIG = 78  # invalid configuration or missing secret; systemd should not restart on this

DOC = {
    OK: "success",
    CHECK_FAILED: "a check failed, or a cycle finished with a failed stage",
    USAGE: "bad command line",
    UNAVAILABLE: "Label Studio or S3 unreachable",
    SOFTWARE: "internal error (a bug; please report it)",
    NOPERM: "credentials rejected by Label Studio or S3",
    CONFIG: "invalid configuration or missing secret, a store without conditional writes, or a Label Studio token"
    " that can never work (expired, revoked, an access token, a legacy token where legacy tokens are off); systemd"
    " does not restart on it",
}


class ConfigError(Exception):
    """A configuration problem, phrased for the operator: key, bad value, what is allowed."""


_DENIED_S3 = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "401", "Forbidden"}


class ProbeError(Exception):
    """A failed probe, with the exit code it maps to (69 unreachable, 77 credentials rejected, 1 otherwise)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def classify(exc: BaseException) -> int:
    """The exit code an error stands for: credentials rejected, service unreachable, or a plain failure."""
    status = getattr(exc, "status_code", None)
    if status in (401, 403):
        return NOPERM
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        return NOPERM if code in _DENIED_S3 else CHECK_FAILED
    if isinstance(exc, BotoCoreError | requests.ConnectionError | requests.Timeout | ConnectionError | TimeoutError):
        return UNAVAILABLE
    if isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated):
        return UNAVAILABLE  # the state database (PostgreSQL) cannot be reached
    if type(exc).__module__.startswith("httpx") or "Connect" in type(exc).__name__:
        return UNAVAILABLE
    if type(exc).__module__.startswith("obstore"):
        return _obstore_code(exc)
    if isinstance(status, int) and status >= 500:
        return UNAVAILABLE
    return CHECK_FAILED


_OBSTORE_UNREACHABLE = ("error sending request", "connection", "timed out", "timeout", "dns error")
_OBSTORE_5XX = re.compile(r"\b5\d\d\b")


def _obstore_code(exc: BaseException) -> int:
    """obstore (the output writes) reports a store it cannot reach, or one answering 5xx after its own retries, as a
    GenericError whose message says so: an outage like boto3's connection errors, never the recording's fault."""
    name = type(exc).__name__
    if name in ("PermissionDeniedError", "UnauthenticatedError"):
        return NOPERM
    text = str(exc).lower()
    if name == "GenericError" and (any(m in text for m in _OBSTORE_UNREACHABLE) or _OBSTORE_5XX.search(text)):
        return UNAVAILABLE
    return CHECK_FAILED
