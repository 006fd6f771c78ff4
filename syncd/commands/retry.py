"""`syncd retry`: failed recordings and parked exports get a fresh attempt budget and are picked up again, and the
services that are down are tried again at the stages' next run instead of after their back-off."""

from __future__ import annotations

from syncd import errors
from syncd.config import Settings
from syncd.state import StateStore


def retry(settings: Settings) -> int:
    store = StateStore.open(settings.state)
    try:
        count = store.recordings.requeue_failed()
        parked = store.export_queue.requeue_parked()
        down = store.outages.retry_now()
    finally:
        store.close()
    print(f"re-queued {count} failed recording(s) and {parked} parked export(s); {down} service(s) down tried again")
    return errors.OK
