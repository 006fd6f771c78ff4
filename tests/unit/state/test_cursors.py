"""Cursors survive a reopen of the state."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.domain.recording import Status
from syncd.state import StateStore
from tests.unit.fakes import new_store
from tests.unit.scenarios import s3_object


@pytest.fixture
def state(tmp_path: Path) -> StateStore:
    return new_store(tmp_path, "s.db")


def test_cursor_and_reopen_keeps_state(tmp_path: Path) -> None:
    state = new_store(tmp_path, "s.db")
    state.cursors.set("export:1", "2026-01-02T03:04:05.000000Z")
    [(rec, _)] = state.recordings.add_objects([s3_object("a.mp3")])
    state.close()
    again = new_store(tmp_path, "s.db")
    assert again.cursors.get("export:1") == "2026-01-02T03:04:05.000000Z"
    assert again.cursors.get("export:2") is None
    oldest = again.recordings.oldest_pending()
    assert oldest is not None and (oldest.id, oldest.status) == (rec, Status.DISCOVERED)
