"""The fast tier's shared fixtures: a typed stack of fakes (``tests.unit.fakes``) behind real Services."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.config import S3Settings, TranscriberSettings
from syncd.s3.storage import Storage
from syncd.transcribers.aws import AwsTranscriber
from tests.unit.fakes import Stack, services


@pytest.fixture
def stack(tmp_path: Path) -> Stack:
    """Services over FakeLabelStudio, FakeStorage and FakeTranscriber, with the default test settings."""
    return services(tmp_path)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> AwsTranscriber:
    """The Amazon Transcribe engine with stand-in credentials and default S3 settings (no request leaves the test
    unless it sets up botocore's Stubber on ``aws.client``)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    s3 = S3Settings()
    return AwsTranscriber(TranscriberSettings(engine="aws", language="en-US"), s3, Storage(s3))
