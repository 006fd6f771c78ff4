"""What Label Studio refused to register for syncd, per project, and why: the webhook (reviews then arrive by the
export poll only) and the S3 storage that presigns audio (the audio then does not play in Label Studio).

Label Studio refuses both when they point at a loopback or private address while its SSRF protection is on (the
default in 1.23.2), and either when the token lacks the permission. Neither stops syncd, so the refusal is kept here
(the ``refusals`` table, a row per what and project) until a later registration succeeds: `syncd status` in another
process, `syncd check`, /healthz ("degraded") and ``syncd_labelstudio_refused`` read it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from syncd.state.db import Database

WEBHOOK = "webhook"
STORAGE = "storage"

CONSEQUENCE = {
    WEBHOOK: "reviews reach S3 by the export poll only (every schedule.export_interval), not at once",
    STORAGE: "tasks import, but their audio does not play in Label Studio",
}
REMEDY = (
    "Label Studio refuses loopback and private addresses while SSRF protection is on: give it an address it accepts,"
    " or start it with USE_DEFAULT_BANNED_SUBNETS=false (or SSRF_PROTECTION_ENABLED=false), then reload syncd"
)


@dataclass(frozen=True)
class Refusal:
    what: str
    project: int
    target: str  # the webhook URL or the bucket
    reason: str
    at: float  # unix time

    @property
    def consequence(self) -> str:
        return CONSEQUENCE.get(self.what, "")


class Refusals:
    """Refusals still standing (``StateStore.refusals``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, what: str, project: int, target: str, reason: str) -> Refusal:
        refusal = Refusal(what, project, target, reason[:500], time.time())
        with self.db.tx() as db:
            db.execute(
                "INSERT INTO refusals (what, project, target, reason, at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (what, project) DO UPDATE SET target = excluded.target, reason = excluded.reason,"
                " at = excluded.at",
                (refusal.what, refusal.project, refusal.target, refusal.reason, refusal.at),
            )
        return refusal

    def clear(self, what: str, project: int) -> None:
        """A registration succeeded: whatever was refused before no longer is (a read when nothing was, so a
        registration that always succeeds writes nothing)."""
        where = "WHERE what = ? AND project = ?"
        if self.db.read_one(f"SELECT 1 FROM refusals {where}", (what, project)):
            with self.db.tx() as db:
                db.execute(f"DELETE FROM refusals {where}", (what, project))

    def all_known(self) -> list[Refusal]:
        """Every refusal still standing, by what, then project."""
        rows = self.db.read("SELECT what, project, target, reason, at FROM refusals ORDER BY what, project")
        return [Refusal(r["what"], int(r["project"]), r["target"], r["reason"], float(r["at"])) for r in rows]

    def counts(self) -> dict[str, int]:
        """what -> projects where it was refused, for ``syncd_labelstudio_refused``; every kind present."""
        found = dict.fromkeys((WEBHOOK, STORAGE), 0)
        for refusal in self.all_known():
            found[refusal.what] = found.get(refusal.what, 0) + 1
        return found
