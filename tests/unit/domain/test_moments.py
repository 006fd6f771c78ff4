from __future__ import annotations

from syncd.domain.moments import iso


def test_a_moment_is_named_in_utc_to_the_second() -> None:
    assert iso(1767225600.75) == "2026-01-01T00:00:00+00:00"


def test_never_stays_none() -> None:
    assert iso(None) is None


def test_the_epoch_is_a_moment_like_any_other() -> None:
    assert iso(0) == "1970-01-01T00:00:00+00:00"
