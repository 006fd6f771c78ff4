"""The fast tier's shared fixtures: a typed stack of fakes (``tests.unit.fakes``) behind real Services."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.fakes import Stack, services


@pytest.fixture
def stack(tmp_path: Path) -> Stack:
    """Services over FakeLabelStudio, FakeStorage and FakeTranscriber, with the default test settings."""
    return services(tmp_path)
