"""Decoding and cutting audio: windows and clips cut in silence, losing no sample."""

from __future__ import annotations

import itertools

import numpy as np

from syncd.audio.decode import FRAME, clips, quiet_cut, windows
from tests.unit.scenarios import SR, speechy


def _blocks(samples: np.ndarray, size: int = 4096) -> list[np.ndarray]:
    return [samples[:, i : i + size] for i in range(0, samples.shape[1], size)]


def test_windows_cut_in_silence_and_lose_no_sample() -> None:
    samples = speechy(200, gaps=[(55.0, 55.5), (110.0, 110.6), (165.0, 165.4)])
    out = list(windows(iter(_blocks(samples)), window_s=60, search_s=10))

    assert [round(w.start, 2) for w in out] == [0.0, 55.05, 110.1, 165.05]
    for w in out[1:]:
        assert not samples[0, w.offset - FRAME // 2 : w.offset + FRAME // 2].any()  # the cut is in the gap
    assert all(w.seconds <= 60 for w in out)
    assert [w.offset for w in out[1:]] == [a.offset + a.samples.shape[1] for a in out[:-1]]
    assert np.array_equal(np.concatenate([w.samples for w in out], axis=1), samples)


def test_a_short_recording_is_one_window() -> None:
    samples = speechy(12, gaps=[])
    (only,) = windows(iter(_blocks(samples)), window_s=600, search_s=10)
    assert only.offset == 0 and np.array_equal(only.samples, samples)


def test_quiet_cut_listens_to_the_loudest_channel() -> None:
    left = speechy(10, gaps=[(2.0, 2.5), (6.0, 6.5)])[0]
    right = speechy(10, gaps=[(6.0, 6.5)])[0]
    cut = quiet_cut(np.stack([left, right]), 0, 10 * SR)
    assert 6.0 * SR <= cut <= 6.5 * SR


def test_clips_are_contiguous_at_most_30_s_and_cut_in_silence() -> None:
    samples = speechy(95, gaps=[(27.0, 27.3), (54.0, 54.3), (81.0, 81.3)])
    spans = clips(samples)
    assert spans[0][0] == 0 and spans[-1][1] == samples.shape[1]
    assert all(b == c for (_, b), (c, _) in itertools.pairwise(spans))
    assert all(end - start <= 30 * SR for start, end in spans)
    assert [round(a / SR, 2) for a, _ in spans[1:]] == [27.05, 54.1, 81.05]
