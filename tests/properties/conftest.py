"""Property-based tests at every border where syncd takes input it does not control.

Each test draws inputs with Hypothesis and asserts the property: syncd never crashes, never writes a wrong output,
and each input is either handled or refused with a named reason. ``Border`` counts what was tried and how each
input ended; the session prints one table (and ``$SYNCD_PROPERTIES_REPORT``, if set, gets it as JSON).

Profiles (``HYPOTHESIS_PROFILE``): ``suite`` (the default, bounded for ``./scripts/test``: 200 examples per test, the
same ones on every run) and ``nightly`` (25x the examples, new ones each run, no deadline):
``HYPOTHESIS_PROFILE=nightly .venv/bin/pytest tests/properties``.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "suite",
    max_examples=200,
    deadline=None,
    derandomize=True,  # the same examples on every run: ./scripts/test passes or fails the same way twice
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile("nightly", max_examples=5000, deadline=None, suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))


@dataclass
class Border:
    """What one border was given: inputs tried, handled, and refused by reason (the reason's first words)."""

    name: str
    tried: int = 0
    handled: int = 0
    refused: Counter[str] = field(default_factory=Counter)

    def took(self) -> None:
        self.tried += 1
        self.handled += 1

    def refused_for(self, reason: str) -> None:
        self.tried += 1
        self.refused[_reason_kind(reason)] += 1


def _reason_kind(reason: str) -> str:
    """A refusal's reason without the values in it, so that refusals count by kind."""
    bare = re.sub(r"'[^']*'|\"[^\"]*\"|\[.*\]|\{.*\}|\(.*\)|-?\d[\w.+-]*", "_", reason)
    words = [w for w in bare.replace(":", " ").split() if w != "_"]
    return " ".join(words[:7])


BORDERS: dict[str, Border] = {}


@pytest.fixture
def border(request: pytest.FixtureRequest) -> Border:
    name = request.node.get_closest_marker("border")
    assert name is not None, "a property test names its border: @pytest.mark.border('...')"
    return BORDERS.setdefault(name.args[0], Border(name.args[0]))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "border(name): the input border a property test draws for")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not BORDERS:
        return
    write = terminalreporter.write_line
    write("")
    profile = os.environ.get("HYPOTHESIS_PROFILE", "suite")
    write(f"property tests ({settings().max_examples} examples per test, profile {profile}):")
    for b in sorted(BORDERS.values(), key=lambda b: b.name):
        refusals = ", ".join(f"{reason!r} {n}" for reason, n in b.refused.most_common(6)) or "none"
        counts = f"tried {b.tried:>6}  handled {b.handled:>6}  refused {sum(b.refused.values()):>6}"
        write(f"  {b.name:<22} {counts}: {refusals}")
    report = os.environ.get("SYNCD_PROPERTIES_REPORT")
    if report:
        Path(report).write_text(json.dumps({n: _as_dict(b) for n, b in BORDERS.items()}, indent=1))


def _as_dict(b: Border) -> dict[str, object]:
    return {"tried": b.tried, "handled": b.handled, "refused": dict(b.refused)}


@pytest.fixture(scope="session", autouse=True)
def _borders_reset() -> Iterator[None]:
    BORDERS.clear()
    yield
