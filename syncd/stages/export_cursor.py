"""The export cursor: a keyset position over Label Studio's changed tasks, and the overlap window behind it.

A task saved just before the newest one read may commit after the read, so while the cursor is unsettled each read
starts ``OVERLAP`` before the position. Re-reading that window in full costs Label Studio ~1.5 ms a task, seconds
after a bulk change. So the cursor keeps a digest (count and hash sum) of the (id, updated_at) it read there, when one
read covered the whole window: the next look lists the window's ids and times alone (~0.3 ms a task) and reads the
tasks in full only when they differ: a task committed late, or one read there has changed since (it is read again
past the position anyway; the window is then read in full, as without a digest).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import timedelta

from syncd.labelstudio import ls_datetime, ls_time

OVERLAP = timedelta(seconds=5)
"""How long after the cursor moved a late commit may still land behind it; the cursor settles once a read has
started this long after it moved (then an idle cycle reads nothing twice)."""

Position = tuple[str, int]
"""(task updated_at as an ls_time string, task id): where the export cursor stands."""

Digest = tuple[int, int]
"""(count, sum of 64-bit hashes) of a set of (id, updated_at): equal sets give equal digests."""


def digest(positions: Iterable[Position]) -> Digest:
    count, total = 0, 0
    for updated, task_id in positions:
        count += 1
        total += int.from_bytes(hashlib.blake2b(f"{task_id} {updated}".encode(), digest_size=8).digest())
    return count, total % (1 << 64)


@dataclass(frozen=True)
class Cursor:
    """The newest (task ``updated_at``, id) read, when it was first read (local clock), whether it has settled, and
    the digest of the overlap window behind it (None when no single read covered it).

    The id makes it a keyset position: Label Studio stamps one ``updated_at`` on every task a Data Manager action
    touches, and a cursor on the time alone re-read such a group forever once it filled a page."""

    at: str
    seen: float = 0.0
    settled: bool = True
    id: int = 0
    window: Digest | None = None

    @classmethod
    def load(cls, raw: str | None) -> Cursor:
        if not raw:
            return cls(ls_time(0))
        if not raw.startswith("{"):
            return cls(raw, settled=False)
        doc = json.loads(raw)
        window = (int(doc["window"][0]), int(doc["window"][1])) if doc.get("window") else None
        return cls(str(doc["at"]), float(doc["seen"]), bool(doc["settled"]), int(doc.get("id", 0)), window)

    def dump(self) -> str:
        doc = {"at": self.at, "id": self.id, "seen": self.seen, "settled": self.settled}
        return json.dumps(doc | ({"window": list(self.window)} if self.window else {}))

    @property
    def position(self) -> Position:
        return self.at, self.id

    @property
    def window_start(self) -> Position:
        return ls_time(ls_datetime(self.at) - OVERLAP), 0

    @property
    def since(self) -> Position:
        """Where a full read starts: the position itself, or the overlap window before it while unsettled."""
        return self.position if self.settled else self.window_start

    def in_window(self, position: Position) -> bool:
        return self.window_start <= position <= self.position

    def after_read(self, newest: Position, started: float, finished: float) -> Cursor:
        if newest > self.position:
            return Cursor(newest[0], finished, settled=False, id=newest[1])
        if not self.settled and started - self.seen >= OVERLAP.total_seconds():
            return replace(self, settled=True, window=None)
        return self


@dataclass
class Coverage:
    """What one export run knows of the tasks from ``start`` on: every (id, updated_at) it listed or read there. A
    digest of the moved cursor's window is kept only if that window lies wholly inside what was covered."""

    start: Position
    tasks: dict[int, str]

    def add(self, task_id: int, updated: str) -> None:
        self.tasks[task_id] = updated

    def window_of(self, cursor: Cursor) -> Digest | None:
        if cursor.settled or self.start > cursor.window_start:
            return None
        return digest(p for p in ((u, i) for i, u in self.tasks.items()) if cursor.in_window(p))
