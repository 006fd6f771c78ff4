"""Recording identity and the status machine: syncd_id pinned per version; every status has its transitions."""

from __future__ import annotations

from syncd.domain.recording import TRANSITIONS, Status, sources_of, syncd_id


def test_syncd_id_is_pinned_and_version_specific() -> None:
    """Task data carries this id: changing the derivation would orphan every existing task."""
    assert syncd_id("b", "calls/a.mp3", "e1") == "e8a761b75f00237f4c253dcb"
    assert syncd_id("b", "calls/a.mp3", "e2") != syncd_id("b", "calls/a.mp3", "e1")
    assert syncd_id("b", "calls/a.mp3x", "e1") != syncd_id("b", "calls/a.mp3", "x\0e1")


def test_transition_table_covers_every_status() -> None:
    assert set(TRANSITIONS) == set(Status)
    assert Status.SUPERSEDED in sources_of(Status.DISCOVERED)  # a reverted upload starts over
    assert sources_of(Status.SKIPPED) == frozenset()  # only the scan records a skip, on insert
