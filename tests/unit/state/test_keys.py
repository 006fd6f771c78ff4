"""The cursor key registry: every name the cursors table holds is covered by exactly one key, and the table refuses a
name none covers."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.state import keys
from tests.unit.fakes import new_store


def test_every_key_is_unique_and_no_name_falls_under_two_keys() -> None:
    names = [k.name for k in keys.KEYS]
    assert len(names) == len(set(names))
    for key in keys.KEYS:
        assert keys.registered(key.of(7) if key.prefix else key.name) is key, key.name
        assert all(not key.name.startswith(other.name) for other in keys.KEYS if other.prefix and other is not key)


def test_a_name_is_held_under_its_whole_key_or_its_prefix() -> None:
    assert keys.check("vocabulary") is keys.VOCABULARY
    assert keys.check(keys.EXPORT.of(3)) is keys.EXPORT and keys.EXPORT.of(3) == "export:3"
    assert keys.check(keys.FULL_LISTING.of("b/calls/")) is keys.FULL_LISTING
    assert keys.check_prefix("import-doubt:") is keys.IMPORT_DOUBT
    for unknown in ("export:", "vocabulary-typo", "task-twins", "dependency:s3"):
        assert keys.registered(unknown) is None
        with pytest.raises(keys.UnregisteredKeyError, match=repr(unknown)):
            keys.check(unknown)
    with pytest.raises(keys.UnregisteredKeyError):
        keys.check_prefix("export")
    with pytest.raises(ValueError, match="whole name"):
        keys.VOCABULARY.of(1)


def test_the_cursors_table_refuses_an_unregistered_name_and_writes_nothing(tmp_path: Path) -> None:
    state = new_store(tmp_path)
    typo = "typo:1"  # a name, not a literal: the house test fails on unregistered literals
    for call in (
        lambda: state.cursors.set(typo, "x"),
        lambda: state.cursors.get(typo),
        lambda: state.cursors.change(typo, lambda _: "x"),
        lambda: state.cursors.prefixed(typo[:-1]),
        lambda: state.cursors.bump(typo),
    ):
        with pytest.raises(keys.UnregisteredKeyError):
            call()
    assert state.db.scalar("SELECT count(*) FROM cursors") == 0
