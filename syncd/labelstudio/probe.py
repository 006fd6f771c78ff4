"""Is Label Studio reachable, and which release is it? Its unauthenticated /health and /api/version, for `syncd run`,
/healthz and `syncd check`."""

from __future__ import annotations

import re

import requests

from syncd import errors
from syncd.config import Settings
from syncd.errors import ProbeError


def labelstudio_alive(settings: Settings, timeout: float = 3.0) -> None:
    """Label Studio's unauthenticated /health answers 200."""
    try:
        response = requests.get(f"{settings.labelstudio.url}/health", timeout=timeout)
    except requests.RequestException as exc:
        raise ProbeError(f"Label Studio unreachable: {type(exc).__name__}", errors.UNAVAILABLE) from exc
    if response.status_code != 200:
        raise ProbeError(f"Label Studio /health answered HTTP {response.status_code}", errors.UNAVAILABLE)


OLDEST = (1, 17, 0)
NEWEST = (1, 23, 2)
"""The Label Studio releases syncd is tested against (docs/how-to/label-studio.md)."""
SUPPORTED = f"{'.'.join(map(str, OLDEST))} to {'.'.join(map(str, NEWEST))}"


def labelstudio_release(settings: Settings, timeout: float = 5.0) -> str | None:
    """The release Label Studio reports on its unauthenticated /api/version; None when it says none."""
    try:
        response = requests.get(f"{settings.labelstudio.url}/api/version", timeout=timeout)
        release = response.json().get("release") if response.ok else None
    except (requests.RequestException, ValueError, AttributeError):
        return None
    return str(release) if release else None


def support(release: str | None) -> tuple[bool, str]:
    """(supported, what to say about it): a release older than the oldest supported is not; a newer one is, with a
    note that it is untested."""
    if release is None:
        return True, f"release unknown (/api/version said none); supported: {SUPPORTED}"
    numbers = tuple(int(part) for part in re.findall(r"\d+", release)[:3])
    if numbers < OLDEST:
        return False, (
            f"{release} is older than the oldest supported release ({SUPPORTED}): it may lack personal access tokens"
            " and answer syncd's calls differently; upgrade Label Studio"
        )
    if numbers > NEWEST:
        return True, f"{release}, newer than the newest tested ({SUPPORTED}): report anything that differs"
    return True, f"{release} (supported: {SUPPORTED})"
