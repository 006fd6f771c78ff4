"""Vocabulary feedback: words reviewers keep adding that the ASR never produced (names, products, jargon).

Each exported review records the words its reviewer added (in the reviewed text, absent from the ASR text; case
kept, so a name stays a name). A word added in at least ``review.vocabulary_min_reviews`` recordings joins the
vocabulary: the ``review.vocabulary_size`` most frequent are written to ``review.vocabulary_key`` in the first
source's bucket, kept as the Amazon Transcribe custom vocabulary ``transcriber.aws.vocabulary_name`` (when set) that
new jobs use once Transcribe has it ready, and given to faster-whisper as hotwords (when
``transcriber.whisper.hotwords_from_reviews``). Only a change is written; a failure is logged and tried again
RETRY_AFTER seconds later.
"""

from __future__ import annotations

import re
import time

from syncd.domain.formats import normalize_words
from syncd.log import describe_error
from syncd.services import Services
from syncd.state import keys

RETRY_AFTER = 300.0
MIN_LENGTH = 3
_WORD = re.compile(r"^[^\W\d_][^\W\d_'\-]*(?:['\-][^\W\d_]+)*$")
"""Letters, with inner apostrophes or hyphens: what Transcribe accepts as a phrase and whisper as a hotword."""


def added_words(reviewed: str, asr: str) -> set[str]:
    """Words of the reviewed text that the ASR text lacks (compared case-insensitively)."""
    heard = {w.lower() for w in normalize_words(asr)}
    return {w for w in normalize_words(reviewed, keep_case=True) if w.lower() not in heard and _usable(w)}


def _usable(word: str) -> bool:
    return len(word) >= MIN_LENGTH and bool(_WORD.match(word))


def refresh(svc: Services) -> bool:
    """Publish the vocabulary if it changed since the last time; True when it did. The words are counted again only
    after a review changed them (or the settings did), so an idle export run costs two point reads. A failed
    publication (say, no permission to write the file) is tried again RETRY_AFTER seconds later, not after every
    export run."""
    review = svc.settings.review
    changes = svc.state.cursors.get(keys.ADDED_WORDS_CHANGED.name) or 0
    seen = f"{changes}:{review.vocabulary_size}:{review.vocabulary_min_reviews}"
    retry_at = float(svc.state.cursors.get(keys.VOCABULARY_RETRY.name) or 0)
    if (seen == svc.state.cursors.get(keys.VOCABULARY_SEEN.name) and not retry_at) or time.time() < retry_at:
        return False
    top = svc.state.reports.top_added_words(review.vocabulary_size, review.vocabulary_min_reviews)
    words = [w for w, _ in top]
    svc.state.cursors.set(keys.VOCABULARY_SEEN.name, seen)
    if words == svc.state.reports.vocabulary():
        return False
    try:
        _publish(svc, top)
    except Exception as exc:
        svc.state.cursors.set(keys.VOCABULARY_RETRY.name, str(time.time() + RETRY_AFTER))
        error = describe_error(exc)[:300]
        svc.log.error("vocabulary.update_failed", words=len(words), error=error, retry_in_seconds=RETRY_AFTER)
        return False
    svc.state.reports.set_vocabulary(words)
    svc.state.cursors.set(keys.VOCABULARY_RETRY.name, "0")
    svc.log.info("vocabulary.updated", words=len(words), top=words[:10])
    return True


def _publish(svc: Services, top: list[tuple[str, int]]) -> None:
    review = svc.settings.review
    if review.vocabulary_key:
        body = "".join(f"{word}\t{count}\n" for word, count in top).encode()
        svc.storage.write(svc.settings.sources[0].bucket, review.vocabulary_key, body, "txt", {})
    svc.transcriber.publish_vocabulary([w for w, _ in top])
