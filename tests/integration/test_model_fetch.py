"""`syncd model fetch` as an operator runs it (the real console script, a shell that kept the unit's HF_HUB_OFFLINE=1)
against devstack's stand-in hub serving the real tiny.en; then, in a process with the network off, syncd's whisper
engine resolves `model = "tiny.en"` from that cache and transcribes espeak-ng speech."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from devstack import ROOT, SENTENCES, VENV_BIN, free_port, speak
from devstack.hf_hub import TINY_EN_REPO, FakeHub
from syncd.domain.formats import word_error_rate

pytestmark = pytest.mark.integration

TRANSCRIBE = """
import json, shutil, sys
from devstack import recording_for
from syncd.config import WhisperSettings
from syncd.transcribers.whisper import WhisperTranscriber

class Files:
    def download(self, bucket, key, path):
        shutil.copy(key, path)

engine = WhisperTranscriber(WhisperSettings(model=sys.argv[1], workers=1), Files())
recording = recording_for("b", sys.argv[2], "etag")
engine.start(recording)
transcript = engine.poll(recording)
engine.close()
print(json.dumps({"path": engine.plan.path, "version": engine.model_version, "text": transcript.text}))
"""


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, env={**os.environ, **env}, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{args} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_a_fetched_model_loads_offline_and_transcribes(tmp_path: Path) -> None:
    cache = tmp_path / "huggingface" / "hub"
    with FakeHub() as hub:
        fetched = _run(
            [str(VENV_BIN / "syncd"), "model", "fetch", "tiny.en"],
            {"HF_ENDPOINT": hub.url, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"},
        )
        served = hub.downloads()
    assert f"fetched: {TINY_EN_REPO} main = {hub.commit}" in fetched.stdout
    assert any("/cdn/" in path for path in served), "model.bin came through the CDN redirect, as LFS files do"
    verify = [str(VENV_BIN / "syncd"), "model", "verify", "tiny.en", "--cache-dir", str(cache)]
    assert "4 files match" in _run(verify, {}).stdout

    audio = speak(SENTENCES[1], tmp_path / "call.wav")
    offline = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_ENDPOINT": f"http://127.0.0.1:{free_port()}"}
    out = _run([str(VENV_BIN / "python"), "-c", TRANSCRIBE, "tiny.en", str(audio)], offline).stdout
    result = json.loads(out.splitlines()[-1])  # after the engine's log lines

    snapshot = cache / "models--Systran--faster-whisper-tiny.en" / "snapshots" / hub.commit
    assert (result["path"], result["version"]) == (str(snapshot), "whisper-tiny.en-int8")
    wer = word_error_rate(SENTENCES[1], result["text"])
    assert wer is not None and wer <= 0.35, result["text"]
