"""`syncd model fetch | verify | list` against devstack's stand-in hub: only the model's files, each checked by hash,
a bad one never placed in the cache, a manifest re-checked offline, and the fetched model resolved with the network
off. A small stand-in model keeps it fast (the integration test fetches the real tiny.en)."""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.hf_hub import TINY_EN_REPO, FakeHub
from devstack.services import free_port
from syncd import cli, errors
from syncd.errors import ConfigError
from syncd.transcribers.whisper_model import resolve_model

MODEL = {
    "config.json": b'{"architectures": ["WhisperForConditionalGeneration"]}\n',
    "model.bin": bytes(range(256)) * 64,
    "tokenizer.json": b'{"model": {"vocab": {}}}\n',
    "vocabulary.txt": b"<|endoftext|>\nhello\n",
}


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[FakeHub]:
    model = tmp_path / "model"
    model.mkdir()
    for name, data in MODEL.items():
        (model / name).write_bytes(data)
    with FakeHub(TINY_EN_REPO, model) as running:
        yield running


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "hub-cache"


def _fetch(hub: FakeHub, cache: Path, *args: str, name: str = "tiny.en") -> int:
    return cli.main(["model", "fetch", name, "--cache-dir", str(cache), "--endpoint", hub.url, *args])


def _snapshot(cache: Path, hub: FakeHub) -> Path:
    return cache / "models--Systran--faster-whisper-tiny.en" / "snapshots" / hub.commit


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_fetch_caches_only_the_model_files_checked_and_resolvable_offline(
    hub: FakeHub, cache: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _fetch(hub, cache) == errors.OK

    snapshot = _snapshot(cache, hub)
    assert sorted(p.name for p in snapshot.iterdir()) == sorted(MODEL), "README.md and .gitattributes left out"
    assert (snapshot.parent.parent / "refs" / "main").read_text() == hub.commit
    manifest = json.loads((snapshot.parent.parent / "syncd-manifests" / f"{hub.commit}.json").read_text())
    assert (manifest["repo_id"], manifest["commit"], manifest["revision"]) == (TINY_EN_REPO, hub.commit, "main")
    assert {n: f["sha256"] for n, f in manifest["files"].items()} == {n: _sha256(d) for n, d in MODEL.items()}
    assert manifest["files"]["model.bin"]["hub"] == {"algorithm": "sha256", "value": _sha256(MODEL["model.bin"])}
    assert manifest["files"]["config.json"]["hub"]["algorithm"] == "git-sha1"
    assert not list(cache.glob(".syncd-fetch-*")), "the staging folder is gone"
    out = capsys.readouterr().out
    assert 'model = "tiny.en"' in out and "/var/cache/syncd/huggingface/hub" in out

    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    asked = len(hub.requests)
    assert resolve_model("tiny.en") == (str(snapshot), "tiny.en")
    assert resolve_model(TINY_EN_REPO) == (str(snapshot), "tiny.en")
    assert resolve_model(str(snapshot)) == (str(snapshot), "tiny.en"), "a pinned snapshot is named after its repo"
    assert len(hub.requests) == asked, "resolved from the cache alone"


def test_a_corrupted_download_is_refused_naming_file_expected_and_got(
    hub: FakeHub, cache: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.corrupt |= {"model.bin", "vocabulary.txt"}

    assert _fetch(hub, cache) == errors.CHECK_FAILED

    err = capsys.readouterr().err
    bad = bytes([MODEL["model.bin"][0] ^ 0xFF]) + MODEL["model.bin"][1:]
    assert f"model.bin: expected sha256 {_sha256(MODEL['model.bin'])} (hub), got {_sha256(bad)}" in err
    assert f"vocabulary.txt: expected git-sha1 {hub.files['vocabulary.txt'].blob_id} (hub), got " in err
    assert "nothing placed in the cache" in err
    folder = cache / "models--Systran--faster-whisper-tiny.en"
    assert not (folder / "snapshots").exists() and not (folder / "refs").exists()
    assert not list(cache.glob(".syncd-fetch-*"))
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    with pytest.raises(ConfigError, match=re.escape("syncd model fetch tiny.en --cache-dir")):
        resolve_model("tiny.en")


def test_a_pinned_sha256_must_match_as_well(hub: FakeHub, cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wrong = "0" * 64
    assert _fetch(hub, cache, "--sha256", f"model.bin={wrong}") == errors.CHECK_FAILED
    assert f"model.bin: expected sha256 {wrong} (pinned), got {_sha256(MODEL['model.bin'])}" in capsys.readouterr().err
    assert not _snapshot(cache, hub).exists()

    assert _fetch(hub, cache, "--sha256", f"model.bin={_sha256(MODEL['model.bin']).upper()}") == errors.OK
    manifest = json.loads(
        next((cache / "models--Systran--faster-whisper-tiny.en" / "syncd-manifests").iterdir()).read_text()
    )
    assert manifest["files"]["model.bin"]["pinned"] is True

    assert _fetch(hub, cache, "--sha256", f"README.md={wrong}") == errors.CONFIG
    assert "not among the files fetched" in capsys.readouterr().err


def test_a_cached_model_is_checked_not_downloaded_again_and_repaired_when_bad(
    hub: FakeHub, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _fetch(hub, cache) == errors.OK
    downloads = len(hub.downloads())
    assert _fetch(hub, cache) == errors.OK
    assert len(hub.downloads()) == downloads
    assert "already in the cache, checked" in capsys.readouterr().out

    model_bin = _snapshot(cache, hub) / "model.bin"
    model_bin.resolve().write_bytes(b"damaged on disk")
    verify = ["model", "verify", "tiny.en", "--cache-dir", str(cache)]
    assert cli.main(verify) == errors.CHECK_FAILED
    err = capsys.readouterr().err
    assert (
        f"model.bin: expected sha256 {_sha256(MODEL['model.bin'])} (manifest), got {_sha256(b'damaged on disk')}" in err
    )

    assert _fetch(hub, cache) == errors.OK
    assert "downloading it again" in capsys.readouterr().err
    assert model_bin.read_bytes() == MODEL["model.bin"]
    assert cli.main(verify) == errors.OK


def test_unknown_names_repositories_and_revisions_exit_78(
    hub: FakeHub, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _fetch(hub, cache, name="enormous") == errors.CONFIG
    err = capsys.readouterr().err
    assert "model 'enormous': not a known model name" in err and "large-v3" in err and "tiny.en" in err
    assert _fetch(hub, cache, name="Systran/faster-whisper-nope") == errors.CONFIG
    assert "no such repository" in capsys.readouterr().err
    assert _fetch(hub, cache, "--revision", "v9") == errors.CONFIG
    assert "no revision 'v9'" in capsys.readouterr().err
    assert cli.main(["model", "verify", "small", "--cache-dir", str(cache)]) == errors.CONFIG
    assert "syncd model fetch small --cache-dir" in capsys.readouterr().err


def test_an_unreachable_hub_exits_69(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    assert (
        cli.main(["model", "fetch", "small", "--cache-dir", str(cache), "--endpoint", endpoint]) == errors.UNAVAILABLE
    )
    assert f"cannot reach {endpoint}" in capsys.readouterr().err
    assert not cache.exists() or not any(cache.iterdir())


def test_hf_hub_offline_left_in_the_shell_does_not_stop_a_fetch(
    hub: FakeHub, cache: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert _fetch(hub, cache) == errors.OK
    assert "HF_HUB_OFFLINE is set: ignored" in capsys.readouterr().err
    assert constants.HF_HUB_OFFLINE is True, "offline again once the fetch is done"


def test_list_names_the_models_and_what_the_cache_holds(
    hub: FakeHub, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _fetch(hub, cache) == errors.OK
    capsys.readouterr()
    assert cli.main(["model", "list", "--cache-dir", str(cache)]) == errors.OK
    lines = capsys.readouterr().out.splitlines()
    tiny = next(line for line in lines if line.startswith("tiny.en "))
    assert TINY_EN_REPO in tiny and f"main={hub.commit[:12]} (manifest)" in tiny
    small = next(line for line in lines if line.startswith("small "))
    assert small.rstrip().endswith(" -")
    assert any(line.startswith("large-v3, large ") for line in lines)


def test_without_faster_whisper_the_command_names_the_extra(
    cache: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "faster_whisper.utils", None)
    assert cli.main(["model", "fetch", "small", "--cache-dir", str(cache)]) == errors.CONFIG
    assert "pip install 'syncd[whisper]'" in capsys.readouterr().err
