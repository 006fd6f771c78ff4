"""Is Label Studio reachable? Its unauthenticated /health, for `syncd run`, /healthz and `syncd check`."""

from __future__ import annotations

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
