"""Review triage: which transcribed recordings a person reviews.

A recording whose ASR confidence is at or above ``review.auto_accept_above`` is auto-accepted: export writes its
transcript beside the audio without a task. A share of those (``review.audit_rate``) goes to review all the same:
the audit sample, whose word error rate is what auto-accepting costs (``syncd report``). The draw hashes the
recording's ``syncd_id``, so every instance and every retry routes a recording the same way.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Protocol


class Mode(StrEnum):
    REVIEW = "review"
    """Below the threshold (or auto-accept off): a person reviews it."""
    AUDIT = "audit"
    """Above the threshold but drawn for the audit sample: a person reviews it."""
    AUTO = "auto"
    """Above the threshold: written without review."""


class Policy(Protocol):
    """What routing reads of the ``[review]`` settings."""

    @property
    def auto_accept_above(self) -> float: ...

    @property
    def audit_rate(self) -> float: ...


def audit_draw(sid: str) -> float:
    """A number in [0, 1) fixed per recording and spread evenly over recordings."""
    digest = hashlib.sha256(f"audit\0{sid}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def route(settings: Policy, sid: str, confidence: float | None) -> Mode:
    threshold = settings.auto_accept_above
    if not threshold or confidence is None or confidence < threshold:
        return Mode.REVIEW
    return Mode.AUDIT if audit_draw(sid) < settings.audit_rate else Mode.AUTO
