"""Generate config.example.toml from the schema, so the sample can never drift from what is validated."""

from __future__ import annotations

import json
import textwrap
from typing import Any, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from syncd.config import Settings

HEADER = """\
# syncd configuration. Every key is shown with its default; uncomment and change what you need.
# Generated from the schema by `syncd config example`; validate a file with `syncd config validate -c FILE`.
# Secrets never go in this file: name an environment variable or a file (systemd LoadCredential) instead.
"""

EXAMPLE_SOURCES = [{"bucket": "my-recordings", "prefix": "calls/"}]


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot render {value!r}")


def default(field: FieldInfo) -> Any:
    if field.default_factory is not None:
        return field.default_factory()  # type: ignore[call-arg]
    return field.default


def is_section(field: FieldInfo) -> bool:
    annotation = field.annotation
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _comment(text: str) -> list[str]:
    return [f"# {line}" for line in textwrap.wrap(text, 112)]


def allowed(field: FieldInfo) -> list[str]:
    """The values a ``Literal`` key (or a list of them) takes; empty for a free-form key."""
    args = get_args(field.annotation)
    if get_origin(field.annotation) is list and args:
        args = get_args(args[0])
    return [a for a in args if isinstance(a, str)]


def _allowed(field: FieldInfo) -> str:
    literals = allowed(field)
    return f" One of: {', '.join(literals)}." if literals else ""


def _section(name: str, model: type[BaseModel], lines: list[str], values: dict[str, Any] | None = None) -> None:
    header = name if name.startswith("[[") else f"[{name}]"
    lines += ["", *_comment(model.__doc__ or ""), header]
    nested = []
    for key, field in model.model_fields.items():
        if is_section(field):
            nested.append((key, field))
            continue
        lines += _comment((field.description or "") + _allowed(field))
        value = (values or {}).get(key, default(field))
        if value is PydanticUndefined:
            raise ValueError(f"{name}.{key} needs an example value")
        prefix = "" if values and key in values else "# "
        lines.append(f"{prefix}{key} = {_toml_value(value)}")
    for key, field in nested:
        assert isinstance(field.annotation, type)
        _section(f"{name}.{key}", field.annotation, lines)


def render() -> str:
    lines = HEADER.rstrip("\n").splitlines()
    for key, field in Settings.model_fields.items():
        if is_section(field):
            assert isinstance(field.annotation, type)
            _section(key, field.annotation, lines)
        else:
            source_model = get_args(field.annotation)[0]
            for example in EXAMPLE_SOURCES:
                _section(f"[[{key}]]", source_model, lines, example)
    return "\n".join(lines).replace("\n\n\n", "\n\n") + "\n"
