"""Every name the ``cursors`` table may hold: small named values the stages keep between runs.

A key is a whole name (``vocabulary``) or a prefix that a part follows (``export:`` then the project id). The cursors
table refuses a name registered here under no key (``check``), and the house test fails on a name written in code that
is not registered, or on a key no code uses: a typo or a collision shows in the tests, not at run time, and this list
says what the table holds. Records with fields of their own (twins, outages, refusals) have tables of their own.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Key:
    """``name``: the cursor's name, or its prefix when it ends with ``:``; ``json``: its value is a JSON document."""

    name: str
    what: str
    json: bool = False

    @property
    def prefix(self) -> bool:
        return self.name.endswith(":")

    def of(self, part: object) -> str:
        """The name of one cursor under a prefix key (``EXPORT.of(3)`` is ``export:3``)."""
        if not self.prefix:
            raise ValueError(f"cursor key {self.name!r} is a whole name, not a prefix")
        return f"{self.name}{part}"


class UnregisteredKeyError(KeyError):
    """A cursor name that no key of the registry covers: a typo, or a key to add to ``KEYS``."""


EXPORT = Key(
    "export:", "per project: the export's position in its tasks (the newest update read, settled or not)", True
)
EXPORT_SWEEP = Key("export-sweep:", "per project: when the export last swept the whole project (unix seconds)")
IMPORT_TASKS = Key("import-tasks:", "per project: the highest task id read, and higher ids not settled yet", True)
IMPORT_DOUBT = Key("import-doubt:", "per project: an import whose outcome Label Studio has not confirmed yet", True)
IMPORT_LAST_BATCH = Key("import:last-batch", "when the import last chose a batch (unix seconds), for every instance")
UNCHECKED = Key("import-predictions-unchecked:", "per project: the lowest task id whose prediction is to be checked")
FULL_LISTING = Key("full-listing:", "per bucket/prefix: when the scan last listed the whole source (unix seconds)")
ADDED_WORDS_CHANGED = Key("added-words-changed", "a count of the changes to the words reviews added")
VOCABULARY = Key("vocabulary", "the vocabulary as last published, most frequent first", True)
VOCABULARY_SEEN = Key("vocabulary-seen", "the added-words count and settings the vocabulary was last counted at")
VOCABULARY_RETRY = Key("vocabulary-retry-at", "when to publish the vocabulary again after a failure (unix seconds)")
NEXT_PROJECT = Key("project-next", "a project rollover's intent (title, sequence, the project it follows)", True)

KEYS: tuple[Key, ...] = (
    EXPORT,
    EXPORT_SWEEP,
    IMPORT_TASKS,
    IMPORT_DOUBT,
    IMPORT_LAST_BATCH,
    UNCHECKED,
    FULL_LISTING,
    ADDED_WORDS_CHANGED,
    VOCABULARY,
    VOCABULARY_SEEN,
    VOCABULARY_RETRY,
    NEXT_PROJECT,
)
_WHOLE = {key.name: key for key in KEYS if not key.prefix}
_PREFIXES = tuple(key for key in KEYS if key.prefix)


def registered(name: str) -> Key | None:
    """The key ``name`` is held under: itself, or the prefix it starts with (with a part after it)."""
    found = _WHOLE.get(name)
    if found is None:
        found = next((k for k in _PREFIXES if name.startswith(k.name) and len(name) > len(k.name)), None)
    return found


def check(name: str) -> Key:
    """The key of a cursor name; ``UnregisteredKeyError`` when none covers it."""
    found = registered(name)
    if found is None:
        raise UnregisteredKeyError(f"cursor {name!r} is not registered in syncd.state.keys")
    return found


def check_prefix(prefix: str) -> Key:
    """The prefix key a read of every cursor under ``prefix`` names."""
    found = next((k for k in _PREFIXES if k.name == prefix), None)
    if found is None:
        raise UnregisteredKeyError(f"cursor prefix {prefix!r} is not registered in syncd.state.keys")
    return found
