"""The faster-whisper engine in-process with a stand-in model: windows transcribed once, progress per window,
undecodable audio failed, workers stopped on close."""

from __future__ import annotations

import shutil
import threading
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from structlog.testing import capture_logs

from devstack import recording_for
from syncd.audio.decode import Window
from syncd.config import WhisperSettings
from syncd.transcribers.base import TranscriptionError
from syncd.transcribers.whisper import WhisperTranscriber, segment_at
from tests.unit.scenarios import SR, speechy


@dataclass
class _W:
    start: float
    end: float
    word: str
    probability: float


@dataclass
class _Piece:
    start: float
    end: float
    text: str
    words: list[_W]


def _wav(path: Path, seconds: float, gaps: list[tuple[float, float]] | None = None) -> Path:
    samples = (speechy(seconds, gaps=gaps or [])[0] * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SR)
        out.writeframes(samples.tobytes())
    return path


class _Model:
    """Counts transcriptions; the first waits until released so that many threads ask for it meanwhile."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = threading.Event()

    def transcribe(self, samples: np.ndarray, **options: Any) -> tuple[Any, Any]:
        self.calls += 1
        self.release.wait(30)
        end = len(samples) / SR
        info = type("Info", (), {"language": "en", "language_probability": 1.0, "duration_after_vad": end})
        return iter([_Piece(0.0, end, " hi", [_W(0.0, end, " hi", 0.9)])]), info


class _Files:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.downloads = 0

    def download(self, bucket: str, key: str, path: Path) -> None:
        self.downloads += 1
        shutil.copy(self.folder / key, path)


def test_segment_times_shift_by_the_window_offset_exactly() -> None:
    window = Window(offset=37_456_000, samples=np.zeros((1, 1), dtype=np.float32))  # 2341 s into the file
    piece = _Piece(1.5, 3.25, " hello world.", [_W(1.5, 2.0, " hello", 0.9), _W(2.12, 3.25, " world.", 0.8)])
    segment = segment_at(piece, window.start, "ch_1")

    assert (segment.start, segment.end) == (2342.5, 2344.25)
    assert [(w.start, w.end, w.text, w.speaker) for w in segment.words] == [
        (2342.5, 2343.0, "hello", "ch_1"),
        (2343.12, 2344.25, "world.", "ch_1"),
    ]
    assert segment.speaker == "ch_1" and segment.text == "hello world."


def test_one_recording_is_transcribed_once_however_many_threads_ask(tmp_path: Path) -> None:
    _wav(tmp_path / "a.wav", 2.0)
    files = _Files(tmp_path)
    model = _Model()
    engine = WhisperTranscriber(WhisperSettings(workers=2, batch_size=1), files, model=model)  # type: ignore[arg-type]
    rec = recording_for("b", "a.wav", "etag")
    results: list[Any] = []

    engine.start(rec)
    engine.start(rec)
    pollers = [threading.Thread(target=lambda: results.append(engine.poll(rec))) for _ in range(3)]
    for t in pollers:
        t.start()
    model.release.set()
    for t in pollers:
        t.join(30)

    assert model.calls == 1 and files.downloads == 1
    assert len(results) == 3 and all(r is results[0] for r in results)
    assert results[0].text == "hi" and results[0].duration == 2.0
    assert not engine._jobs  # handed out, then forgotten: a later poll transcribes the new attempt afresh


def test_progress_is_reported_per_window_on_long_audio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _wav(tmp_path / "long.wav", 150.0, gaps=[(59.5, 59.9), (119.5, 119.9)])
    model = _Model()
    engine = WhisperTranscriber(WhisperSettings(window_seconds=60, batch_size=1), _Files(tmp_path), model=model)  # type: ignore[arg-type]
    model.release.set()

    with capture_logs() as logs:
        transcript = engine.poll(recording_for("b", "long.wav", "etag"))

    progress = [e for e in logs if e["event"] == "transcription.progress"]
    assert model.calls == 3 and transcript.duration == 150.0
    assert [round(e["percent"], -1) for e in progress] == [40.0, 80.0]  # after windows 1 and 2 (cut at a pause)
    assert [w.start for w in transcript.words] == [0.0, 59.55, 119.5]  # one word per window, at its offset


def test_undecodable_audio_fails_for_good(tmp_path: Path) -> None:
    (tmp_path / "bad.mp3").write_bytes(b"ID3 not an mp3 frame at all" * 40)
    engine = WhisperTranscriber(WhisperSettings(), _Files(tmp_path), model=_Model())  # type: ignore[arg-type]
    with pytest.raises(TranscriptionError) as err:
        engine.poll(recording_for("b", "bad.mp3", "etag"))
    assert err.value.retryable is False and "cannot decode audio" in err.value.reason


def test_the_stage_tops_the_engine_up_after_each_result(tmp_path: Path) -> None:
    """A local engine works on what it was started with: a finished recording is replaced before the next poll, so
    no worker idles while the stage waits on the slowest recording of a round."""
    from syncd.stages import scan, transcribe
    from tests.unit.fakes import services

    svc, _, storage, engine = services(tmp_path)
    engine.max_in_flight = 2
    for n in range(5):
        storage.put_audio("b", f"r{n}.mp3", f"audio {n}".encode())
    started_at_poll: list[int] = []
    engine.while_polling = lambda: started_at_poll.append(len(engine.started))
    go = threading.Event()
    scan.run(svc, go)

    assert transcribe.run(svc, go) == 5
    assert started_at_poll == [2, 3, 4, 5, 5]  # without the top-up: [2, 2, 4, 4, 5]


def test_close_stops_the_workers_before_the_process_exits(tmp_path: Path) -> None:
    """A thread left inside CTranslate2 when the interpreter exits aborts the process (SIGABRT): close() stops the
    workers at their next segment and waits for them; the recording cut short fails as retryable."""
    _wav(tmp_path / "long.wav", 150.0, gaps=[(59.5, 59.9), (119.5, 119.9)])
    model = _Model()
    engine = WhisperTranscriber(WhisperSettings(workers=2, window_seconds=60), _Files(tmp_path), model=model)  # type: ignore[arg-type]
    rec = recording_for("b", "long.wav", "etag")
    engine.start(rec)
    while not model.calls:
        threading.Event().wait(0.05)
    closer = threading.Thread(target=engine.close)
    closer.start()
    model.release.set()  # the window in the model finishes; the worker stops at its next segment
    closer.join(10)
    assert not closer.is_alive() and not any(t.is_alive() for t in engine._threads)
    assert model.calls == 1, "no window is started once closing"
    with pytest.raises(TranscriptionError) as stopped:
        engine.poll(rec)
    assert stopped.value.retryable and "stopping" in stopped.value.reason


def test_warm_loads_the_model_once_on_its_own_thread_and_logs_the_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    import faster_whisper

    loads: list[tuple[str, dict[str, Any]]] = []

    class _Loaded:
        def __init__(self, path: str, **options: Any) -> None:
            loads.append((threading.current_thread().name, options))

    monkeypatch.setattr(faster_whisper, "WhisperModel", _Loaded)
    engine = WhisperTranscriber(WhisperSettings(workers=2, cpu_threads=1), None)  # type: ignore[arg-type]
    with capture_logs() as logs:
        engine.warm()
        engine.warm()
        engine.close()
        model = engine._load()
    assert isinstance(model, _Loaded)
    assert [(name, o["cpu_threads"], o["num_workers"]) for name, o in loads] == [("whisper-load", 1, 2)]
    (loaded,) = [e for e in logs if e["event"] == "whisper.loaded"]
    assert (loaded["workers"], loaded["cpu_threads"], loaded["cores"]) == (2, 1, engine.plan.cores)
