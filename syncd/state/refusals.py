"""What Label Studio refused to register for syncd, per project, and why: the webhook (reviews then arrive by the
export poll only) and the S3 storage that presigns audio (the audio then does not play in Label Studio).

Label Studio refuses both when they point at a loopback or private address while its SSRF protection is on (the
default since 1.23), and either when the token lacks the permission. Neither stops syncd, so the refusal is kept here
(cursor rows named ``refused:<what>:<project>``) until a later registration succeeds: `syncd status` in another
process, `syncd check`, /healthz ("degraded") and ``syncd_labelstudio_refused`` read it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

from syncd.state import StateStore

PREFIX = "refused:"
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


def _key(what: str, project: int) -> str:
    return f"{PREFIX}{what}:{project}"


def record(state: StateStore, what: str, project: int, target: str, reason: str) -> Refusal:
    refusal = Refusal(what, project, target, reason[:500], time.time())
    state.set_cursor(_key(what, project), json.dumps(asdict(refusal)))
    return refusal


def clear(state: StateStore, what: str, project: int) -> None:
    """A registration succeeded: whatever was refused before no longer is."""
    if state.cursor(_key(what, project)):
        state.change_cursor(_key(what, project), lambda _: None)


def all_known(state: StateStore) -> list[Refusal]:
    """Every refusal still standing, by what, then project."""
    found = [Refusal(**json.loads(raw)) for raw in state.cursors(PREFIX).values() if raw]
    return sorted(found, key=lambda r: (r.what, r.project))


def counts(state: StateStore) -> dict[str, int]:
    """what -> projects where it was refused, for ``syncd_labelstudio_refused``; every kind present."""
    found = dict.fromkeys((WEBHOOK, STORAGE), 0)
    for refusal in all_known(state):
        found[refusal.what] = found.get(refusal.what, 0) + 1
    return found
