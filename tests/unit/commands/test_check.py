"""`syncd check`: each check a line, a failure worded with what to do, the tally and the exit code."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd import errors
from syncd.commands.check import Check, checks, refusal_checks, run_checks
from syncd.config import Settings
from syncd.state import refusals
from tests.unit.fakes import new_store, settings


def test_a_check_is_one_line_saying_ok_or_fail() -> None:
    assert Check("state", True, "opened").line() == "ok   state: opened"
    assert Check("s3.list s3://b/", False, "AccessDenied").line() == "FAIL s3.list s3://b/: AccessDenied"


def test_the_tally_and_the_exit_code_follow_the_failures(tmp_path: Path) -> None:
    def found(_settings: Settings, path: str) -> Iterator[Check]:
        yield Check("config", True, f"{path}: valid")
        yield Check("labelstudio.auth", False, "token refused")

    lines: list[str] = []
    assert run_checks(settings(tmp_path), "syncd.toml", lines.append, found) == errors.CHECK_FAILED
    assert lines == ["ok   config: syncd.toml: valid", "FAIL labelstudio.auth: token refused", "1 check(s) failed"]
    lines.clear()
    assert run_checks(settings(tmp_path), "x", lines.append, lambda *_: iter([Check("a", True, "b")])) == errors.OK
    assert lines[-1] == "all checks passed"


def test_the_config_and_the_state_come_first_and_a_missing_token_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    config, state, token = itertools.islice(checks(settings(tmp_path), "syncd.toml"), 3)
    assert config == Check("config", True, "syncd.toml: valid (1 source(s), engine whisper)")
    assert state.ok and state.name == "state" and state.detail.endswith("opened (0 recordings)")
    assert token.name == "labelstudio.token" and not token.ok and "LABEL_STUDIO_API_KEY" in token.detail


def test_a_refusal_the_daemon_met_is_a_failed_check_with_its_remedy(tmp_path: Path) -> None:
    state = new_store(tmp_path)
    state.refusals.record(refusals.STORAGE, 3, "s3://b", "HTTP 400: forbidden address")
    (check,) = refusal_checks(settings(tmp_path), state.refusals.all_known())
    assert (check.name, check.ok) == ("labelstudio.storage", False)
    assert check.detail.startswith("project 3 (s3://b): refused, HTTP 400: forbidden address; meanwhile tasks import")
    assert check.detail.endswith(refusals.REMEDY)


def test_a_webhook_with_no_refusal_recorded_is_ok_when_a_public_url_is_set(tmp_path: Path) -> None:
    assert list(refusal_checks(settings(tmp_path), [])) == []
    (check,) = refusal_checks(settings(tmp_path, http={"public_url": "https://syncd.example.org"}), [])
    assert check.ok and check.name == "labelstudio.webhook"
