"""Reading the config file: TOML in, validated ``Settings`` out, every problem phrased for the operator (the key,
the bad value with any password masked, what is allowed)."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from syncd.config.schema import Settings
from syncd.errors import ConfigError


def load(path: str | Path) -> Settings:
    """Read and validate a config file; every problem becomes one ConfigError naming key, value and rule."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (TOML files are UTF-8): byte {exc.start}") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    return parse(raw, source=str(path))


def parse(raw: dict[str, Any], source: str = "config") -> Settings:
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        lines = [_describe(err) for err in exc.errors()]
        raise ConfigError(f"{source}: invalid configuration\n  " + "\n  ".join(lines)) from None


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(loc: tuple[Any, ...]) -> str:
    """A key's path as TOML writes it: bare parts as they are, any other part quoted (a key with a space, a control
    character or a dot in it is shown for what it is, never as a path it is not)."""
    return ".".join(str(p) if isinstance(p, int) or _BARE_KEY.match(str(p)) else json.dumps(str(p)) for p in loc)


def _describe(err: Any) -> str:
    key = _key(err["loc"])
    if err["type"] == "extra_forbidden":
        return f"{key}: unknown key; allowed here: {', '.join(_allowed_keys(err['loc'][:-1]))}"
    if err["type"] == "missing":
        return f"{key}: required key is missing"
    message = err["msg"].removeprefix("Value error, ")
    return f"{key} = {_masked(err['input'])!r}: {message}"


_URL_PASSWORD = re.compile(r"(?<=://)([^/@:]*):[^/@]*@")


def _masked(value: Any) -> Any:
    """A URL's password never reaches an error message (nor, through it, the journal)."""
    return _URL_PASSWORD.sub(r"\1:***@", value) if isinstance(value, str) else value


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    model: Any = Settings
    for part in loc:
        if isinstance(part, int):
            continue
        annotation = model.model_fields[part].annotation
        model = getattr(annotation, "__args__", (annotation,))[0] if part == "sources" else annotation
    return sorted(model.model_fields)
