"""Audio clips of a recording, cut sample-exactly, for review units.

The recording is decoded once, as a stream, and each span is encoded to its own FLAC file: lossless, so the clip
sounds as the original does, and sample-exact, so a time on the clip plus the span's start is the time in the
original. Memory stays at one decoded block; the clips go to files, not to memory. Each block beats the stage's
heartbeat, so cutting a long recording is never taken for a hang.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from syncd.audio.decode import AudioError, decoded_frames
from syncd.heartbeat import beat
from syncd.log import describe_error

SUFFIX = ".flac"


def cut(source: Path, spans: list[tuple[float, float]], folder: Path) -> list[Path]:
    """One FLAC file per (start, end) span, in order; the spans must be sorted and must not overlap."""
    import av

    paths = [folder / f"clip-{n:03d}{SUFFIX}" for n in range(len(spans))]
    try:
        with av.open(str(source), metadata_errors="ignore") as container, ExitStack() as stack:
            if not container.streams.audio:
                raise AudioError("the file has no audio stream")
            stream = container.streams.audio[0]
            rate = int(stream.codec_context.sample_rate or 16_000)
            layout = "mono" if (stream.codec_context.channels or 1) == 1 else "stereo"
            bounds = [(round(a * rate), round(b * rate)) for a, b in spans]
            writers = [stack.enter_context(_Writer(p, rate, layout)) for p in paths]
            position = 0
            for block in _blocks(container, stream, rate, layout):
                beat()
                for (low, high), writer in zip(bounds, writers, strict=True):
                    a, b = max(low - position, 0), min(high - position, block.shape[1])
                    if a < b:
                        writer.write(block[:, a:b])
                position += block.shape[1]
    except av.error.FFmpegError as exc:
        raise AudioError(describe_error(exc)) from exc
    return paths


def _blocks(container: Any, stream: Any, rate: int, layout: str) -> Iterator[np.ndarray]:
    """Decoded 16-bit blocks of shape (channels, n) at the file's own rate."""
    import av

    resampler = av.AudioResampler(format="s16p", layout=layout, rate=rate)
    for frame in decoded_frames(container, stream):
        for out in resampler.resample(frame):
            yield out.to_ndarray()
    for out in resampler.resample(None):
        yield out.to_ndarray()


class _Writer:
    """One FLAC file being encoded; samples go in as (channels, n) int16 blocks."""

    def __init__(self, path: Path, rate: int, layout: str) -> None:
        self.path, self.rate, self.layout = path, rate, layout
        self.written = 0

    def __enter__(self) -> _Writer:
        import av

        self.container = av.open(str(self.path), "w", format="flac")
        self.stream = self.container.add_stream("flac", rate=self.rate, layout=self.layout)
        return self

    def write(self, samples: np.ndarray) -> None:
        import av

        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples.T.reshape(1, -1)), format="s16", layout=self.layout
        )
        frame.sample_rate, frame.pts = self.rate, self.written
        self.written += samples.shape[1]
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def __exit__(self, *exc: object) -> None:
        try:
            for packet in self.stream.encode(None):
                self.container.mux(packet)
        finally:
            self.container.close()
