"""`syncd retry`: failed recordings and parked exports get a fresh attempt budget and are picked up again."""

from __future__ import annotations

from syncd import errors
from syncd.config import Settings
from syncd.state import StateStore


def retry(settings: Settings) -> int:
    store = StateStore.open(settings.state)
    try:
        count = store.requeue_failed()
        parked = store.requeue_parked()
    finally:
        store.close()
    print(f"re-queued {count} failed recording(s) and {parked} parked export(s)")
    return errors.OK
