"""Secrets never live in the config file: it names an environment variable or a file (systemd's ``LoadCredential=``
puts them under ``$CREDENTIALS_DIRECTORY``) and the value is read from there."""

from __future__ import annotations

import os
from pathlib import Path

from syncd.errors import ConfigError


def read_secret(env_name: str, file_name: str = "") -> str | None:
    """A secret from a file (absolute, or under $CREDENTIALS_DIRECTORY) or else from an environment variable."""
    if file_name:
        path = Path(file_name)
        if not path.is_absolute():
            path = Path(os.environ.get("CREDENTIALS_DIRECTORY", ".")) / path
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read secret file {path}: {exc.strerror}") from exc
    return os.environ.get(env_name) or None
