"""The state store: a cache of what S3 and Label Studio hold, shared by the stages (and by many instances)."""

from syncd.state import legacy, migrate
from syncd.state.cursors import ADDED_WORDS_CHANGED
from syncd.state.store import StateStore

__all__ = ["ADDED_WORDS_CHANGED", "StateStore", "legacy", "migrate"]
