"""The locks under locks/ against what they lock: a range changed in pyproject.toml or a locks/*.in without
``scripts/lock`` fails here, naming the lock, the requirement and the refresh command. Fast, no stack, no network."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCKS = ROOT / "locks"
REFRESH = "run scripts/lock (it keeps every other pin), then commit locks/"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")

PYPROJECT_LOCKS = {"syncd.txt": (), "syncd-whisper.txt": ("whisper",), "dev.txt": ("whisper", "demo", "dev")}
"""Each lock made from pyproject.toml, with the extras it holds (scripts/lock)."""


def pins(lock: Path) -> dict[str, set[Version]]:
    """Package -> the versions the lock pins (a universal lock may pin two, under exclusive markers)."""
    found: dict[str, set[Version]] = {}
    for line in lock.read_text().splitlines():
        if match := PIN.match(line):
            found.setdefault(canonicalize_name(match[1]), set()).add(Version(match[2]))
    return found


def entries(lock: Path) -> list[str]:
    """Each requirement of the lock with its continuation lines joined (``pkg==1 \\ --hash=... \\ ...``)."""
    return [e for e in re.split(r"\n(?=[A-Za-z0-9])", lock.read_text()) if PIN.match(e)]


def requirements(extras: tuple[str, ...]) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    listed = list(project["dependencies"])
    for extra in extras:
        listed += project["optional-dependencies"][extra]
    return [Requirement(r) for r in listed]


def inputs(source: Path) -> list[Requirement]:
    lines = (line.split("#", 1)[0].strip() for line in source.read_text().splitlines())
    return [Requirement(line) for line in lines if line]


def mismatches(lock: Path, wanted: list[Requirement]) -> list[str]:
    """Each requirement the lock leaves out or pins outside its range, worded for the person who changed it."""
    locked = pins(lock)
    problems = []
    for req in wanted:
        versions = locked.get(canonicalize_name(req.name))
        if not versions:
            problems.append(f"{req} is not in the lock")
        elif bad := sorted(str(v) for v in versions if not req.specifier.contains(v, prereleases=True)):
            problems.append(f"{req} but the lock pins {', '.join(bad)}")
    return problems


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
    differ = sorted(
        f"{p} {sorted(map(str, v))} vs {sorted(map(str, dev.get(p, set())))}"
        for p, v in runtime.items()
        if v != dev.get(p)
    )
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
