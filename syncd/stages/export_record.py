"""Export, last step: what was written is recorded in the state (the recording's review version, its word error
rate, the words the reviewer added) and logged; a review unit's review is kept on its recording's clock to be
stitched."""

from __future__ import annotations

import json
import time
from typing import Any

from syncd.domain.formats import Review
from syncd.domain.recording import Recording, Status
from syncd.domain.transcript import Segment
from syncd.domain.units import shift
from syncd.labelstudio import ls_datetime
from syncd.s3.outputs import Export, Written
from syncd.services import Services
from syncd.stages import export_vocabulary


class Held:
    """Log lines held until the transaction recording what they say commits (``flush``): a holder killed or fenced
    before its commit logs nothing it did not record, so each review is logged (and counted) once."""

    def __init__(self, log: Any) -> None:
        self.log = log
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def info(self, event: str, **fields: Any) -> None:
        self.lines.append(("info", event, fields))

    def debug(self, event: str, **fields: Any) -> None:
        self.lines.append(("debug", event, fields))

    def flush(self) -> None:
        for level, event, fields in self.lines:
            getattr(self.log, level)(event, **fields)
        self.lines.clear()


def record(svc: Services, export: Export, done: Written, log: Any = None) -> None:
    """Record what was written in the state and log it (on ``log``, a ``Held`` inside a batch, else ``svc.log``)."""
    log = svc.log if log is None else log
    rec, review = export.rec, export.review
    if done.audio_etag is not None:
        log.info(
            "annotation.stale_audio",
            task=review.task,
            recording=rec.id,
            annotation=review.annotation,
            bucket=rec.bucket,
            key=rec.key,
            etag=rec.etag,
            current_etag=done.audio_etag or None,
        )
        return
    errors, words = review.word_errors
    fields: dict[str, Any] = {
        "annotation_id": review.annotation,
        "annotation_updated_at": export.version[0],
        "exported_at": time.time(),
        "task_id": review.task,
        "annotator": review.annotator,
        "submitted_at": _epoch(review.created_at),
        "word_errors": errors,
        "reference_words": words,
    }
    ids = {"recording": rec.id, "task": review.task, "annotation": review.annotation, "bucket": rec.bucket}
    if rec.parent_id is not None:
        _record_unit(svc, export, fields, ids, log)
        return
    fields["review"] = unit_review(list(review.segments), rec)  # what `syncd report` counts per segment
    if rec.status in (Status.IMPORTED, Status.EXPORTED):
        svc.state.recordings.move(rec.id, rec.status, Status.EXPORTED, **fields)
    else:
        svc.state.recordings.update(rec.id, **fields)
    _note_added_words(svc, rec, review)
    # Outputs of this very review already there while the state had not recorded it: written by a holder that was
    # cut off (killed, or frozen and fenced) before recording. This is the review's one record: logged and counted.
    first = (rec.annotation_id, rec.annotation_updated_at) != (review.annotation, export.version[0])
    formats = done.formats or (done.current if first else [])
    if done.kept_newer and not formats:
        log.info("annotation.superseded", key=rec.key, reason="outputs hold a newer review", **ids)
        return
    if not formats:
        log.debug("annotation.already_exported", key=rec.key, **ids)
        return
    log.info(
        "annotation.exported",
        key=rec.key,
        formats=sorted(formats),
        kept_newer=sorted(done.kept_newer),
        annotator=review.annotator,
        word_error_rate=review.word_error_rate,
        review=rec.review_mode or "review",
        model=review.asr.model,
        language=review.asr.language or "",
        re_export=rec.annotation_id is not None,
        seconds=done.seconds,
        **ids,
    )


def _note_added_words(svc: Services, rec: Recording, review: Review) -> None:
    """The words this review added (the vocabulary counts them). A first review that added none writes nothing: most
    reviews add no word, and the state write would cost a transaction per exported review."""
    added = export_vocabulary.added_words(review.text, review.asr.text)
    if added or rec.annotation_id is not None:
        svc.state.reports.set_added_words(rec.id, review.project, added)


def _record_unit(svc: Services, export: Export, fields: dict[str, Any], ids: dict[str, Any], log: Any) -> None:
    """A review unit's review: kept in the state on its recording's clock, which is marked to be stitched."""
    rec, review = export.rec, export.review
    kept = unit_review(list(review.segments), rec)
    if rec.status in (Status.IMPORTED, Status.EXPORTED):
        svc.state.recordings.store_unit_review(rec, rec.status, kept, **fields)
    else:
        svc.state.recordings.update(rec.id, review=kept, **fields)
    _note_added_words(svc, rec, review)
    log.info(
        "unit.reviewed",
        key=rec.key,
        of=rec.parent_id,
        annotator=review.annotator,
        word_error_rate=review.word_error_rate,
        re_export=rec.annotation_id is not None,
        **ids,
    )


def unit_review(segments: list[Segment], unit: Recording) -> str:
    """Reviewed segments as the state keeps them: a unit's moved to its recording's clock (stitched from there), a
    whole recording's as they are (``syncd report`` reads both per segment)."""
    start = unit.unit_start or 0.0
    return json.dumps([_segment_fields(shift(s, start)) for s in segments])


def _segment_fields(seg: Segment) -> dict[str, Any]:
    return {
        "start": seg.start,
        "end": seg.end,
        "text": seg.text,
        "speaker": seg.speaker,
        "confidence": seg.confidence,
        "asr_text": seg.asr_text,
    }


def _epoch(moment: str | None) -> float | None:
    """An ls_time string as Unix seconds (for the report's review latency)."""
    if not moment:
        return None
    try:
        return ls_datetime(moment).timestamp()
    except ValueError:
        return None
