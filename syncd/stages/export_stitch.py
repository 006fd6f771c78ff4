"""Stitch, part of the export stage: a review unit's review is kept in the state on its recording's clock; once
every unit of a recording has one, the transcripts are written beside the original audio, with the same conditional
writes and audio-version check as any review, and again whenever a unit's review is edited. Nothing partial is ever
written beside the audio.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from syncd.domain import units
from syncd.domain.formats import Review, render, word_errors
from syncd.domain.recording import Recording, Status
from syncd.domain.transcript import Segment
from syncd.log import describe_error
from syncd.s3.outputs import Export, write_outputs
from syncd.services import Services
from syncd.stages.export_plan import outputs_base

RETRY = 30.0


def run(svc: Services, stop: threading.Event) -> int:
    """Write the transcripts of the split recordings whose units' reviews changed; returns transcripts written."""
    written = 0
    for parent, mark in svc.state.recordings.stitch_due():
        if stop.is_set():
            break
        try:
            written += _stitch(svc, parent, mark)
        except Exception as exc:
            reason = describe_error(exc)
            svc.state.recordings.update(parent.id, reason=reason, next_attempt_at=time.time() + RETRY)
            svc.log.error(
                "transcript.stitch_failed", recording=parent.id, bucket=parent.bucket, key=parent.key, error=reason
            )
    return written


def _stitch(svc: Services, parent: Recording, mark: float) -> int:
    ids = {"recording": parent.id, "bucket": parent.bucket, "key": parent.key}
    found = svc.state.recordings.units_of(parent.id)
    reviewed = [(u, more) for u, more in found if more["review"] is not None]
    if parent.status not in (Status.SPLIT, Status.EXPORTED) or len(reviewed) < len(found):
        svc.state.recordings.stitched(parent.id, mark)
        svc.log.debug("units.waiting", status=parent.status, reviewed=len(reviewed), units=len(found), **ids)
        return 0
    review = _review(svc, parent, reviewed)
    version = max((u.annotation_updated_at or "", u.annotation_id or 0) for u, _ in reviewed)
    bodies = render(review, list(svc.settings.output.formats))
    done = write_outputs(svc.storage, Export(parent, review, version, bodies, outputs_base(svc, parent)))
    if done.audio_etag is not None:
        svc.state.recordings.stitched(parent.id, mark)
        svc.log.info("units.stale_audio", etag=parent.etag, current_etag=done.audio_etag or None, **ids)
        return 0
    errors, words = word_errors(review.text, review.asr.text)
    fields: dict[str, Any] = {
        "annotation_id": version[1],
        "annotation_updated_at": version[0],
        "exported_at": time.time(),
        "annotator": review.annotator,
        "submitted_at": max((m["submitted_at"] or 0.0 for _, m in reviewed), default=None) or None,
        "word_errors": errors,
        "reference_words": words,
        "reason": None,
    }
    if parent.status == Status.SPLIT:
        svc.state.recordings.move(parent.id, Status.SPLIT, Status.EXPORTED, **fields)
    else:
        svc.state.recordings.update(parent.id, **fields)
    svc.state.recordings.stitched(parent.id, mark)
    svc.log.info(
        "transcript.stitched",
        units=len(reviewed),
        formats=sorted(done.formats),
        kept_newer=sorted(done.kept_newer),
        word_error_rate=review.word_error_rate,
        review=parent.review_mode or "review",
        model=review.asr.model,
        language=review.asr.language or "",
        seconds=done.seconds,
        **ids,
    )
    return 1 if done.formats else 0


def _review(svc: Services, parent: Recording, reviewed: list[tuple[Recording, dict[str, Any]]]) -> Review:
    asr = parent.transcript
    if asr is None:
        raise ValueError(f"recording {parent.id} is split but has no transcript")
    segments = sorted(
        (Segment(**s) for _, more in reviewed for s in json.loads(more["review"])), key=lambda s: (s.start, s.end)
    )
    annotators = sorted({str(m["annotator"]) for _, m in reviewed if m["annotator"]})
    parts = tuple(_part(u, more) for u, more in reviewed)
    return Review(
        bucket=parent.bucket,
        key=parent.key,
        etag=parent.etag,
        asr=asr,
        segments=tuple(segments),
        project=None,
        task=None,
        annotation=None,
        annotator=", ".join(annotators) or None,
        created_at=None,
        updated_at=max((u.annotation_updated_at or "" for u, _ in reviewed), default="") or None,
        layout=svc.settings.labelstudio.layout,
        units=parts,
    )


def _part(unit: Recording, more: dict[str, Any]) -> dict[str, Any]:
    """What the json output says of one unit: its span in the recording and the review it holds."""
    about = units.unit_of(unit.transcript) or {}
    return {
        "start": about.get("start", unit.unit_start),
        "end": about.get("end"),
        "project": more["project_id"],
        "task": unit.task_id,
        "annotation": unit.annotation_id,
        "annotator": more["annotator"],
        "updated_at": unit.annotation_updated_at,
    }
