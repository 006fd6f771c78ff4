"""config.example.toml is generated from the schema, and valid."""

from __future__ import annotations

from pathlib import Path

from syncd.config import load
from syncd.config.sample import render

REPO = Path(__file__).resolve().parents[3]


def test_example_config_is_generated_from_the_schema_and_valid() -> None:
    example = REPO / "config.example.toml"
    assert example.read_text() == render(), "regenerate with: syncd config example > config.example.toml"
    settings = load(example)
    assert settings.sources[0].bucket == "my-recordings"
