"""Earlier releases of syncd, run for real: their source kept as tarballs in tests/fixtures/upgrade (made from git
history by scripts/build_upgrade_fixtures.py), run with this checkout's virtual environment, and the first half of an
upgrade (recordings imported, some reviews exported) that the upgrade test and the fixture script share.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.services import REGION, ROOT, Stack
from devstack.syncd_process import SyncdProcess
from devstack.transcribe import project_tasks, upload_with_results

UPGRADE_FIXTURES = ROOT / "tests" / "fixtures" / "upgrade"


@dataclass(frozen=True)
class Release:
    version: str
    commit: str
    landed: str
    """The day it landed on main."""

    @property
    def tarball(self) -> Path:
        return UPGRADE_FIXTURES / f"syncd-{self.version}.tar.gz"

    @property
    def state(self) -> Path:
        """The SQLite state this release wrote against the real stack (tests/fixtures/upgrade/README.md)."""
        return UPGRADE_FIXTURES / f"state-{self.version}.db"

    @property
    def example(self) -> Path:
        """`syncd config example` of this release: every key it knew, with its default."""
        return UPGRADE_FIXTURES / f"config-example-{self.version}.toml"


RELEASES = {
    r.version: r
    for r in (
        Release("0.2.0", "4af2679cc29ea28c32e921d3365ad9234452d7d9", "2026-11-25"),
        Release("0.3.0", "651dc67c92c29364aeb4e04db72c56b698549109", "2026-12-01"),
        Release("0.4.0", "57b39054623538a8b8950d53cf1c5128b892957d", "2026-12-03"),
    )
}
"""The releases kept as fixtures (CHANGELOG.md lists them all): 0.2.0 wrote a pre-Alembic SQLite file, 0.3.0 and
0.4.0 Alembic ones (revisions 0002 and 0003)."""

FIRST = {"calls/a.mp3": "single_speaker.json", "calls/b.mp3": "two_speakers.json", "calls/c.mp3": "spanish.json"}
"""The audio the earlier release imports; it exports reviews of a and b, c stays unreviewed."""
REVIEWED = ("calls/a.mp3", "calls/b.mp3")
FIRST_WORDS = "Reviewed under the earlier release."


def unpack(release: Release, into: Path) -> Path:
    """The release's source tree (its ``syncd`` package) under ``into``, ready for PYTHONPATH."""
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(release.tarball) as tar:
        tar.extractall(into, filter="data")
    return into


def run_release(
    source: Path, args: list[str], stack: Stack, *, check: bool = True, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``python -m syncd ARGS`` of an earlier release: its source first on the path, this checkout's packages after
    (run from the source folder: ``-m`` puts the working directory before PYTHONPATH). Releases up to 0.4.0 import
    label-studio-sdk's ``LabelStudio`` class, which is in the SDK syncd still depends on."""
    env = {**os.environ, **stack.env(), "PYTHONPATH": str(source)}
    argv = [sys.executable, "-m", "syncd", *args]
    proc = subprocess.run(argv, env=env, cwd=source, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"release syncd {args} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr}")
    return proc


def release_config(stack: Stack, state_dir: Path, bucket: str, project: str) -> str:
    """The config file the earlier releases' own test stack wrote (devstack/services.py at 0.2.0): no ``layout``
    key, whose default was "segments" then and is "transcript" now."""
    return f"""\
[labelstudio]
url = "{stack.labelstudio.url}"
project = "{project}"

[s3]
endpoint_url = "{stack.s3.url}"
region = "{REGION}"

[[sources]]
bucket = "{bucket}"
prefix = ""

[transcriber]
engine = "aws"

[transcriber.aws]
endpoint_url = "{stack.moto.url}"

[state]
path = "{state_dir / "state.db"}"

[http]
listen = ""

[log]
format = "json"
level = "debug"
"""


def reviewed_result(task: dict[str, Any], words: str) -> list[dict[str, Any]]:
    """A review of ``task`` in any layout: its prediction with the first text area's text replaced by ``words``."""
    result: list[dict[str, Any]] = task["predictions"][0]["result"]
    first = next(r for r in result if r["type"] == "textarea")
    first["value"]["text"] = [words]
    return result


SCHEDULE = """
[schedule]
scan_interval = 1.0
transcribe_interval = 0.5
import_interval = 1.0
export_interval = 1.0
"""
"""Short intervals (keys every release knows), so each half is one daemon run of a few seconds."""


def release_process(source: Path, config: Path, stack: Stack) -> SyncdProcess:
    """``syncd run`` of an earlier release (see run_release)."""
    command = [sys.executable, "-m", "syncd"]
    return SyncdProcess(config, stack, {"PYTHONPATH": str(source)}, command=command, cwd=source)


def wait_keys(daemon: SyncdProcess, event: str, keys: Iterable[str], timeout: float = 120) -> None:
    for key in keys:
        daemon.wait(event, timeout=timeout, key=key)


def first_half(
    release: Release, source: Path, stack: Stack, s3: Any, ls: Any, bucket: str, config: Path, project: str
) -> dict[str, Any]:
    """The earlier release's daemon imports FIRST and exports reviews of REVIEWED, as an operator's install would
    have, then is stopped (SIGTERM). Returns the tasks by key."""
    config.write_text(release_config(stack, config.parent, bucket, project) + SCHEDULE)
    upload_with_results(s3, bucket, FIRST)
    daemon = release_process(source, config, stack)
    try:
        wait_keys(daemon, "task.imported", FIRST)
        tasks = {t["data"]["source"].removeprefix(f"s3://{bucket}/"): t for t in project_tasks(ls, project)}
        assert sorted(tasks) == sorted(FIRST), tasks.keys()
        for key in REVIEWED:
            result = reviewed_result(tasks[key], FIRST_WORDS)
            ls.annotations.create(id=tasks[key]["id"], result=result, was_cancelled=False)
        wait_keys(daemon, "annotation.exported", REVIEWED)
        assert daemon.stop() == 0, "".join(daemon.lines[-30:])
    finally:
        daemon.kill()
    return tasks
