"""Loading the config: every problem names the key, the bad value and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.config import load, parse
from syncd.errors import ConfigError
from tests.unit.scenarios import MINIMAL, error_for


def test_minimal_config_gets_documented_defaults() -> None:
    settings = parse(MINIMAL)
    assert settings.transcriber.engine == "whisper"
    assert settings.labelstudio.layout == "transcript"
    assert settings.output.formats == ["txt", "json", "srt", "vtt"]
    assert settings.sources[0].suffixes[0] == ".mp3"


def test_bad_enum_names_key_value_and_choices() -> None:
    message = error_for({**MINIMAL, "transcriber": {"engine": "google"}})
    assert "transcriber.engine = 'google'" in message
    assert "'whisper' or 'aws'" in message


def test_unknown_key_lists_allowed_keys() -> None:
    message = error_for({**MINIMAL, "labelstudio": {"urll": "http://x"}})
    assert "labelstudio.urll: unknown key" in message
    assert "url" in message and "api_key_env" in message


def test_unknown_key_in_sources_table() -> None:
    message = error_for({"sources": [{"bucket": "b", "prefx": "calls/"}]})
    assert "sources.0.prefx: unknown key" in message
    assert "prefix" in message


def test_missing_sources_and_bucket() -> None:
    assert "sources: required key is missing" in error_for({})
    assert "sources.0.bucket: required key is missing" in error_for({"sources": [{"prefix": "x"}]})


def test_range_and_type_errors() -> None:
    message = error_for({**MINIMAL, "labelstudio": {"import_batch_size": 0}, "schedule": {"scan_interval": "often"}})
    assert "labelstudio.import_batch_size = 0" in message and "greater than or equal to 1" in message
    assert "schedule.scan_interval = 'often'" in message


def test_bad_suffix_and_format_and_url() -> None:
    message = error_for(
        {
            "sources": [{"bucket": "b", "suffixes": [".mp3", ".doc"]}],
            "output": {"formats": ["txt", "pdf"]},
            "labelstudio": {"url": "localhost:8080"},
        }
    )
    assert "sources.0.suffixes" in message and "'.doc'" in message and ".flac" in message
    assert "output.formats.1 = 'pdf'" in message and "'srt'" in message
    assert "labelstudio.url = 'localhost:8080': must start with http:// or https://" in message


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[labelstudio\nurl = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(bad)
    with pytest.raises(ConfigError, match="config file not found"):
        load(tmp_path / "nope.toml")
