"""A stand-in for the Hugging Face Hub, as moto stands in for AWS: one model directory served as one repository on a
loopback port, to point HF_ENDPOINT (or `syncd model fetch --endpoint`) at.

It answers the calls huggingface_hub 2.x makes (read from its hf_api.py, file_download.py and _snapshot_download.py):
``GET /api/models/{repo}/revision/{rev}`` (``model_info``; ``?blobs=true`` adds each file's size, git blob id and LFS
sha256), ``GET /api/models/{repo}/tree/{rev}`` (``list_repo_tree``, which ``snapshot_download`` lists files with) and
``HEAD``/``GET /{repo}/resolve/{rev}/{file}``. A small file answers 200 with its git blob id as ETag; an LFS file
(``*.bin``, or 10 MB and more) answers 302 to a second origin, the CDN, with ``X-Linked-Etag`` (its sha256) and
``X-Linked-Size``, as the Hub does; every answer carries ``X-Repo-Commit``; unknown repositories, revisions and files
get 404 with the Hub's ``X-Error-Code``. A file named in ``corrupt`` is served with its first byte flipped while the
metadata keeps the true hashes: a download the client does not check itself.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from syncd.transcribers.whisper_model import bundled_model_path

TINY_EN_REPO = "Systran/faster-whisper-tiny.en"
LFS_SUFFIXES = (".bin", ".safetensors")
LFS_MIN_SIZE = 10 * 1024 * 1024
EXTRA_FILES = {
    "README.md": b"---\nlicense: mit\nlibrary_name: ctranslate2\n---\n# A model served by devstack.hf_hub\n",
    ".gitattributes": b"*.bin filter=lfs diff=lfs merge=lfs -text\n",
}
"""Files a real model repository has besides the model: fetch must leave them out."""


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class HubFile:
    path: str
    data: bytes
    sha256: str
    lfs: bool

    @classmethod
    def of(cls, path: str, data: bytes) -> HubFile:
        lfs = path.endswith(LFS_SUFFIXES) or len(data) >= LFS_MIN_SIZE
        return cls(path, data, hashlib.sha256(data).hexdigest(), lfs)

    @property
    def pointer(self) -> bytes:
        return f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {len(self.data)}\n".encode()

    @property
    def blob_id(self) -> str:
        """The git object id: of the content, or of the LFS pointer for an LFS file (as on the Hub)."""
        return git_blob_id(self.pointer if self.lfs else self.data)

    def sibling(self) -> dict[str, Any]:
        """``model_info(files_metadata=True)``'s entry."""
        entry: dict[str, Any] = {"rfilename": self.path, "size": len(self.data), "blobId": self.blob_id}
        if self.lfs:
            entry["lfs"] = {"size": len(self.data), "sha256": self.sha256, "pointerSize": len(self.pointer)}
        return entry

    def tree_entry(self) -> dict[str, Any]:
        """``list_repo_tree``'s entry."""
        entry: dict[str, Any] = {"type": "file", "oid": self.blob_id, "size": len(self.data), "path": self.path}
        if self.lfs:
            entry["lfs"] = {"oid": self.sha256, "size": len(self.data), "pointerSize": len(self.pointer)}
        return entry


class FakeHub:
    """``with FakeHub() as hub``: serves ``model_dir`` (default: the bundled tiny.en) as ``repo_id`` at ``hub.url``.
    ``hub.corrupt.add("model.bin")`` serves that file damaged; ``hub.requests`` lists (method, path) as received."""

    def __init__(self, repo_id: str = TINY_EN_REPO, model_dir: Path | None = None) -> None:
        self.repo_id = repo_id
        folder = model_dir or Path(bundled_model_path())
        contents = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()} | EXTRA_FILES
        self.files = {name: HubFile.of(name, data) for name, data in contents.items()}
        listing = "\n".join(f"{f.path} {f.blob_id}" for f in self.files.values())
        self.commit = hashlib.sha1(listing.encode(), usedforsecurity=False).hexdigest()
        self.corrupt: set[str] = set()
        self.requests: list[tuple[str, str]] = []
        self._hub = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self, cdn=False))
        self._cdn = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self, cdn=True))
        self.url = f"http://127.0.0.1:{self._hub.server_address[1]}"
        self.cdn_url = f"http://127.0.0.1:{self._cdn.server_address[1]}"

    def __enter__(self) -> FakeHub:
        for server in (self._hub, self._cdn):
            threading.Thread(target=server.serve_forever, name="fake-hf-hub", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        for server in (self._hub, self._cdn):
            server.shutdown()
            server.server_close()

    def served(self, name: str) -> bytes:
        data = self.files[name].data
        return bytes([data[0] ^ 0xFF]) + data[1:] if name in self.corrupt and data else data

    def downloads(self) -> list[str]:
        """Paths of the file contents sent (GETs of small files and of CDN objects)."""
        return [path for method, path in self.requests if method == "GET" and ("/resolve/" in path or "/cdn/" in path)]


def _handler(hub: FakeHub, *, cdn: bool) -> type[BaseHTTPRequestHandler]:
    base: type[_Base] = _CdnHandler if cdn else _HubHandler
    return type("Handler", (base,), {"hub": hub})


class _Base(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub: FakeHub

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: requests are kept in ``hub.requests`` instead."""

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def _answer(self, head: bool) -> None:
        raise NotImplementedError

    def _send(self, status: int, body: bytes = b"", head: bool = False, **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _json(self, value: Any, head: bool) -> None:
        self._send(200, json.dumps(value).encode(), head, Content_Type="application/json")

    def _missing(self, code: str, head: bool) -> None:
        body = json.dumps({"error": code}).encode()
        self._send(404, body, head, Content_Type="application/json", X_Error_Code=code, X_Repo_Commit=self.hub.commit)


class _HubHandler(_Base):
    def _answer(self, head: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        self.hub.requests.append((self.command, self.path))
        api = f"/api/models/{self.hub.repo_id}"
        if path.startswith("/api/models/"):
            if not (path == api or path.startswith(api + "/")):
                return self._missing("RepoNotFound", head)
            return self._api(path.removeprefix(api), "blobs=true" in self.path.lower(), head)
        prefix = f"/{self.hub.repo_id}/resolve/"
        if not path.startswith(prefix):
            return self._missing("RepoNotFound", head)
        revision, _, name = path.removeprefix(prefix).partition("/")
        if revision not in ("main", self.hub.commit):
            return self._missing("RevisionNotFound", head)
        if name not in self.hub.files:
            return self._missing("EntryNotFound", head)
        self._resolve(self.hub.files[name], head)

    def _api(self, rest: str, blobs: bool, head: bool) -> None:
        kind, _, revision = rest.strip("/").partition("/")
        if kind not in ("", "revision", "tree"):
            return self._missing("EntryNotFound", head)
        if (revision or "main") not in ("main", self.hub.commit):
            return self._missing("RevisionNotFound", head)
        files = self.hub.files.values()
        if kind == "tree":
            return self._json([f.tree_entry() for f in files], head)
        repo = self.hub.repo_id
        return self._json(
            {
                "_id": self.hub.commit[:24],
                "id": repo,
                "modelId": repo,
                "author": repo.split("/")[0],
                "sha": self.hub.commit,
                "private": False,
                "disabled": False,
                "gated": False,
                "library_name": "ctranslate2",
                "tags": ["ctranslate2"],
                "siblings": [f.sibling() if blobs else {"rfilename": f.path} for f in files],
            },
            head,
        )

    def _resolve(self, file: HubFile, head: bool) -> None:
        commit = self.hub.commit
        if not file.lfs:
            body = self.hub.served(file.path)
            etag = f'"{file.blob_id}"'
            return self._send(200, body, head, ETag=etag, X_Repo_Commit=commit, Content_Type="application/octet-stream")
        self._send(
            302,
            b"",
            head,
            Location=f"{self.hub.cdn_url}/cdn/{file.sha256}?name={file.path}",
            ETag=f'"{file.blob_id}"',
            X_Linked_Etag=f'"{file.sha256}"',
            X_Linked_Size=str(len(file.data)),
            X_Repo_Commit=commit,
        )


class _CdnHandler(_Base):
    def _answer(self, head: bool) -> None:
        self.hub.requests.append((self.command, self.path))
        sha256 = urlsplit(self.path).path.removeprefix("/cdn/")
        file = next((f for f in self.hub.files.values() if f.lfs and f.sha256 == sha256), None)
        if file is None:
            return self._send(404, b"no such object", head)
        body = self.hub.served(file.path)
        self._send(200, body, head, ETag=f'"{file.sha256}"', Content_Type="application/octet-stream")


def serve() -> None:
    """``python -m devstack.hf_hub``: serve the bundled tiny.en until Ctrl-C (to try `syncd model fetch` by hand)."""
    with FakeHub() as hub:
        print(f"HF_ENDPOINT={hub.url} syncd model fetch tiny.en --cache-dir /tmp/hub   # {hub.repo_id} @ {hub.commit}")
        threading.Event().wait()


if __name__ == "__main__":
    serve()
