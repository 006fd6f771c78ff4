"""Configuration: one TOML file, one schema (``schema``) that validates it, documents it and renders
``config.example.toml`` (``sample``); ``load`` reads the file and ``secrets`` the values it only names."""

from syncd.config.load import load, parse
from syncd.config.schema import (
    AwsTranscribeSettings,
    HttpSettings,
    InstanceSettings,
    LabelStudioSettings,
    LogSettings,
    OutputSettings,
    ReviewSettings,
    Role,
    S3Settings,
    ScheduleSettings,
    Settings,
    SourceSettings,
    StateSettings,
    TranscriberSettings,
    WhisperSettings,
    WhisperVadSettings,
)
from syncd.config.secrets import read_secret

__all__ = [
    "AwsTranscribeSettings",
    "HttpSettings",
    "InstanceSettings",
    "LabelStudioSettings",
    "LogSettings",
    "OutputSettings",
    "ReviewSettings",
    "Role",
    "S3Settings",
    "ScheduleSettings",
    "Settings",
    "SourceSettings",
    "StateSettings",
    "TranscriberSettings",
    "WhisperSettings",
    "WhisperVadSettings",
    "load",
    "parse",
    "read_secret",
]
