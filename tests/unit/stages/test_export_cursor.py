"""The export cursor: its keyset position, the overlap window behind it and the digest of that window."""

from __future__ import annotations

import json

from syncd.stages.export_cursor import Coverage, Cursor, digest

AT = "2026-01-01T00:00:05.000000Z"


def test_cursor_keeps_its_id_and_window_and_reads_old_cursors() -> None:
    cursor = Cursor(AT, 5.0, settled=True, id=42)
    assert Cursor.load(cursor.dump()) == cursor
    assert Cursor.load(json.dumps({"at": cursor.at, "seen": 1.0, "settled": True})).id == 0
    assert cursor.since == (cursor.at, 42)
    assert cursor.after_read((cursor.at, 43), 0, 9).position == (cursor.at, 43)
    unsettled = Cursor(AT, 5.0, settled=False, id=42, window=(3, 99))
    assert Cursor.load(unsettled.dump()) == unsettled
    assert unsettled.since == ("2026-01-01T00:00:00.000000Z", 0)


def test_a_window_digest_is_the_set_of_positions_in_any_order() -> None:
    tasks = [("2026-01-01T00:00:01.000000Z", 1), ("2026-01-01T00:00:02.000000Z", 2)]
    assert digest(tasks) == digest(reversed(tasks))
    assert digest(tasks) != digest([tasks[0]])
    assert digest(tasks) != digest([tasks[0], ("2026-01-01T00:00:03.000000Z", 2)])  # the same task, changed since


def test_coverage_digests_only_a_window_it_wholly_covers() -> None:
    cursor = Cursor(AT, 5.0, settled=False, id=7)
    whole = Coverage(("1970-01-01T00:00:00.000000Z", 0), {})
    whole.add(7, AT)
    whole.add(3, "2026-01-01T00:00:01.000000Z")
    whole.add(2, "2025-12-31T23:59:59.000000Z")  # before the window
    assert whole.window_of(cursor) == digest([(AT, 7), ("2026-01-01T00:00:01.000000Z", 3)])
    assert Coverage(("2026-01-01T00:00:04.000000Z", 0), {}).window_of(cursor) is None  # read from inside it
    assert whole.window_of(Cursor(AT, 5.0, settled=True, id=7)) is None
    settles = cursor.after_read(cursor.position, started=5.0 + 5, finished=11.0)
    assert settles.settled and settles.window is None
