"""Set-ups several unit-test modules share (a scenario's recordings, uploads, event bodies, stand-in audio)."""

from __future__ import annotations

import io
import json
import threading
import wave
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest

from syncd.audio.decode import SAMPLE_RATE
from syncd.config import parse
from syncd.domain.recording import Recording, S3Object
from syncd.domain.transcript import Segment, Transcript, Word
from syncd.errors import ConfigError
from syncd.labelstudio import layouts
from syncd.s3.events import Event
from syncd.s3.events import parse as parse_events
from syncd.services import Services
from syncd.stages import BY_NAME, STAGE_NAMES, import_, scan, transcribe
from syncd.state.cluster import Instance
from tests.unit.fakes import (
    GO,
    FakeLabelStudio,
    FakeStorage,
    FakeTranscriber,
    new_store,
    services,
)

MINIMAL = {"sources": [{"bucket": "b"}]}


def error_for(raw: dict) -> str:
    with pytest.raises(ConfigError) as info:
        parse(raw)
    return str(info.value)


def long(minutes: int, every: float = 30.0) -> Transcript:
    """A segment of 20 s every ``every`` seconds, one word each at its start."""
    segments = []
    t = 0.5
    while t + 20 < minutes * 60:
        words = (Word(t, t + 0.4, "word", 0.9),)
        segments.append(Segment(t, t + 20.0, f"at {t}", "spk_0", 0.9, words))
        t += every
    return Transcript(segments=tuple(segments), engine="aws", model="m", duration=minutes * 60.0)


KEY = "calls/long.wav"


SECONDS = 90


def transcript() -> Transcript:
    """A 6-second segment every 10 s: 9 segments, cut into units of at most 30 s."""
    segments = tuple(
        Segment.from_words([Word(t, t + 2.0, f"word{t}", 0.9), Word(t + 3.0, t + 6.0, "said.", 0.9)])
        for t in range(1, SECONDS - 6, 10)
    )
    return Transcript(segments=segments, engine="fake", model="fake-1", duration=SECONDS - 3.0)


def review_all(svc: Services, ls: FakeLabelStudio, but: int | None = None, text: str = "fixed") -> None:
    """Submit every unit's review (but one), one line per segment: "<text> <unit> <line>"."""
    for n, (unit, _) in enumerate(svc.state.recordings.units_of(svc.state.recordings.all()[0].id)):
        if n != but and unit.task_id is not None and unit.transcript is not None:
            lines = [f"{text} {n} {i}" for i in range(len(unit.transcript.segments))]
            ls.annotate(unit.task_id, "\n".join(lines))


def stem_outputs(storage: FakeStorage) -> list[str]:
    return [k for k in storage.keys("b") if k.startswith("calls/long.transcript")]


def transcribed_with(svc: Services, storage: FakeStorage, engine: FakeTranscriber, keys: dict[str, float]) -> None:
    """Each key uploaded, scanned and transcribed with its own confidence."""
    for key, confidence in keys.items():
        storage.put_audio("b", key, key.encode())
        scan.run(svc, GO)
        engine.confidence = confidence
        transcribe.run(svc, GO)


def upload(storage: FakeStorage, keys: tuple[str, ...]) -> None:
    for key in keys:
        storage.put_audio("b", key, key.encode())


def per_syncd_id(ls: FakeLabelStudio) -> Counter[str]:
    return Counter(str(t["data"].get("syncd_id")) for t in ls.tasks.values() if t["data"].get("syncd_id"))


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == name]


def region(rid: str, start: float, end: float | None, text: str) -> dict[str, Any]:
    value: dict[str, Any] = {"start": start, "text": [text]}
    if end is not None:
        value["end"] = end
    return {"id": rid, "from_name": layouts.TEXT, "type": "textarea", "value": value}


def scanned_recording(svc: Any, storage: Any) -> Any:
    storage.put_audio("b", "calls/a.mp3")
    BY_NAME["scan"].run(svc, threading.Event())
    (rec,) = svc.state.recordings.all()
    return rec


QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/syncd-events"


def s3_object(key: str, etag: str = "e1", size: int = 10) -> S3Object:
    return S3Object(bucket="b", key=key, etag=etag, size=size)


def s3_event(name: str, key: str, etag: str = "e1", size: int = 5) -> dict[str, Any]:
    s3_object = {"key": key, "size": size, "eTag": etag, "sequencer": "0A1B"}
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": name,
        "s3": {"bucket": {"name": "b"}, "object": s3_object},
    }


class FakeQueue:
    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []
        self.deleted: list[str] = []
        self.receives = 0

    def send(self, *records: dict[str, Any]) -> None:
        self.messages.append((f"r{len(self.messages)}", json.dumps({"Records": list(records)})))

    def batches(self) -> Iterator[tuple[list[Event], list[str]]]:
        self.receives += 1
        while self.messages:
            taken, self.messages = self.messages[:10], self.messages[10:]
            yield [e for _, body in taken for e in parse_events(body)], [r for r, _ in taken]

    def done(self, receipts: list[str]) -> None:
        self.deleted += receipts


def evented(tmp_path: Path, policy: str = "keep") -> tuple[Services, FakeLabelStudio, FakeStorage, FakeQueue]:
    source = {"bucket": "b", "queue_url": QUEUE, "on_audio_deleted": policy}
    svc, ls, storage, _ = services(tmp_path, sources=[source])
    queue = FakeQueue()
    svc.queues[QUEUE] = queue  # type: ignore[assignment]
    return svc, ls, storage, queue


SR = SAMPLE_RATE


def speechy(seconds: float, gaps: list[tuple[float, float]], channels: int = 1) -> np.ndarray:
    """A loud tone everywhere except the given (start, end) gaps, which are silent."""
    t = np.arange(int(seconds * SR)) / SR
    signal = (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    for start, end in gaps:
        signal[int(start * SR) : int(end * SR)] = 0.0
    return np.tile(signal, (channels, 1))


def instances(tmp_path: Path, *names: str, lease: float = 30.0) -> list[Instance]:
    """Instances sharing one state, each through its own store (its own connections), as separate processes would."""
    return [Instance(name, STAGE_NAMES, lease, new_store(tmp_path)) for name in names]


def discovered(instance: Instance, count: int) -> None:
    objs = [S3Object(bucket="b", key=f"k{i:04d}.wav", etag="e", size=1) for i in range(count)]
    instance.state.recordings.add_objects(objs)


def tone_wav(seconds: int, rate: int = 8000) -> bytes:
    """A WAV of a steady tone (decodable audio whose content does not matter)."""
    samples = (np.sin(np.arange(seconds * rate) * 2 * np.pi * 300 / rate) * 3000).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return out.getvalue()


SplitUp = tuple[Services, FakeLabelStudio, FakeStorage, Recording]
"""A recording split into three review units by the import stage, and the stack it was split on."""


def second_instance(svc: Services, tmp_path: Path, name: str) -> Services:
    """Another instance named ``name`` over the same state database (its own connections), Label Studio and S3."""
    instance = svc.settings.instance.model_copy(update={"name": name})
    other = Services.assemble(
        settings=svc.settings.model_copy(update={"instance": instance}),
        state=new_store(tmp_path),
        storage=svc.storage,
        transcriber=svc.transcriber,
        labelstudio=svc.labelstudio,
    )
    other.projects.current_id = svc.projects.current
    return other


class ReviewedOnTwo(NamedTuple):
    holder: Services
    """Instance "a": it imported the task and holds the export lease."""
    other: Services
    """Instance "b" over the same state: no lease."""
    storage: FakeStorage
    task: int


def reviewed_on_two_instances(tmp_path: Path) -> ReviewedOnTwo:
    """Two instances over one state; "a" imported one.mp3 and holds the export lease, and a person reviewed the task
    ("reviewed by a person")."""
    a, ls, storage, engine = services(tmp_path, instance={"name": "a"})
    b = second_instance(a, tmp_path, "b")
    transcribed_with(a, storage, engine, {"one.mp3": 0.5})
    assert import_.run(a, GO) == 1
    assert a.instance.may_run("export")
    [task_id] = ls.tasks
    ls.annotate(task_id, "reviewed by a person")
    return ReviewedOnTwo(a, b, storage, task_id)


def expire_lease(svc: Services, lease: str) -> None:
    """``lease`` runs out, as it does while its holder is frozen (SIGSTOP, a long GC pause, a paused VM)."""
    with svc.state.db.tx() as db:
        db.execute("UPDATE leases SET until = 0 WHERE name = ?", (lease,))


CALL_ASR = Transcript(
    segments=(
        Segment(0.0, 2.5, "Hello, thanks for calling.", "spk_0", 0.91),
        Segment(2.8, 5.0, "I have a question about my bill.", "spk_1", 0.62),
        Segment(5.2, 7.9, "Sure, let me look that up.", "spk_0", 0.77),
    ),
    engine="aws",
    model="transcribe",
    duration=8.0,
)


WORDY_CALL = replace(
    CALL_ASR,
    segments=(
        Segment.from_words([Word(0.0, 0.4, "Hello,", 0.95), Word(0.5, 0.9, "Szymborska", 0.31)], speaker="spk_0"),
        Segment.from_words([Word(1.2, 1.5, "calling", 0.49), Word(1.6, 2.0, "today.", 0.5)], speaker="spk_1"),
    ),
)
