"""One normalized transcript shape shared by every engine, the Label Studio layouts and the output writers."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

LONGEST_SECONDS = 360_000.0
"""No time in a recording lies past 100 hours (an Amazon Transcribe batch job takes 4 h at most): a later one is a
broken input, and the subtitle formats cannot write it."""


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    text: str
    confidence: float | None = None
    speaker: str | None = None


@dataclass(frozen=True)
class Segment:
    """A stretch of speech shown to a reviewer as one region: a speaker turn or a sentence."""

    start: float
    end: float
    text: str
    speaker: str | None = None
    confidence: float | None = None
    words: tuple[Word, ...] = ()
    asr_text: str | None = None

    @classmethod
    def from_words(cls, words: list[Word], speaker: str | None = None) -> Segment:
        text = join_words(w.text for w in words)
        return cls(
            start=words[0].start,
            end=words[-1].end,
            text=text,
            speaker=speaker,
            confidence=mean_confidence(words),
            words=tuple(words),
        )


@dataclass(frozen=True)
class Transcript:
    segments: tuple[Segment, ...]
    engine: str
    model: str
    language: str | None = None
    job: str | None = None
    duration: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.segments if s.text)

    @property
    def words(self) -> list[Word]:
        return [w for s in self.segments for w in s.words]

    @property
    def confidence(self) -> float | None:
        """Mean word confidence: the task's prediction score, so reviewers see the least sure first."""
        return mean_confidence(self.words)

    @property
    def speakers(self) -> list[str]:
        return sorted({s.speaker for s in self.segments if s.speaker})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transcript:
        segments = tuple(
            Segment(**{**s, "words": tuple(Word(**w) for w in s.get("words", ()))}) for s in data.get("segments", ())
        )
        return cls(**{**data, "segments": segments})


def mean_confidence(words: Any) -> float | None:
    """Mean confidence over words that carry one; punctuation and unscored tokens do not count."""
    scores = [w.confidence for w in words if w.confidence is not None]
    if not scores:
        return None
    return round(sum(scores) / len(scores), 4)


_NO_SPACE_BEFORE = set(".,!?;:%)]}'\u2019\u3002\u3001")


def join_words(tokens: Any) -> str:
    """Join ASR tokens into text: punctuation sticks to the word before it."""
    out = ""
    for raw in tokens:
        token = raw.strip()
        if not token:
            continue
        if out and not (token[0] in _NO_SPACE_BEFORE and len(token) == 1):
            out += " "
        out += token
    return out
