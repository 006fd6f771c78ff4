"""Moments (seconds since the epoch) as `syncd status`, `/healthz` and the log name them: UTC, ISO 8601, to the
second. Pure, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload


@overload
def iso(moment: float) -> str: ...
@overload
def iso(moment: None) -> None: ...
@overload
def iso(moment: float | None) -> str | None: ...
def iso(moment: float | None) -> str | None:
    """``1767225600.0`` -> ``"2026-01-01T00:00:00+00:00"``; ``None`` (never) stays ``None``."""
    return None if moment is None else datetime.fromtimestamp(moment, tz=UTC).isoformat(timespec="seconds")
