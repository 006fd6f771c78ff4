"""Known sentences spoken by espeak-ng, in any format sox writes: test and demo audio made here, never downloaded."""

from __future__ import annotations

import random
import subprocess
import tempfile
from pathlib import Path


def speak(text: str, path: Path) -> Path:
    """Speak `text` with espeak-ng into `path`; the suffix picks the format (wav as is, others through sox)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".wav":
        subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True)
        return path
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-w", str(wav), text], check=True, capture_output=True)
        subprocess.run(["sox", str(wav), str(path)], check=True, capture_output=True)
    return path


SENTENCES = (
    "Please send the invoice to the accounting department by Friday.",
    "The meeting starts at ten in the morning on Monday.",
    "Thank you for calling customer support, how can I help you today?",
    "We need to review the contract before we sign it.",
)


_WHO = ("The customer", "Our team", "The engineer", "My manager", "The supplier", "The new hire", "The driver")
_DID = ("needs to check", "wants to change", "asked about", "forgot to send", "will review", "could not find")
_WHAT = (
    "the monthly invoice",
    "the delivery address",
    "the service contract",
    "the router settings",
    "the billing plan",
    "the spare parts order",
    "the meeting notes",
    "the insurance claim",
)
_WHEN = ("before Friday afternoon", "by the end of the week", "early next Monday", "after the holiday break")
_WHY = (
    "so please call me back when you can",
    "and I would like a written confirmation",
    "because the last attempt failed twice",
    "otherwise the account will be suspended",
    "and we can close the ticket after that",
)


def call_sentences(count: int, seed: int = 21) -> list[str]:
    """``count`` sentences of a support call (about 19 words each), the same for the same seed."""
    rng = random.Random(seed)
    return [
        f"{rng.choice(_WHO)} {rng.choice(_DID)} {rng.choice(_WHAT)} {rng.choice(_WHEN)}, {rng.choice(_WHY)}."
        for _ in range(count)
    ]


def long_call(path: Path, sentences: list[str], speed: int = 140) -> list[float]:
    """One recording of ``sentences`` spoken in turn by two voices (a call), as 16 kHz FLAC at ``path``; returns each
    turn's length in seconds. 80 sentences make about ten minutes, spoken in about two seconds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        clips = []
        for n, text in enumerate(sentences):
            clip = Path(tmp) / f"{n:04d}.wav"
            voice = "en-us" if n % 2 == 0 else "en-us+f3"
            subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(clip), text], check=True)
            clips.append(str(clip))
        seconds = [_seconds(c) for c in clips]
        subprocess.run(["sox", *clips, "-r", "16000", str(path)], check=True, capture_output=True)
    return seconds


def _seconds(clip: str) -> float:
    return float(subprocess.run(["soxi", "-D", clip], check=True, capture_output=True, text=True).stdout)
