"""`syncd model fetch | verify | list`: the one command that downloads. ``fetch`` puts a faster-whisper model into a
Hugging Face cache (the layout ``transcriber.whisper.model = NAME`` is resolved from offline), with only the files
a CTranslate2 model needs, each checked against the hash the hub publishes for it (sha256 for LFS files, the git blob
id for the others) and against any the operator pinned. It downloads into a staging folder inside the cache and moves
the files into place only when every one matches, so a bad file is never seen by syncd; then it records a manifest
(repository, commit, each file's size and sha256) that ``verify`` re-checks without the network.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from syncd import __version__, errors
from syncd.errors import ConfigError
from syncd.log import describe_error
from syncd.transcribers.whisper_model import MODEL_FILES, SERVICE_HF_CACHE, known_models, repo_id_for

MANIFESTS = "syncd-manifests"
"""Folder, inside the repository's cache folder, holding one ``<commit>.json`` manifest per fetched commit."""
COMMIT = re.compile(r"[0-9a-f]{40}")
SHA256 = re.compile(r"[0-9a-f]{64}")
CHUNK = 1 << 20

EXIT_CODES = {
    errors.OK: "fetched, or verified",
    errors.CHECK_FAILED: "a file's hash did not match (its name, the expected and the actual hash are printed; a "
    "fetch then places nothing in the cache), or the cache could not be written",
    errors.USAGE: "bad command line",
    errors.UNAVAILABLE: "the hub cannot be reached",
    errors.NOPERM: "token rejected, or a gated repository (accept its terms, set HF_TOKEN)",
    errors.CONFIG: "unknown model name, repository or revision; not a CTranslate2 model; not fetched (verify)",
}


class ModelError(Exception):
    """A fetch or verify that failed, with its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class HubFile:
    """A file of the repository and the hash the hub publishes for it."""

    name: str
    sha256: str | None
    """Of the content; published for LFS files only."""
    blob_id: str | None
    """The git object id: of the content for a small file (git-sha1), of the pointer for an LFS file."""

    @property
    def published(self) -> tuple[str, str] | None:
        if self.sha256:
            return "sha256", self.sha256.lower()
        if self.blob_id:
            return "git-sha1", self.blob_id.lower()
        return None


@dataclass(frozen=True)
class Mismatch:
    name: str
    algorithm: str
    expected: str
    got: str
    source: str

    def __str__(self) -> str:
        return f"{self.name}: expected {self.algorithm} {self.expected} ({self.source}), got {self.got}"


def parse_pin(text: str) -> tuple[str, str]:
    """``FILE=HEX`` of ``--sha256``."""
    name, _, digest = text.partition("=")
    if not name or not SHA256.fullmatch(digest.lower()):
        raise argparse.ArgumentTypeError(f"{text!r}: give FILE=SHA256 (64 hex digits), e.g. model.bin=3e30...")
    return name, digest.lower()


# --- fetch ---------------------------------------------------------------------------------------------------


def fetch(
    name: str,
    *,
    revision: str = "main",
    cache_dir: str | None = None,
    endpoint: str | None = None,
    pins: dict[str, str] | None = None,
) -> int:
    try:
        with _needs_whisper():
            _fetch(name, revision, _cache_root(cache_dir), endpoint, pins or {})
    except ModelError as exc:
        print(f"syncd model fetch: {exc}", file=sys.stderr)
        return exc.code
    return errors.OK


def _fetch(name: str, revision: str, root: Path, endpoint: str | None, pins: dict[str, str]) -> None:
    from huggingface_hub import HfApi, constants

    repo_id = _repo_id(name)
    endpoint = (endpoint or constants.ENDPOINT).rstrip("/")
    with _online(), _hub_errors(repo_id, revision, endpoint):
        info = HfApi(endpoint=endpoint).model_info(repo_id, revision=revision, files_metadata=True, timeout=30)
        commit, files = str(info.sha), _model_files(repo_id, info.siblings or [])
        _check_pins(pins, files)
        folder = _repo_folder(root, repo_id)
        records, mismatches = _check(folder / "snapshots" / commit, files, pins)
        for bad in mismatches:
            print(f"in the cache: {bad}; downloading it again", file=sys.stderr)
        downloaded = bool(mismatches or not records)
        if downloaded:
            records = _download_checked(repo_id, commit, files, root, endpoint, pins)
    if not COMMIT.fullmatch(revision):
        _write_ref(folder, revision, commit)
    manifest = _write_manifest(folder, repo_id, revision, commit, endpoint, records)
    print(f"{'fetched' if downloaded else 'already in the cache, checked'}: {repo_id} {revision} = {commit}")
    _report(name, revision, folder / "snapshots" / commit, manifest, records)


@contextlib.contextmanager
def _needs_whisper() -> Iterator[None]:
    try:
        yield
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in ("faster_whisper", "huggingface_hub"):
            raise
        raise ConfigError("syncd model needs faster-whisper: pip install 'syncd[whisper]'") from exc


def _repo_id(name: str) -> str:
    repo_id = repo_id_for(name)
    if repo_id is None:
        raise ConfigError(
            f"model {name!r}: not a known model name ({', '.join(sorted(known_models()))}) "
            "or a Hugging Face repository id (owner/name)"
        )
    return repo_id


@contextlib.contextmanager
def _online() -> Iterator[None]:
    """huggingface_hub reads HF_HUB_OFFLINE once, at import: an operator shell that kept the unit's
    HF_HUB_OFFLINE=1 would refuse this one download the operator asked for."""
    from huggingface_hub import constants

    offline = constants.HF_HUB_OFFLINE
    if offline:
        print("HF_HUB_OFFLINE is set: ignored by `syncd model fetch`, the one command that downloads", file=sys.stderr)
    constants.HF_HUB_OFFLINE = False
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = offline


@contextlib.contextmanager
def _hub_errors(repo_id: str, revision: str, endpoint: str) -> Iterator[None]:
    """The hub's errors as exit codes, phrased for the operator."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        yield
    except GatedRepoError as exc:
        raise ModelError(f"{repo_id} is gated: accept its terms on the hub, then set HF_TOKEN", errors.NOPERM) from exc
    except RepositoryNotFoundError as exc:
        raise ConfigError(f"{repo_id}: no such repository on {endpoint} (a private one needs HF_TOKEN)") from exc
    except RevisionNotFoundError as exc:
        raise ConfigError(f"{repo_id}: no revision {revision!r} on {endpoint}") from exc
    except HfHubHTTPError as exc:
        raise ModelError(f"{endpoint}: {_first_line(exc)}", _http_code(exc.response.status_code)) from exc
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as exc:
        raise ModelError(f"cannot download from {endpoint}: {_first_line(exc)}", errors.UNAVAILABLE) from exc
    except (ModelError, ConfigError):
        raise
    except Exception as exc:
        if errors.classify(exc) == errors.UNAVAILABLE:
            raise ModelError(f"cannot reach {endpoint}: {describe_error(exc)}", errors.UNAVAILABLE) from exc
        if isinstance(exc, OSError):  # the cache cannot be written: not root, disk full
            raise ModelError(describe_error(exc), errors.CHECK_FAILED) from exc
        raise


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _http_code(status: int) -> int:
    if status in (401, 403):
        return errors.NOPERM
    return errors.UNAVAILABLE if status >= 500 or status in (408, 429) else errors.CHECK_FAILED


def _model_files(repo_id: str, siblings: list[Any]) -> list[HubFile]:
    files = [
        HubFile(s.rfilename, s.lfs.sha256 if s.lfs else None, s.blob_id)
        for s in siblings
        if any(fnmatch.fnmatch(s.rfilename, pattern) for pattern in MODEL_FILES)
    ]
    if not any(f.name == "model.bin" for f in files):
        raise ConfigError(f"{repo_id} has no model.bin: not a CTranslate2 (faster-whisper) model")
    return files


def _check_pins(pins: dict[str, str], files: list[HubFile]) -> None:
    names = {f.name for f in files}
    unknown = sorted(set(pins) - names)
    if unknown:
        raise ConfigError(f"--sha256 {', '.join(unknown)}: not among the files fetched ({', '.join(sorted(names))})")


def _download_checked(
    repo_id: str, commit: str, files: list[HubFile], root: Path, endpoint: str, pins: dict[str, str]
) -> dict[str, dict[str, Any]]:
    """Download into a staging cache beside the real one (same file system: moves are renames), check, publish."""
    from huggingface_hub import snapshot_download

    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".syncd-fetch-", dir=root))
    try:
        snapshot = snapshot_download(
            repo_id,
            revision=commit,
            cache_dir=staging,
            allow_patterns=[f.name for f in files],
            endpoint=endpoint,
        )
        missing = [f.name for f in files if not (Path(snapshot) / f.name).is_file()]
        if missing:
            raise ModelError(f"the hub sent no {', '.join(missing)}", errors.UNAVAILABLE)
        records, mismatches = _check(Path(snapshot), files, pins)
        if mismatches:
            raise ModelError(
                "hash mismatch, nothing placed in the cache:\n  " + "\n  ".join(map(str, mismatches)),
                errors.CHECK_FAILED,
            )
        _publish(_repo_folder(staging, repo_id), _repo_folder(root, repo_id), commit, files)
        return records
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check(
    snapshot: Path, files: list[HubFile], pins: dict[str, str]
) -> tuple[dict[str, dict[str, Any]], list[Mismatch]]:
    """Each file's record for the manifest, and every hash that does not match; no records if a file is missing."""
    if not all((snapshot / f.name).is_file() for f in files):
        return {}, []
    records: dict[str, dict[str, Any]] = {}
    mismatches: list[Mismatch] = []
    for f in files:
        path = snapshot / f.name
        sha256 = file_sha256(path)
        mismatches += _mismatches(f, path, sha256, pins.get(f.name))
        hub = {"algorithm": f.published[0], "value": f.published[1]} if f.published else None
        records[f.name] = {"size": path.stat().st_size, "sha256": sha256, "hub": hub, "pinned": f.name in pins}
    return records, mismatches


def _mismatches(f: HubFile, path: Path, sha256: str, pin: str | None) -> list[Mismatch]:
    """A file with no published hash passes only on a pin."""
    found = []
    if f.published is None and pin is None:
        found.append(Mismatch(f.name, "sha256", "(none published)", sha256, "hub"))
    if f.published is not None:
        algorithm, expected = f.published
        got = sha256 if algorithm == "sha256" else git_blob_id(path)
        if got != expected:
            found.append(Mismatch(f.name, algorithm, expected, got, "hub"))
    if pin is not None and pin != sha256:
        found.append(Mismatch(f.name, "sha256", pin, sha256, "pinned"))
    return found


def file_sha256(path: Path) -> str:
    return _hexdigest(path, hashlib.sha256())


def git_blob_id(path: Path) -> str:
    """What ``git hash-object`` prints: the id the hub publishes for a file kept in git itself."""
    return _hexdigest(path, hashlib.sha1(b"blob %d\0" % path.stat().st_size, usedforsecurity=False))


def _hexdigest(path: Path, digest: Any) -> str:
    """``digest`` fed the file in chunks (a model.bin can be gigabytes)."""
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return str(digest.hexdigest())


def _publish(staged: Path, folder: Path, commit: str, files: list[HubFile]) -> None:
    """Blobs first, then the snapshot's links to them, then the tree listing: each a rename, so the cache only ever
    holds checked files (huggingface_hub's links are relative, ``../../blobs/<etag>``, and stay valid)."""
    (folder / "blobs").mkdir(parents=True, exist_ok=True)
    for blob in (staged / "blobs").iterdir():
        os.replace(blob, folder / "blobs" / blob.name)
    for f in files:
        target = folder / "snapshots" / commit / f.name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged / "snapshots" / commit / f.name, target)
    tree = staged / "trees" / f"{commit}.json"
    if tree.is_file():
        (folder / "trees").mkdir(exist_ok=True)
        os.replace(tree, folder / "trees" / tree.name)


def _write_ref(folder: Path, revision: str, commit: str) -> None:
    ref = folder / "refs" / revision
    ref.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(ref, commit)


def _write_manifest(
    folder: Path, repo_id: str, revision: str, commit: str, endpoint: str, records: dict[str, dict[str, Any]]
) -> Path:
    manifest = {
        "repo_id": repo_id,
        "revision": revision,
        "commit": commit,
        "endpoint": endpoint,
        "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "syncd": __version__,
        "files": records,
    }
    path = folder / MANIFESTS / f"{commit}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _report(name: str, revision: str, snapshot: Path, manifest: Path, records: dict[str, dict[str, Any]]) -> None:
    print(f"  in {snapshot}")
    for file, rec in sorted(records.items()):
        checks = [f"hub {rec['hub']['algorithm']}"] if rec["hub"] else []
        checks += ["pinned sha256"] if rec["pinned"] else []
        print(f"  {file:<24} {rec['size']:>12,} B  sha256 {rec['sha256']}  ok ({', '.join(checks)})")
    print(f"  manifest {manifest}")
    hint = f'"{name}"' if revision == "main" else f'"{snapshot}" (this commit; a name loads refs/main)'
    print(f"config: [transcriber.whisper] model = {hint}")
    if snapshot.parent.parent.parent != SERVICE_HF_CACHE:
        print(f"the systemd unit reads {SERVICE_HF_CACHE}: fetch there with --cache-dir {SERVICE_HF_CACHE}")


# --- verify, list ---------------------------------------------------------------------------------------------


def verify(name: str, *, revision: str = "main", cache_dir: str | None = None) -> int:
    """Re-hash a fetched model's files against its manifest; no network."""
    with _needs_whisper():
        root, repo_id = _cache_root(cache_dir), _repo_id(name)
    folder = _repo_folder(root, repo_id)
    commit = _cached_commit(folder, revision)
    path = folder / MANIFESTS / f"{commit}.json" if commit else None
    if path is None or not path.is_file():
        raise ConfigError(
            f"{repo_id} {revision}: not fetched into {root} with syncd (no manifest): "
            f"syncd model fetch {name} --cache-dir {root}"
        )
    records = json.loads(path.read_text())["files"]
    snapshot = folder / "snapshots" / str(commit)
    bad = [problem for file, rec in sorted(records.items()) if (problem := _recheck(snapshot / file, rec))]
    for problem in bad:
        print(f"FAIL {problem}", file=sys.stderr)
    if bad:
        return errors.CHECK_FAILED
    print(f"ok {repo_id} {revision} = {commit}: {len(records)} files match {path}")
    return errors.OK


def _recheck(path: Path, record: dict[str, Any]) -> str | None:
    if not path.is_file():
        return f"{path.name}: missing from {path.parent}"
    got = file_sha256(path)
    return None if got == record["sha256"] else str(Mismatch(path.name, "sha256", record["sha256"], got, "manifest"))


def list_models(*, cache_dir: str | None = None) -> int:
    """The names fetch takes, and what each cached repository holds."""
    with _needs_whisper():
        root, known = _cache_root(cache_dir), known_models()
    names: dict[str, list[str]] = {}
    for name, repo in known.items():
        names.setdefault(repo, []).append(name)
    cached = sorted(p.name for p in root.glob("models--*") if p.is_dir()) if root.is_dir() else []
    for folder in cached:
        names.setdefault(folder.removeprefix("models--").replace("--", "/"), [])
    print(f"cache {root}")
    print(f"{'MODEL':<24} {'REPOSITORY':<46} IN THE CACHE")
    for repo, aliases in names.items():
        print(f"{', '.join(aliases) or repo:<24} {repo:<46} {_cache_state(_repo_folder(root, repo))}")
    return errors.OK


def _cache_state(folder: Path) -> str:
    refs = sorted(p for p in (folder / "refs").rglob("*") if p.is_file()) if folder.is_dir() else []
    states = []
    for ref in refs:
        commit = ref.read_text().strip()
        checked = "manifest" if (folder / MANIFESTS / f"{commit}.json").is_file() else "no syncd manifest"
        states.append(f"{ref.relative_to(folder / 'refs')}={commit[:12]} ({checked})")
    return "; ".join(states) or ("snapshots without refs" if folder.is_dir() else "-")


# --- the cache layout -----------------------------------------------------------------------------------------


def _cache_root(cache_dir: str | None) -> Path:
    if cache_dir:
        return Path(cache_dir).expanduser()
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _repo_folder(root: Path, repo_id: str) -> Path:
    """huggingface_hub's folder for a model repository (``repo_folder_name``)."""
    return root / f"models--{repo_id.replace('/', '--')}"


def _cached_commit(folder: Path, revision: str) -> str | None:
    if COMMIT.fullmatch(revision):
        return revision
    ref = folder / "refs" / revision
    return ref.read_text().strip() if ref.is_file() else None
