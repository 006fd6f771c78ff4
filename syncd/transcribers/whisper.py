"""Local speech recognition with faster-whisper; the default engine, needing no cloud account.

``start`` queues a recording; download threads fetch it ahead of time while ``workers`` threads, sharing one loaded
model (CTranslate2 runs one replica per worker), decode and transcribe others, so network, decoding and inference
overlap. ``poll`` waits for that recording's result. A recording is queued once however often it is started or polled
(jobs are keyed by its syncd_id) and forgotten once its result is handed out. Audio is decoded as a stream in windows
(``window_seconds``), so a long recording costs bounded memory; each window's word times are shifted by its exact
sample offset. Long work reports ``transcription.progress``; a waiting ``poll`` passes worker progress on to the
stage's heartbeat.
"""

from __future__ import annotations

import contextlib
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from syncd.audio.decode import SAMPLE_RATE, AudioError, Window, blocks, clips, probe, windows
from syncd.config import WhisperSettings
from syncd.domain.recording import Recording
from syncd.domain.transcript import Segment, Transcript, Word
from syncd.log import describe_error, get_logger
from syncd.s3.storage import Storage
from syncd.transcribers.base import Progress, TranscriptionError, no_progress
from syncd.transcribers.whisper_model import EnginePlan, plan

PROGRESS_EVERY = 10.0
BEAT_EVERY = 2.0
"""Seconds between two looks at the workers while ``poll`` waits."""
"""Seconds between two progress reports of one recording: the heartbeat of long work."""
DOWNLOAD_THREADS = 2
CUT_SEARCH_S = 10.0
CHANNEL_SPEAKERS = ("ch_0", "ch_1")
HOTWORDS = 50
CLOSE_TIMEOUT = 30.0


@dataclass
class _Job:
    recording: Recording
    result: Future[Transcript] = field(default_factory=Future)
    fraction: float | None = None
    folder: Path | None = None
    audio: Path | None = None


class WhisperTranscriber:
    engine = "whisper"
    in_process = True

    def __init__(self, settings: WhisperSettings, storage: Storage, language: str = "", model: Any = None) -> None:
        """``model``: a loaded model to use instead of loading ``settings.model`` on first use (a test's stand-in)."""
        self.settings = settings
        self.storage = storage
        self.language = language.split("-")[0] or None
        self.plan: EnginePlan = plan(settings)
        self.max_in_flight = self.plan.workers * 2
        """Twice the workers: the next recordings are downloaded while the current ones are transcribed."""
        self._moved = 0
        """Bumped whenever a worker makes progress on any recording: what ``poll`` beats the heartbeat on."""
        self.log = get_logger()
        self._model: Any = model
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}
        self._downloads: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._ready: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._local = threading.local()
        self.hotwords: str | None = None
        self._closing = threading.Event()

    def use_vocabulary(self, words: list[str]) -> None:
        """With ``hotwords_from_reviews``, the most frequent words become the decoder's hotwords (a prompt hint:
        the first HOTWORDS words, to stay well inside whisper's prompt)."""
        if self.settings.hotwords_from_reviews:
            self.hotwords = " ".join(words[:HOTWORDS]) or None

    def publish_vocabulary(self, words: list[str]) -> None:
        """Nothing to keep: the words reach the decoder per job (``use_vocabulary``)."""

    @property
    def model_name(self) -> str:
        return self.plan.name

    @property
    def model_version(self) -> str:
        return self.plan.model_version

    # --- jobs ------------------------------------------------------------------------------------------------

    def start(self, recording: Recording) -> str:
        self._submit(recording)
        return f"whisper-{recording.syncd_id}"

    def poll(self, recording: Recording, progress: Progress = no_progress) -> Transcript:
        """Wait for the recording's transcript. While waiting, ``progress`` is called on this (the stage's) thread
        whenever any worker has moved on since the last look: a recording queued behind a long one keeps the
        heartbeat going, and a hung worker stops it."""
        job = self._submit(recording)
        seen = self._moved
        try:
            while True:
                try:
                    return job.result.result(timeout=BEAT_EVERY)
                except FutureTimeout:
                    if self._moved != seen:
                        seen = self._moved
                        progress(job.fraction)
        finally:
            with self._lock:
                if self._jobs.get(recording.syncd_id) is job:
                    del self._jobs[recording.syncd_id]

    def _submit(self, recording: Recording) -> _Job:
        with self._lock:
            job = self._jobs.get(recording.syncd_id)
            if job is None:
                job = self._jobs[recording.syncd_id] = _Job(recording)
                self._start_threads()
                self._downloads.put(job)
            return job

    def _start_threads(self) -> None:
        if any(t.name.startswith("whisper-worker") for t in self._threads):
            return
        for n in range(DOWNLOAD_THREADS):
            self._threads.append(_daemon_thread(f"whisper-download-{n}", self._download_loop))
        for n in range(self.plan.workers):
            self._threads.append(_daemon_thread(f"whisper-worker-{n}", self._work_loop))

    def warm(self) -> None:
        """Load the model on a thread of its own now, while syncd connects and sets up the project, instead of on
        the first recording: `syncd once` and the first cycle of `syncd run` gain the load time. A model that fails
        to load here fails again, with its error, on the first recording."""
        with self._lock:
            if self._model is None and not any(t.name == "whisper-load" for t in self._threads):
                self._threads.append(_daemon_thread("whisper-load", self._load_quietly))

    def _load_quietly(self) -> None:
        with contextlib.suppress(TranscriptionError):
            self._load()

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Stop the workers and wait (up to ``timeout``) until none is inside the model: a process that exits while
        a thread runs CTranslate2 code aborts (SIGABRT) instead of exiting cleanly. A recording cut short stays
        TRANSCRIBING in the state and is transcribed again after the restart."""
        self._closing.set()
        for _ in range(DOWNLOAD_THREADS):
            self._downloads.put(None)
        for _ in range(self.plan.workers):
            self._ready.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            self.log.warning("whisper.workers_still_running", threads=alive, waited_seconds=timeout)

    def _download_loop(self) -> None:
        while True:
            job = self._downloads.get()
            if job is None:
                return
            rec = job.recording
            try:
                job.folder = Path(tempfile.mkdtemp(prefix="syncd-whisper-"))
                job.audio = job.folder / ("audio" + Path(rec.key).suffix.lower())
                self.storage.download(rec.bucket, rec.key, job.audio)
            except BaseException as exc:
                _finish(job, exc)
                if job.folder is not None:
                    shutil.rmtree(job.folder, ignore_errors=True)
                continue
            self._ready.put(job)

    def _work_loop(self) -> None:
        while True:
            job = self._ready.get()
            if job is None:
                return
            rec = job.recording
            worker = threading.current_thread().name
            self.log.debug("transcription.decoding", recording=rec.id, key=rec.key, worker=worker)
            try:
                assert job.audio is not None
                job.result.set_result(self._transcribe(job.recording, job.audio, job))
            except BaseException as exc:
                _finish(job, exc)
            finally:
                if job.folder is not None:
                    shutil.rmtree(job.folder, ignore_errors=True)

    # --- transcription ---------------------------------------------------------------------------------------

    def _load(self) -> Any:
        with self._load_lock:
            if self._model is None:
                from faster_whisper import WhisperModel

                p = self.plan
                try:
                    self._model = WhisperModel(
                        p.path,
                        device=p.device,
                        device_index=list(p.device_index),
                        compute_type=p.compute_type,
                        cpu_threads=p.cpu_threads,
                        num_workers=p.models_per_device,
                        local_files_only=True,
                    )
                except (RuntimeError, ValueError) as exc:
                    raise TranscriptionError(
                        f"cannot load whisper model {p.path} on {p.device} ({p.compute_type}): {exc}", retryable=True
                    ) from exc
                self.log.info(
                    "whisper.loaded",
                    model=p.name,
                    device=p.device,
                    compute_type=p.compute_type,
                    cores=p.cores,
                    workers=p.workers,
                    cpu_threads=p.cpu_threads,
                    batch_size=p.batch_size,
                )
            return self._model

    def _transcribe(self, rec: Recording, audio: Path, job: _Job | None = None) -> Transcript:
        model = self._load()
        try:
            info = probe(audio)
            split = self.settings.channels == "split" and info.channels >= 2
            speakers = CHANNEL_SPEAKERS if split else (None,)
            meter = _Meter(self, rec, info.duration * len(speakers), job)
            result = _Result(languages=[self.language] * len(speakers))
            source = blocks(audio, len(speakers))
            for window in windows(source, self.settings.window_seconds, CUT_SEARCH_S):
                self._window(model, window, speakers, result, meter)
        except AudioError as exc:
            raise TranscriptionError(f"cannot decode audio: {exc}", retryable=False) from exc
        except TranscriptionError:
            raise
        except Exception as exc:  # faster-whisper and PyAV fail on bad input with many types
            raise TranscriptionError(f"cannot transcribe audio: {describe_error(exc)}", retryable=False) from exc
        if not result.samples:
            raise TranscriptionError("audio has no samples", retryable=False)
        return Transcript(
            segments=tuple(sorted(result.segments, key=lambda s: (s.start, s.end)) if split else result.segments),
            engine=self.engine,
            model=self.model_name,
            language=result.languages[0],
            job=f"whisper-{rec.syncd_id}",
            duration=round(result.samples / SAMPLE_RATE, 3),
            extra=result.details(self.plan, split),
        )

    def _window(
        self, model: Any, window: Window, speakers: tuple[str | None, ...], result: _Result, meter: _Meter
    ) -> None:
        result.samples = window.offset + int(window.samples.shape[1])
        for channel, speaker in enumerate(speakers):
            pieces, info = self._decode(model, window.samples[channel], result.languages[channel])
            if result.languages[channel] is None:
                result.languages[channel] = info.language
                result.probabilities[channel] = round(float(info.language_probability), 4)
            done = window.start * len(speakers) + channel * window.seconds
            for piece in pieces:
                segment = segment_at(piece, window.start, speaker)
                if segment.text:
                    result.segments.append(segment)
                meter.tick(done + float(piece.end))
            result.voiced += float(info.duration_after_vad)
            meter.tick(done + window.seconds, window_done=True)

    def _decode(self, model: Any, samples: np.ndarray, language: str | None) -> tuple[Iterator[Any], Any]:
        """One channel of one window through faster-whisper; decoding errors surface while iterating."""
        s = self.settings
        options: dict[str, Any] = {"language": language, "beam_size": s.beam_size, "word_timestamps": True}
        if self.hotwords:
            options["hotwords"] = self.hotwords
        if s.vad_filter:
            options |= {"vad_filter": True, "vad_parameters": s.vad.model_dump()}
        if self.plan.batch_size <= 1:
            return model.transcribe(samples, **options)
        if not s.vad_filter:
            spans = clips(samples[np.newaxis, :])
            options |= {"vad_filter": False, "clip_timestamps": [_span(a, b) for a, b in spans]}
        return self._pipeline(model).transcribe(samples, batch_size=self.plan.batch_size, **options)

    def _pipeline(self, model: Any) -> Any:
        """One BatchedInferencePipeline per worker thread: it keeps per-call state."""
        pipeline = getattr(self._local, "pipeline", None)
        if pipeline is None:
            from faster_whisper import BatchedInferencePipeline

            pipeline = self._local.pipeline = BatchedInferencePipeline(model)
        return pipeline


@dataclass
class _Result:
    """What one recording's windows have produced so far."""

    languages: list[str | None]
    segments: list[Segment] = field(default_factory=list)
    probabilities: dict[int, float] = field(default_factory=dict)
    samples: int = 0
    voiced: float = 0.0

    def details(self, p: EnginePlan, split: bool) -> dict[str, Any]:
        extra: dict[str, Any] = {"compute_type": p.compute_type, "device": p.device}
        if self.probabilities:
            extra["language_probability"] = self.probabilities.get(0)
        if split:
            extra["channel_languages"] = {CHANNEL_SPEAKERS[n]: lang for n, lang in enumerate(self.languages)}
        extra["speech_seconds"] = round(self.voiced, 3)
        return extra


class _Meter:
    """Progress of one recording: every tick tells waiting ``poll`` calls that a worker moved on; logged at most every
    PROGRESS_EVERY seconds, and at the end of each window but the last (a short recording reports nothing)."""

    def __init__(self, owner: WhisperTranscriber, rec: Recording, work_s: float, job: _Job | None = None) -> None:
        self.owner = owner
        self.rec = rec
        self.work_s = work_s
        self.job = job
        self.last = time.monotonic()

    def tick(self, done_s: float, *, window_done: bool = False) -> None:
        if self.owner._closing.is_set():
            raise TranscriptionError("syncd is stopping; transcribed again after the restart", retryable=True)
        fraction = min(done_s / self.work_s, 1.0) if self.work_s else 0.0
        self.owner._moved += 1
        if self.job is not None:
            self.job.fraction = fraction
        now = time.monotonic()
        finished = self.work_s and done_s >= self.work_s - 0.5
        if not (window_done and not finished) and now - self.last < PROGRESS_EVERY:
            return
        self.last = now
        self.owner.log.info(
            "transcription.progress",
            recording=self.rec.id,
            key=self.rec.key,
            percent=round(100 * fraction, 1),
            audio_seconds=round(done_s, 1),
        )


def segment_at(piece: Any, offset: float, speaker: str | None = None) -> Segment:
    """A faster-whisper segment of a window, in file time: every time shifted by the window's offset."""
    words = [
        Word(
            start=round(offset + float(w.start), 3),
            end=round(offset + float(w.end), 3),
            text=w.word.strip(),
            confidence=round(float(w.probability), 4),
            speaker=speaker,
        )
        for w in piece.words or ()
        if w.word.strip()
    ]
    if not words:
        start, end = round(offset + float(piece.start), 3), round(offset + float(piece.end), 3)
        return Segment(start=start, end=end, text=piece.text.strip(), speaker=speaker)
    return Segment.from_words(words, speaker=speaker)


def _span(start: int, end: int) -> dict[str, float]:
    return {"start": start / SAMPLE_RATE, "end": end / SAMPLE_RATE}


def _finish(job: _Job, exc: BaseException) -> None:
    """The error reaches whoever polls: TranscriptionError as is, anything else (an S3 outage) as retryable."""
    job.result.set_exception(exc)


def _daemon_thread(name: str, target: Callable[[], None]) -> threading.Thread:
    """Daemon threads: a stopping process does not wait for a transcription; the recording stays TRANSCRIBING in
    the state and is transcribed again after the restart."""
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread
