"""Known sentences spoken by espeak-ng, in any format sox writes: test and demo audio made here, never downloaded."""

from __future__ import annotations

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
