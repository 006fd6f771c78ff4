"""Clips for review units: one lossless FLAC per span, sample-exact, at the recording's own rate and channels."""

from __future__ import annotations

import wave
from pathlib import Path

import av
import numpy as np
import pytest

from syncd import heartbeat
from syncd.audio.clips import SUFFIX, cut
from syncd.audio.decode import AudioError
from tests.unit.scenarios import tone_wav

RATE = 8000


def _samples(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.sample_rate == RATE
        return np.concatenate([frame.to_ndarray().reshape(-1) for frame in container.decode(stream)])


def test_each_span_is_its_own_flac_holding_exactly_its_samples(tmp_path: Path) -> None:
    source = tmp_path / "call.wav"
    source.write_bytes(tone_wav(6, RATE))
    with wave.open(str(source)) as w:
        original = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    beats: list[int] = []
    with heartbeat.listening(lambda: beats.append(1)):
        paths = cut(source, [(0.0, 1.5), (1.5, 4.0), (4.25, 6.0)], tmp_path)
    assert [p.name for p in paths] == [f"clip-00{n}{SUFFIX}" for n in range(3)]
    for path, (start, end) in zip(paths, [(0.0, 1.5), (1.5, 4.0), (4.25, 6.0)], strict=True):
        clip = _samples(path)
        assert np.array_equal(clip, original[round(start * RATE) : round(end * RATE)])  # lossless, sample-exact
    assert beats, "cutting beats the stage's heartbeat"


def test_a_file_that_is_not_audio_is_an_audio_error(tmp_path: Path) -> None:
    source = tmp_path / "notes.wav"
    source.write_bytes(b"this is not audio at all")
    with pytest.raises(AudioError) as info:
        cut(source, [(0.0, 1.0)], tmp_path)
    assert str(info.value).startswith("InvalidDataError: ")
