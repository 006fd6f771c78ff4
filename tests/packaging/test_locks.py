"""The locks under locks/ against what they lock: a range changed in pyproject.toml or a locks/*.in without
``scripts/lock`` fails here, naming the lock, the requirement and the refresh command. Fast, no stack, no network."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from devstack.locks import LOCKS, PYPROJECT_LOCKS, REFRESH, entries, inputs, mismatches, moved, pins, requirements

ROOT = LOCKS.parent


def _fail(lock: Path, source: str, problems: list[str]) -> None:
    if problems:
        pytest.fail(f"locks/{lock.name} no longer matches {source}: {'; '.join(problems)}. {REFRESH}", pytrace=False)


@pytest.mark.parametrize("name", sorted(PYPROJECT_LOCKS))
def test_a_lock_made_from_pyproject_matches_its_ranges(name: str) -> None:
    _fail(LOCKS / name, "pyproject.toml", mismatches(LOCKS / name, requirements(PYPROJECT_LOCKS[name])))


@pytest.mark.parametrize("source", sorted(LOCKS.glob("*.in")), ids=lambda p: p.name)
def test_a_lock_made_from_an_input_file_matches_it(source: Path) -> None:
    lock = source.with_suffix(".txt")
    assert lock.exists(), f"locks/{source.name} has no lock: {REFRESH}"
    _fail(lock, f"locks/{source.name}", mismatches(lock, inputs(source)))


@pytest.mark.parametrize("name", ["syncd.txt", "syncd-whisper.txt"])
def test_a_runtime_lock_pins_what_the_tests_run(name: str) -> None:
    """A production install gets the very versions the suite ran: each runtime pin is the development lock's."""
    dev, runtime = pins(LOCKS / "dev.txt"), pins(LOCKS / name)
    differ = [f"{p} {mine} vs {theirs}" for p, theirs, mine in moved(dev, runtime) if mine != "-"]
    assert not differ, f"locks/{name} and locks/dev.txt pin differently: {differ}. {REFRESH}"


@pytest.mark.parametrize("lock", sorted(LOCKS.glob("*.txt")), ids=lambda p: p.name)
def test_every_pin_has_a_hash(lock: Path) -> None:
    unhashed = [e.split()[0] for e in entries(lock) if "--hash=sha256:" not in e]
    assert not unhashed, f"locks/{lock.name}: no hash for {unhashed}. {REFRESH}"


def test_the_stack_installs_each_label_studio_release_from_its_lock() -> None:
    script = (ROOT / "scripts" / "stack-install.sh").read_text()
    versions = set(re.findall(r"^(?:OLD_)?LABEL_STUDIO_VERSION=(\S+)$", script, re.M))
    locked = {p.stem.removeprefix("label-studio-") for p in LOCKS.glob("label-studio-*.in")}
    assert versions == locked, f"scripts/stack-install.sh runs {sorted(versions)}, locks/ has {sorted(locked)}"


def test_a_stale_lock_is_named_with_the_refresh_command(tmp_path: Path) -> None:
    """The failure a person sees after narrowing a range without refreshing: the lock, the range, the command."""
    lock = tmp_path / "syncd.txt"
    lock.write_text("structlog==24.1.0 \\\n    --hash=sha256:00\n")
    assert mismatches(lock, [Requirement("structlog>=25"), Requirement("orjson>=3.9")]) == [
        "structlog>=25 but the lock pins 24.1.0",
        "orjson>=3.9 is not in the lock",
    ]
