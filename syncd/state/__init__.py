"""The state store: a cache of what S3 and Label Studio hold, shared by the stages (and by many instances)."""

from syncd.state import keys, legacy, migrate
from syncd.state.store import StateStore

__all__ = ["StateStore", "keys", "legacy", "migrate"]
