"""The supported Label Studio range: older than the oldest is said plainly, newer is allowed with a note."""

from __future__ import annotations

from syncd.labelstudio.probe import SUPPORTED, support


def test_support_of_each_release() -> None:
    assert support("1.17.0") == (True, f"1.17.0 (supported: {SUPPORTED})")
    assert support("1.23.2")[0] and support("1.20.0")[0]
    ok, about = support("1.16.0")
    assert not ok and "older than the oldest supported release (1.17.0 to 1.23.2)" in about
    ok, about = support("1.24.0.dev0")
    assert ok and "newer than the newest tested" in about
    assert support(None)[0]
