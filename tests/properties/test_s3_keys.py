"""S3 keys: any key an uploader can give (every unicode class S3 takes, up to its 1024-byte limit, dots, slashes and
spaces anywhere) is either watched, recorded exactly as it is and given outputs beside it within S3's key limit, or
skipped with a reason. Outputs never overwrite the audio, nor each other, nor another recording's."""

from __future__ import annotations

import itertools
import posixpath

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from syncd.domain.formats import OUTPUT_FORMATS
from syncd.domain.recording import AUDIO_SUFFIXES, S3Object, Status
from syncd.s3.storage import S3_MAX_KEY_BYTES, output_key
from syncd.stages.scan_record import skip_reason
from syncd.state import StateStore
from tests.properties.conftest import Border
from tests.unit.fakes import new_store

# S3 keys are UTF-8: every code point but the surrogates (which UTF-8 cannot encode).
characters = st.characters(exclude_categories=("Cs",))
segment = st.text(characters, max_size=40) | st.sampled_from(["", ".", "..", " ", "a.b", ".hidden", "x" * 300])
keys = st.builds(
    lambda parts, stem, suffix: "/".join([*parts, stem + suffix]),
    st.lists(segment, max_size=6),
    st.text(characters, max_size=80) | st.just("a" * 1010),
    st.sampled_from(AUDIO_SUFFIXES) | st.sampled_from([".MP3", ".Wav", ""]),
).filter(lambda k: 0 < len(k.encode()) <= S3_MAX_KEY_BYTES)
ETAGS = itertools.count()
sizes = st.sampled_from([0, 1, 1024, 2**31]) | st.integers(0, 2**40)


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> StateStore:
    return new_store(tmp_path_factory.mktemp("keys"), "keys.db")


@pytest.mark.border("S3 key")
@given(keys, sizes)
@example("calls/a.mp3", 1)
@example("a" * 1000 + ".mp3", 1)
@example("calls/.mp3", 1)
@example("calls/..mp3", 1)
@example("calls/\u202eevil\u202c.mp3", 1)
@example("calls/%2F..%2F/x.wav", 1)
@example("//double//slash.flac", 1)
def test_a_key_is_recorded_as_it_is_with_outputs_beside_it_or_skipped_by_name(
    border: Border, state: StateStore, key: str, size: int
) -> None:
    obj = S3Object("bucket", key, f"etag-{next(ETAGS)}", size)  # each example a new version
    reason = skip_reason(obj, max_size_mb=2048)
    if reason is not None:
        assert (size == 0) or size > 2048 * 1024 * 1024 or "key too long" in reason, reason
        border.refused_for(reason)
        return
    [(row_id, _)] = state.recordings.add_objects([obj])
    stored = state.recordings.get(row_id)
    assert (stored.key, stored.status) == (key, Status.DISCOVERED)
    folder = posixpath.dirname(key)
    outputs = {output_key(key, ".transcript", fmt, keep_audio_suffix=keep) for fmt in OUTPUT_FORMATS for keep in (0, 1)}
    assert len(outputs) in (len(OUTPUT_FORMATS), 2 * len(OUTPUT_FORMATS)) and key not in outputs
    for out in outputs:
        assert len(out.encode()) <= S3_MAX_KEY_BYTES, out
        assert posixpath.dirname(out) == folder, (key, out)
        assert not out.lower().endswith(tuple(s.lower() for s in AUDIO_SUFFIXES)), out  # never taken for audio
    border.took()


@pytest.mark.border("S3 key")
@given(keys, keys)
def test_two_keys_sharing_a_stem_never_share_an_output(border: Border, a: str, b: str) -> None:
    if a == b:
        return
    for fmt in OUTPUT_FORMATS:
        assert output_key(a, ".transcript", fmt, keep_audio_suffix=True) != output_key(
            b, ".transcript", fmt, keep_audio_suffix=True
        )
    border.took()
