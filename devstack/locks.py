"""The locks under locks/ read as data: what each pins, and what each was made from (scripts/lock makes them). Shared
by the lock tests (tests/packaging) and the drift check (scripts/check-latest)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from devstack.services import ROOT

LOCKS = ROOT / "locks"
REFRESH = "run scripts/lock (it keeps every other pin), then commit locks/"
PYPROJECT_LOCKS = {"syncd.txt": (), "syncd-whisper.txt": ("whisper",), "dev.txt": ("whisper", "demo", "dev")}
"""Each lock made from pyproject.toml, with the extras it holds."""
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def pins(lock: Path) -> dict[str, set[Version]]:
    """Package -> the versions the lock pins (a universal lock may pin two, under exclusive markers)."""
    found: dict[str, set[Version]] = {}
    for line in lock.read_text().splitlines():
        if match := _PIN.match(line):
            found.setdefault(canonicalize_name(match[1]), set()).add(Version(match[2]))
    return found


def entries(lock: Path) -> list[str]:
    """Each requirement of the lock with its continuation lines (``pkg==1 \\ --hash=... \\ ...``)."""
    return [e for e in re.split(r"\n(?=[A-Za-z0-9])", lock.read_text()) if _PIN.match(e)]


def requirements(extras: tuple[str, ...]) -> list[Requirement]:
    """pyproject.toml's dependencies with those of ``extras``: the ranges a user's resolver sees."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    listed = list(project["dependencies"])
    for extra in extras:
        listed += project["optional-dependencies"][extra]
    return [Requirement(r) for r in listed]


def inputs(source: Path) -> list[Requirement]:
    """The requirements of a ``locks/*.in`` file."""
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


def moved(locked: dict[str, set[Version]], newest: dict[str, set[Version]]) -> list[tuple[str, str, str]]:
    """(package, locked, newest) for each package whose versions differ; "-" where one side lacks it."""
    names = sorted(set(locked) | set(newest))
    shown = {n: (_versions(locked.get(n)), _versions(newest.get(n))) for n in names}
    return [(n, old, new) for n, (old, new) in shown.items() if old != new]


def _versions(found: set[Version] | None) -> str:
    return " ".join(str(v) for v in sorted(found)) if found else "-"
