"""What a reviewer sees of a recording in Label Studio: the task's data and prediction, and the saved view's columns.

The task holds the audio, what reviewers read in the Data Manager (the object key, numeric confidence, duration, words
flagged), and syncd's identity (``syncd_id``, ``etag``); the view names those columns, so both live here.
"""

from __future__ import annotations

from typing import Any

from syncd.domain.formats import redaction
from syncd.domain.recording import Recording
from syncd.domain.units import unit_of
from syncd.labelstudio import layouts

VIEW_TITLE = "Least sure first"
OLD_VIEW_TITLES = ("Least confident first",)
SHOWN = (
    "id",
    "data.key",
    "data.asr_confidence",
    "data.duration",
    "data.flagged_words",
    "data.audio",
    "total_annotations",
    "annotators",
)
HIDDEN = (
    "completed_at",
    "cancelled_annotations",
    "total_predictions",
    "annotations_results",
    "annotations_ids",
    "predictions_results",
    "predictions_model_versions",
    "file_upload",
    "storage_filename",
    "created_at",
    "updated_at",
    "updated_by",
    "avg_lead_time",
    "draft_exists",
    "inner_id",
    "comment_count",
    "unresolved_comment_count",
    "last_comment_updated_at",
    "data.bucket",
    "data.source",
    "data.etag",
    "data.syncd_id",
    "data.segments_to_check",
    "data.segments",
    "data.language",
    "data.asr_engine",
    "data.redacted",
    "data",
    "predictions_score",
)


VIEW: dict[str, Any] = {
    "title": VIEW_TITLE,
    "ordering": ["tasks:predictions_score"],
    "hiddenColumns": {
        "explore": [f"tasks:{c}" for c in HIDDEN],
        "labeling": [f"tasks:{c}" for c in (*HIDDEN, *SHOWN[3:])],
    },
    "columnsWidth": {
        "tasks:id": 70,
        "tasks:data.key": 320,
        "tasks:data.asr_confidence": 150,
        "tasks:data.duration": 90,
        "tasks:data.flagged_words": 120,
    },
}


def task_for(rec: Recording, layout: str, model_version: str, flag_words_below: float = 0.0) -> dict[str, Any]:
    """The task: the audio, what reviewers read in the Data Manager and the header (the object key, not a URI;
    numeric confidence, duration and the number of words flagged), our identity (``syncd_id``, ``etag``), and for
    the transcript layout the rows it repeats over (``segments``: each segment's cue)."""
    transcript = rec.transcript
    assert transcript is not None
    confidence = transcript.confidence
    redacted = redaction(transcript) is not None
    flag_below = flag_words_below if layout in ("segments", "transcript") else 0.0
    flagged = len(layouts.flagged_words(transcript, flag_below))
    unit = unit_of(transcript)
    if layout == "transcript":
        to_check = layouts.segments_to_check(transcript, flag_below)
    else:
        to_check = layouts.segments_to_check(transcript) + (
            f" · {flagged} word{'s' if flagged > 1 else ''} marked" if flagged else ""
        )
    rows = {"segments": layouts.transcript_rows(transcript, flag_below)} if layout == "transcript" else {}
    return {
        "data": {
            "audio": rec.uri,
            "key": f"{unit['of']} ({unit['label']})" if unit else rec.key,
            "asr_confidence": None if confidence is None else round(confidence, 3),
            "duration": None if transcript.duration is None else round(transcript.duration, 1),
            "flagged_words": flagged,
            "segments_to_check": to_check + (" · PII redacted" if redacted else ""),
            "redacted": redacted,
            "language": transcript.language,
            "asr_engine": transcript.engine,
            "bucket": rec.bucket,
            "source": rec.uri,
            "etag": rec.etag,
            "syncd_id": rec.syncd_id,
            **rows,
        },
        "predictions": [
            {
                "model_version": model_version,
                "score": confidence if confidence is not None else 0.0,
                "result": layouts.prediction_result(transcript, layout, flag_below),
            }
        ],
    }
