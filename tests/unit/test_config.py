"""Config validation: every error names the key, the bad value and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd import cli, exitcodes
from syncd.config import ConfigError, load, parse, read_secret
from syncd.sample import render

REPO = Path(__file__).resolve().parents[2]
MINIMAL = {"sources": [{"bucket": "b"}]}


def error_for(raw: dict) -> str:
    with pytest.raises(ConfigError) as info:
        parse(raw)
    return str(info.value)


def test_minimal_config_gets_documented_defaults() -> None:
    settings = parse(MINIMAL)
    assert settings.transcriber.engine == "whisper"
    assert settings.labelstudio.layout == "segments"
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


def test_cli_exits_with_config_code_and_names_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[[sources]]\nbucket = "b"\n[labelstudio]\nlayout = "grid"\n')
    assert cli.main(["once", "-c", str(path)]) == exitcodes.CONFIG
    err = capsys.readouterr().err
    assert "labelstudio.layout = 'grid'" in err and "'segments' or 'whole'" in err


def test_missing_token_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    path = tmp_path / "c.toml"
    path.write_text(f'[[sources]]\nbucket = "b"\n[state]\npath = "{tmp_path / "s.db"}"\n')
    assert cli.main(["once", "-c", str(path)]) == exitcodes.CONFIG
    assert "LABEL_STUDIO_API_KEY" in capsys.readouterr().err


def test_secret_from_credentials_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ls-token").write_text("abc123\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    monkeypatch.setenv("SOME_ENV", "from-env")
    assert read_secret("SOME_ENV", "ls-token") == "abc123"
    assert read_secret("SOME_ENV") == "from-env"
    with pytest.raises(ConfigError, match="cannot read secret file"):
        read_secret("SOME_ENV", "missing")


def test_example_config_is_generated_from_the_schema_and_valid() -> None:
    example = REPO / "config.example.toml"
    assert example.read_text() == render(), "regenerate with: syncd config example > config.example.toml"
    settings = load(example)
    assert settings.sources[0].bucket == "my-recordings"


def test_state_url_is_postgresql_without_a_password(monkeypatch: pytest.MonkeyPatch) -> None:
    held = error_for({**MINIMAL, "state": {"url": "postgresql://syncd:hunter2@db/syncd"}})
    assert "state.url = 'postgresql://syncd:***@db/syncd'" in held and "must not hold the password" in held
    assert "hunter2" not in held
    assert "postgresql://" in error_for({**MINIMAL, "state": {"url": "mysql://db/syncd"}})
    settings = parse({**MINIMAL, "state": {"url": "postgresql://syncd@db:5432/syncd"}})
    monkeypatch.delenv("SYNCD_STATE_PASSWORD", raising=False)
    assert settings.state.target() == "postgresql://syncd@db:5432/syncd"
    monkeypatch.setenv("SYNCD_STATE_PASSWORD", "p@ss/word")
    assert settings.state.target() == "postgresql://syncd:p%40ss%2Fword@db:5432/syncd"
    assert parse(MINIMAL).state.target() == "/var/lib/syncd/state.db"


def test_roles_name_the_stages() -> None:
    message = error_for({**MINIMAL, "instance": {"roles": ["transcribe", "gpu"]}})
    assert "instance.roles.1 = 'gpu'" in message and "'scan', 'transcribe', 'import' or 'export'" in message
    assert "lists a role twice" in error_for({**MINIMAL, "instance": {"roles": ["scan", "scan"]}})
    assert "instance.roles" in error_for({**MINIMAL, "instance": {"roles": []}})
