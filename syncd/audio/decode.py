"""Audio for the local engine: decoded as a stream into windows cut at quiet points, so memory stays bounded.

Whisper needs 16 kHz float32 samples. Decoding a whole 2-hour file at once costs 460 MB of samples and several times
that in spectrogram intermediates per worker; here the file is decoded block by block and handed on in windows of
``window_s`` seconds. Each window ends at the quietest 100 ms inside its last ``search_s`` seconds, so no word is cut
in two, and carries its exact offset in samples, so word times shift back to file time without drift.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from syncd.log import describe_error

SAMPLE_RATE = 16_000
MIN_RATE = 4_000
"""Below this a header lies (a 1 Hz WAV would decode its seconds of samples to a day of "audio"): telephony is 8 kHz."""
FRAME = SAMPLE_RATE // 10
"""Samples in one 100 ms frame: the unit in which a quiet cut point is searched."""


@dataclass(frozen=True)
class Window:
    """``samples`` has one row per channel; ``offset`` is the first sample's index in the whole file."""

    offset: int
    samples: np.ndarray

    @property
    def start(self) -> float:
        return self.offset / SAMPLE_RATE

    @property
    def seconds(self) -> float:
        return int(self.samples.shape[1]) / SAMPLE_RATE


@dataclass(frozen=True)
class AudioInfo:
    duration: float
    channels: int


class AudioError(Exception):
    """The file is not audio we can decode."""


def probe(path: Path) -> AudioInfo:
    """Duration (from the container, 0.0 when it does not say) and channel count of the first audio stream."""
    import av

    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise AudioError("the file has no audio stream")
            stream = container.streams.audio[0]
            if stream.rate and stream.rate < MIN_RATE:
                raise AudioError(f"sample rate {stream.rate} Hz is below {MIN_RATE} Hz: no speech is recorded that way")
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            else:
                duration = (container.duration or 0) / 1_000_000
            return AudioInfo(duration=max(duration, 0.0), channels=int(stream.codec_context.channels or 1))
    except av.error.FFmpegError as exc:
        raise AudioError(describe_error(exc)) from exc


def blocks(path: Path, channels: int) -> Iterator[np.ndarray]:
    """Decoded 16 kHz float32 blocks of shape (channels, n): mixed down to mono, or kept as two channels."""
    import av

    layout = "stereo" if channels == 2 else "mono"
    resampler = av.AudioResampler(format="flt", layout=layout, rate=SAMPLE_RATE)
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise AudioError("the file has no audio stream")
            stream = container.streams.audio[0]
            for frame in decoded_frames(container, stream):
                for out in resampler.resample(frame):
                    yield _planar(out.to_ndarray(), channels)
            for out in resampler.resample(None):
                yield _planar(out.to_ndarray(), channels)
    except av.error.FFmpegError as exc:
        raise AudioError(describe_error(exc)) from exc


def decoded_frames(container: Any, stream: Any) -> Iterator[Any]:
    """Decoded frames; a corrupt frame in the middle is skipped (as faster-whisper does), not fatal."""
    import av

    for packet in container.demux(stream):
        try:
            yield from packet.decode()
        except av.error.InvalidDataError:
            continue


def _planar(packed: np.ndarray, channels: int) -> np.ndarray:
    return np.ascontiguousarray(packed.reshape(-1, channels).T, dtype=np.float32)


def windows(source: Iterator[np.ndarray], window_s: float, search_s: float) -> Iterator[Window]:
    """Group decoded blocks into windows of at most ``window_s`` seconds, each cut at a quiet point."""
    size = int(window_s * SAMPLE_RATE)
    search = min(int(search_s * SAMPLE_RATE), size // 2)
    pending: list[np.ndarray] = []
    buffered = 0
    offset = 0
    for block in source:
        if not block.shape[1]:
            continue
        pending.append(block)
        buffered += int(block.shape[1])
        if buffered < size:
            continue
        buffer = np.concatenate(pending, axis=1)
        while buffer.shape[1] >= size:
            cut = quiet_cut(buffer, size - search, size)
            yield Window(offset, buffer[:, :cut].copy())
            offset += cut
            buffer = buffer[:, cut:]
        pending, buffered = [buffer], int(buffer.shape[1])
    if buffered:
        yield Window(offset, np.concatenate(pending, axis=1))


def quiet_cut(samples: np.ndarray, low: int, high: int) -> int:
    """The sample index in [low, high] that starts the quietest 100 ms frame (loudest channel counts); ``high``
    when the range holds no whole frame. The earliest of equally quiet frames wins, so the choice is deterministic."""
    low = max(0, low)
    count = (high - low) // FRAME
    if count <= 0:
        return high
    frames = samples[:, low : low + count * FRAME].reshape(samples.shape[0], count, FRAME)
    energy = np.square(frames, dtype=np.float64).mean(axis=2).max(axis=0)
    return low + int(np.argmin(energy)) * FRAME + FRAME // 2


def clips(samples: np.ndarray, max_s: float = 30.0, search_s: float = 5.0) -> list[tuple[int, int]]:
    """Consecutive (start, end) sample spans covering ``samples``, each at most ``max_s`` long and cut at quiet
    points: the batched pipeline decodes these spans side by side without a voice detector deciding what to keep."""
    size = int(max_s * SAMPLE_RATE)
    search = min(int(search_s * SAMPLE_RATE), size // 2)
    total = int(samples.shape[1])
    spans: list[tuple[int, int]] = []
    start = 0
    while total - start > size:
        cut = start + quiet_cut(samples[:, start : start + size], size - search, size - FRAME)
        spans.append((start, cut))
        start = cut
    if total > start:
        spans.append((start, total))
    return spans
