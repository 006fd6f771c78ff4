"""Config values: any value of any type an operator can write for any key (and keys that do not exist) gives a
running configuration or one ConfigError (exit 78) whose every line names the key it is about; nothing else."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import BaseModel

from syncd.config import Settings
from syncd.config.load import load, parse
from syncd.config.sample import is_section
from syncd.errors import ConfigError
from tests.properties.conftest import Border


def _keys(model: type[BaseModel], prefix: str = "") -> dict[str, list[str]]:
    """section path -> its keys, for every table of the schema."""
    found: dict[str, list[str]] = {prefix: []}
    for name, field in model.model_fields.items():
        if is_section(field):
            assert isinstance(field.annotation, type)
            found |= _keys(field.annotation, f"{prefix}.{name}".strip("."))
        elif name != "sources":
            found[prefix].append(name)
    return found


SECTIONS = {path: keys for path, keys in _keys(Settings).items() if path}
SOURCE_KEYS = list(Settings.model_fields["sources"].annotation.__args__[0].model_fields)  # type: ignore[union-attr]
values = (
    st.none().map(lambda _: "")
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["http://u:p@h:1/x", "s3://b/p", "0", "-1", "aws", "whisper", "cuda", "1e309", "en", "{year}"])
    | st.lists(st.text(max_size=5) | st.integers(), max_size=3)
    | st.dictionaries(st.text(max_size=5), st.integers(), max_size=2)
)


@st.composite
def configs(draw: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for path in draw(st.lists(st.sampled_from(sorted(SECTIONS)), max_size=4, unique=True)):
        table = raw
        for part in path.split("."):
            table = table.setdefault(part, {})
        for key in draw(st.lists(st.sampled_from(SECTIONS[path] or ["x"]), max_size=3, unique=True)):
            table[key] = draw(values)
        if draw(st.integers(0, 9)) == 0:
            table[draw(st.text(min_size=1, max_size=6))] = draw(values)
    sources = draw(st.lists(st.dictionaries(st.sampled_from(SOURCE_KEYS), values, max_size=3), max_size=2))
    if draw(st.booleans()):
        sources.append({"bucket": "recordings"})
    if sources or draw(st.booleans()):
        raw["sources"] = sources
    if draw(st.integers(0, 9)) == 0:
        raw[draw(st.text(min_size=1, max_size=6))] = draw(values)
    return raw


def _first_part(problem: str) -> str:
    """The first part of the key a problem line starts with, unquoted."""
    if problem.startswith('"'):
        return str(json.JSONDecoder().raw_decode(problem)[0])
    return re.split(r"[.: ]", problem, maxsplit=1)[0]


@pytest.mark.border("config value")
@given(configs())
@example({"sources": [{"bucket": "recordings"}]})
@example({"\x85": ""})
@example({"sources": [{"bucket": "recordings"}], "labelstudio": {"a.b c": 1}})
@example({"sources": [{"bucket": "recordings"}], "transcriber": {"engine": "google"}})
@example({"sources": [{"bucket": "recordings"}], "state": {"url": "postgresql://syncd:hunter2@db/syncd", "path": 1}})
def test_a_config_runs_or_every_problem_names_its_key(border: Border, raw: dict[str, Any]) -> None:
    try:
        parse(raw, source="config.toml")
    except ConfigError as exc:
        first, *problems = str(exc).split("\n")
        assert first == "config.toml: invalid configuration" and problems, str(exc)
        for line in problems:
            assert line.startswith("  "), line
            top = _first_part(line[2:])
            assert top in raw or top in Settings.model_fields, (top, line)
            assert "hunter2" not in line, line
        border.refused_for(problems[0].split(":", 1)[-1])
        return
    border.took()


@pytest.mark.border("config file")
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
@example(b"\xff\xfe[labelstudio]\n")
@example(b'[[sources]]\nbucket = "recordings"\n')
def test_a_config_file_of_any_bytes_runs_or_stops_with_exit_78(
    border: Border, tmp_path_factory: Any, body: bytes
) -> None:
    path = tmp_path_factory.mktemp("config") / "config.toml"
    path.write_bytes(body)
    try:
        load(path)
    except ConfigError as exc:
        assert str(path) in str(exc), str(exc)
        border.refused_for(str(exc).replace(str(path), "FILE"))
        return
    border.took()
