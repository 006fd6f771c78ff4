"""The twins table: groups noted when found, stored as repairs leave them, gone once resolved, counted by whether more
than one of their tasks holds a review."""

from __future__ import annotations

from pathlib import Path

from tests.unit.fakes import new_store


def test_a_noted_group_is_due_and_a_repair_keeps_or_resolves_it(tmp_path: Path) -> None:
    state = new_store(tmp_path)
    state.twins.note({"s1": [9, 4], "s2": [5, 6]})
    assert state.twins.all() == {
        "s1": {"tasks": [4, 9], "reviewed": [], "checked": 0.0},
        "s2": {"tasks": [5, 6], "reviewed": [], "checked": 0.0},
    }
    state.twins.store({"s1": {"tasks": [4, 9], "reviewed": [4, 9], "key": "calls/a.wav", "checked": 12.5}, "s2": None})
    assert state.twins.all() == {"s1": {"tasks": [4, 9], "reviewed": [4, 9], "key": "calls/a.wav", "checked": 12.5}}
    assert state.twins.counts() == {"reviewed": 1, "unreviewed": 0}
    state.twins.note({"s1": [4, 9, 11]})  # seen again with a third task: due again, its key kept
    assert state.twins.all() == {"s1": {"tasks": [4, 9, 11], "reviewed": [], "key": "calls/a.wav", "checked": 0.0}}
    assert state.twins.counts() == {"reviewed": 0, "unreviewed": 1}
    state.twins.store({"s1": None})
    assert state.twins.all() == {} and state.twins.counts() == {"reviewed": 0, "unreviewed": 0}
