"""Fixtures over the real stack in tests/stack.py; tests that use `stack` are marked `integration`."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack import Postgres, Stack, running_stack

_bucket_numbers = itertools.count()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if {"stack", "postgres"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    with running_stack() as running:
        yield running


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    """A real PostgreSQL server (Debian's package) for the shared-state tests, started once."""
    with Postgres("postgres", tmp_path_factory.mktemp("postgres")) as server:
        yield server


@pytest.fixture
def s3(stack: Stack) -> Any:
    return stack.s3.client()


@pytest.fixture
def ls(stack: Stack) -> Any:
    return stack.labelstudio.client()


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"rec-{os.getpid()}-{next(_bucket_numbers)}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def config_file(stack: Stack, bucket: str, tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """A config for this test's bucket and its own Label Studio project."""
    path = tmp_path / "syncd.toml"
    project = f"t {request.node.name}"[:48]
    path.write_text(stack.config(tmp_path, bucket, project=project))
    return path
