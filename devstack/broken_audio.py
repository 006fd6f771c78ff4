"""A corpus of broken and extreme audio, made with espeak-ng and sox (Debian's) from a fixed seed: what any uploader
may put in a bucket. Each file says what it is and how long its audio really is (None where nothing is decodable by
design), so a test can check the decode path against it.

    python -m devstack.broken_audio DIR [--long-minutes 90]
"""

from __future__ import annotations

import argparse
import random
import struct
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from devstack.audio import SENTENCES, speak


@dataclass(frozen=True)
class Sample:
    path: Path
    kind: str
    """The family: intact, truncated, wrong-container, noise-body, lying-header, extreme, silence, long, garbage."""
    seconds: float | None
    """How long its audio is (the decodable part at most, for a truncated file); None: not audio at all."""
    at_most: bool = False
    """``seconds`` is an upper bound (a truncated file decodes to less)."""
    refused: bool = False
    """Decodable in principle, but must be refused: what it would decode to is not the recording."""


def _sox(*args: str) -> None:
    subprocess.run(["sox", *args], check=True, capture_output=True)


def _duration(path: Path) -> float:
    out = subprocess.run(["soxi", "-D", str(path)], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def corpus(folder: Path, *, seed: int = 35, long_minutes: float = 90.0) -> list[Sample]:
    """Make the corpus under ``folder`` (about 70 files; the long one takes a few seconds) and describe it."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    speech = speak(" ".join(SENTENCES[:2]), folder / "speech.wav")
    seconds = _duration(speech)
    samples: list[Sample] = []
    encoded: dict[str, Path] = {}
    for fmt, args in {"wav": (), "mp3": ("-C", "32"), "flac": (), "ogg": ()}.items():
        path = folder / f"intact.{fmt}"
        _sox(str(speech), *args, str(path))
        encoded[fmt] = path
        samples.append(Sample(path, "intact", _duration(path)))
    samples += _truncated(folder, encoded, rng, seconds)
    samples += _wrong_containers(folder, encoded)
    samples += _noise_bodies(folder, rng)
    samples += _lying_headers(folder, speech, seconds)
    samples += _extremes(folder, speech, seconds)
    samples += _silences(folder, long_minutes)
    samples += [
        _write(folder / f"garbage-{i}.{fmt}", rng.randbytes(rng.randint(1, 20_000)), "garbage", None)
        for i, fmt in enumerate(("wav", "mp3", "flac", "ogg", "m4a"))
    ]
    samples.append(_write(folder / "empty-text.mp3", b"this is not audio\n", "garbage", None))
    return samples


def _write(
    path: Path, body: bytes, kind: str, seconds: float | None, at_most: bool = False, refused: bool = False
) -> Sample:
    path.write_bytes(body)
    return Sample(path, kind, seconds, at_most, refused)


def _truncated(folder: Path, encoded: dict[str, Path], rng: random.Random, seconds: float) -> Iterator[Sample]:
    for fmt in ("wav", "mp3", "flac", "ogg"):
        body, seconds = encoded[fmt].read_bytes(), _duration(encoded[fmt])
        cuts = sorted(
            {1, 12, 44, 200, len(body) // 2, len(body) - 7, *(rng.randint(1, len(body) - 1) for _ in range(4))}
        )
        for cut in cuts:
            yield _write(folder / f"truncated-{cut}.{fmt}", body[:cut], "truncated", seconds, at_most=True)


def _wrong_containers(folder: Path, encoded: dict[str, Path]) -> Iterator[Sample]:
    for source, named in (("mp3", "wav"), ("flac", "mp3"), ("ogg", "m4a"), ("wav", "flac"), ("mp3", "ogg")):
        body = encoded[source].read_bytes()
        yield _write(folder / f"{source}-named.{named}", body, "wrong-container", _duration(encoded[source]))


def _wav_header(data_bytes: int, rate: int = 16_000, channels: int = 1, riff: int | None = None) -> bytes:
    riff_size = 36 + data_bytes if riff is None else riff
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * channels * 2, channels * 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", riff_size & 0xFFFFFFFF)
        + b"WAVEfmt "
        + struct.pack("<I", 16)
        + fmt
        + (b"data" + struct.pack("<I", data_bytes & 0xFFFFFFFF))
    )


def _noise_bodies(folder: Path, rng: random.Random) -> Iterator[Sample]:
    body = rng.randbytes(32_000 * 3)
    yield _write(folder / "noise-body.wav", _wav_header(len(body)) + body, "noise-body", 3.0)
    yield _write(
        folder / "noise-body.mp3", b"ID3\x03\x00\x00\x00\x00\x00\x00" + rng.randbytes(40_000), "noise-body", None
    )
    yield _write(folder / "noise-body.flac", b"fLaC" + rng.randbytes(40_000), "noise-body", None)


def _lying_headers(folder: Path, speech: Path, seconds: float) -> Iterator[Sample]:
    pcm = folder / "pcm16k.raw"
    _sox(str(speech), "-t", "raw", "-e", "signed", "-b", "16", "-c", "1", "-r", "16000", str(pcm))
    data = pcm.read_bytes()
    real = len(data) / 32_000
    yield _write(folder / "lies-longer.wav", _wav_header(0xFFFFFFFF) + data, "lying-header", real)
    yield _write(folder / "lies-shorter.wav", _wav_header(3200) + data, "lying-header", real, at_most=True)
    yield _write(folder / "lies-riff.wav", _wav_header(len(data), riff=7) + data, "lying-header", real)
    # 1 Hz: six seconds of samples would decode to 27 hours of "audio"
    yield _write(folder / "lies-rate.wav", _wav_header(len(data), rate=1) + data, "lying-header", None, refused=True)


def _extremes(folder: Path, speech: Path, seconds: float) -> Iterator[Sample]:
    cases: dict[str, tuple[str, ...]] = {
        "rate-8000.wav": ("rate", "8000"),
        "rate-96000.flac": ("rate", "96000"),
        "rate-192000.wav": ("rate", "192000"),
        "channels-6.wav": ("channels", "6"),
        "channels-8.flac": ("channels", "8"),
        "stereo.mp3": ("channels", "2"),
    }
    for name, effect in cases.items():
        path = folder / name
        _sox(str(speech), str(path), *effect)
        yield Sample(path, "extreme", _duration(path))
    one = folder / "one-sample.wav"
    yield _write(one, _wav_header(2) + b"\x00\x01", "extreme", 1 / 16_000)


def _silences(folder: Path, long_minutes: float) -> Iterator[Sample]:
    silence = folder / "silence-10min.wav"
    _sox("-n", "-r", "8000", "-c", "1", str(silence), "trim", "0", "600")
    yield Sample(silence, "silence", 600.0)
    if long_minutes:
        long = folder / f"long-{long_minutes:g}min.mp3"
        _sox("-n", "-r", "8000", "-c", "1", "-C", "8", str(long), "trim", "0", str(long_minutes * 60))
        yield Sample(long, "long", _duration(long))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--long-minutes", type=float, default=90.0)
    args = parser.parse_args()
    for sample in corpus(args.folder, long_minutes=args.long_minutes):
        print(f"{sample.kind:<16} {sample.seconds!s:<10} {sample.path.name}")


CORPUS: Callable[..., list[Sample]] = corpus

if __name__ == "__main__":
    main()
