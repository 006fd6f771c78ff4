"""The real services, each a context manager on free loopback ports: Label Studio, SeaweedFS S3 and a moto server
(Amazon Transcribe, SQS). Each starts the real program, waits until it answers, and stops its whole process group on
exit. Installs live under the ignored ``.stack/`` folder (see scripts/stack-install.sh).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import boto3
import requests

ROOT = Path(__file__).resolve().parent.parent
STACK_DIR = ROOT / ".stack"
LABEL_STUDIO_BIN = STACK_DIR / "ls-venv" / "bin" / "label-studio"
VENV_BIN = Path(sys.executable).parent

LS_TOKEN = "0123456789abcdef0123456789abcdef01234567"
LS_USER = "admin@example.com"
LS_PASSWORD = "syncd-demo"
S3_ACCESS_KEY = "syncd-test-key"
S3_SECRET_KEY = "syncd-test-secret-0123456789"
REGION = "us-east-1"
PG_PASSWORD = "syncd-test-pg"


class StackError(RuntimeError):
    """A service of the test stack did not come up; the message points at its log file."""


def _port_is_free(port: int) -> bool:
    """Nothing listens there. SO_REUSEADDR as servers set it, so a port left in TIME_WAIT by a service we just
    stopped counts as free: a restarted service keeps its port, and the clients pointing at it keep working."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_seaweed_port(taken: set[int]) -> int:
    """A port below 55535 whose gRPC twin (port + 10000) is free too: SeaweedFS listens on both."""
    for _ in range(200):
        port = free_port()
        if port < 55535 and port not in taken and port + 10000 not in taken and _port_is_free(port + 10000):
            taken.update({port, port + 10000})
            return port
    raise StackError("no free port pair for SeaweedFS")


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float, ok: tuple[int, ...] = (200,)) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StackError(f"{proc.args!r} exited with {proc.returncode}; see {log}:\n{_tail(log)}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=2).status_code in ok:
                return
        time.sleep(0.3)
    raise StackError(f"{url} not ready after {timeout:.0f}s; see {log}:\n{_tail(log)}")


def _tail(log: Path, lines: int = 30) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    return ""


@dataclass
class Service:
    """A program started in its own process group, logging to a file, stopped with SIGTERM then SIGKILL."""

    name: str
    workdir: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        raise NotImplementedError

    def wait(self, timeout: float = 60) -> None:
        raise NotImplementedError

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def spawn(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                cwd=self.workdir,
                start_new_session=True,
            )

    def __enter__(self) -> Self:
        try:
            self.start()
            self.wait()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, timeout: float = 5) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


@dataclass
class LabelStudio(Service):
    """Label Studio 1.23.2 from its own venv, with a known admin user and legacy API token."""

    token: str = LS_TOKEN
    user: str = LS_USER
    password: str = LS_PASSWORD

    def start(self) -> None:
        if not LABEL_STUDIO_BIN.exists():
            raise StackError(f"{LABEL_STUDIO_BIN} missing: run scripts/stack-install.sh")
        if not self.port or not _port_is_free(self.port):
            self.port = free_port()
        env = {
            "LABEL_STUDIO_BASE_DATA_DIR": str(self.workdir / "data"),
            "SSRF_PROTECTION_ENABLED": "false",
            "USE_DEFAULT_BANNED_SUBNETS": "false",
            "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "false",
            "DJANGO_DEBUG": "false",
            "LOG_LEVEL": "WARNING",
        }
        argv = [str(LABEL_STUDIO_BIN), "start", "--no-browser", "--host", "127.0.0.1", "--port", str(self.port)]
        argv += ["--username", self.user, "--password", self.password, "--user-token", self.token]
        self.spawn([*argv, "--enable-legacy-api-token"], env)

    def wait(self, timeout: float = 300) -> None:
        assert self.proc is not None
        wait_http(f"{self.url}/health", self.proc, self.log_path, timeout)

    def client(self) -> Any:
        from label_studio_sdk import LabelStudio as LabelStudioSDK

        return LabelStudioSDK(base_url=self.url, api_key=self.token)

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A raw call with the token, for the endpoints the SDK lacks (e.g. /api/projects/{id}/next)."""
        headers = {"Authorization": f"Token {self.token}"}
        response = requests.request(method, f"{self.url}{path}", headers=headers, timeout=60, **kwargs)
        response.raise_for_status()
        return response


@dataclass
class SeaweedS3(Service):
    """SeaweedFS (`weed server -s3`) with one identity, so S3 calls are signed like on AWS."""

    access_key: str = S3_ACCESS_KEY
    secret_key: str = S3_SECRET_KEY

    def start(self) -> None:
        taken: set[int] = set()
        if self.port and _port_is_free(self.port) and _port_is_free(self.port + 10000):
            taken.update({self.port, self.port + 10000})
        else:
            self.port = 0
        ports = {name: free_seaweed_port(taken) for name in ("master", "volume", "filer")}
        ports["s3"] = self.port or free_seaweed_port(taken)
        self.port = ports["s3"]
        self.workdir.mkdir(parents=True, exist_ok=True)
        identity = {
            "identities": [
                {
                    "name": "syncd",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        s3_config = self.workdir / "s3.json"
        s3_config.write_text(json.dumps(identity))
        (self.workdir / "data").mkdir(exist_ok=True)
        argv = [shutil.which("weed", path=str(VENV_BIN)) or "weed", "server", f"-dir={self.workdir / 'data'}"]
        argv += ["-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-s3", f"-s3.port={ports['s3']}", f"-s3.config={s3_config}"]
        argv += [f"-master.port={ports['master']}", f"-volume.port={ports['volume']}", f"-filer.port={ports['filer']}"]
        argv += ["-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false"]
        self.spawn([*argv, "-volume.max=2000", "-master.volumeSizeLimitMB=64"])

    def wait(self, timeout: float = 60) -> None:
        assert self.proc is not None
        wait_http(self.url, self.proc, self.log_path, timeout, ok=(200, 403))
        deadline = time.monotonic() + timeout
        probe = f"syncd-probe-{os.getpid()}"
        while True:
            try:
                client = self.client()
                client.create_bucket(Bucket=probe)
                client.put_object(Bucket=probe, Key="x", Body=b"x")
                client.delete_object(Bucket=probe, Key="x")
                client.delete_bucket(Bucket=probe)
                return
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise StackError(f"SeaweedFS S3 not writable: {exc}; see {self.log_path}") from exc
                time.sleep(0.5)

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=REGION,
            config=boto3.session.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5}),
        )


@dataclass
class MotoServer(Service):
    """moto's server standing in for Amazon Transcribe and SQS (the AWS services that cannot be reached here); the
    S3 event tests also use its S3, since moto sends real S3 event notifications to its SQS."""

    def start(self) -> None:
        self.port = self.port or free_port()
        self.spawn([str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)])

    def wait(self, timeout: float = 60) -> None:
        assert self.proc is not None
        wait_http(f"{self.url}/moto-api/", self.proc, self.log_path, timeout)

    def client(self, service: str = "transcribe") -> Any:
        return boto3.client(  # type: ignore[call-overload]
            service,
            endpoint_url=self.url,
            aws_access_key_id="moto",
            aws_secret_access_key="moto",
            region_name=REGION,
        )


@dataclass
class Postgres(Service):
    """A throwaway PostgreSQL server (Debian's package) in its own data folder on a free port: the shared state of
    many syncd instances. As root it runs as the ``postgres`` user, which owns the folder (PostgreSQL refuses root).
    The database is ``syncd``, reached as user ``syncd`` with password ``PG_PASSWORD``."""

    data: Path | None = None
    fresh: bool = False

    def _as_owner(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv

    def start(self) -> None:
        self.port = self.port or free_port()
        bin_dir = postgres_bin()
        db = self._init(bin_dir) if self.data is None else self.data / "db"
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        self.spawn(self._as_owner([str(bin_dir / "postgres"), "-D", str(db), *options.split()]))

    def _init(self, bin_dir: Path) -> Path:
        self.data = Path(tempfile.mkdtemp(prefix="syncd-pg-"))  # not under pytest's tmp: that is root's alone
        pwfile = self.data / "pw"
        pwfile.write_text(PG_PASSWORD)
        if os.geteuid() == 0:
            for path in (self.data, pwfile):
                shutil.chown(path, "postgres", "postgres")
        db = self.data / "db"
        init = [str(bin_dir / "initdb"), "-D", str(db), "-U", "syncd", "--pwfile", str(pwfile), "-A", "scram-sha-256"]
        subprocess.run(self._as_owner([*init, "-E", "UTF8", "--locale=C"]), check=True, capture_output=True)
        self.fresh = True
        return db

    def wait(self, timeout: float = 60) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise StackError(f"postgres exited with {self.proc.returncode}:\n{_tail(self.log_path)}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    pass
                with self.connect() as conn:
                    conn.execute("SELECT 1")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise StackError(f"postgres did not answer in {timeout:.0f}s:\n{_tail(self.log_path)}") from None
                time.sleep(0.2)
        if self.fresh:
            with self.connect(autocommit=True) as conn:
                conn.execute("CREATE DATABASE syncd")
            self.fresh = False

    def connect(self, *, autocommit: bool = False, dbname: str = "postgres") -> Any:
        import psycopg

        return psycopg.connect(
            host="127.0.0.1", port=self.port, user="syncd", password=PG_PASSWORD, dbname=dbname, autocommit=autocommit
        )

    @property
    def url(self) -> str:
        """What ``[state] url`` holds (the password goes in ``SYNCD_STATE_PASSWORD``)."""
        return f"postgresql://syncd@127.0.0.1:{self.port}/syncd"

    def database(self, name: str) -> str:
        """A new empty database ``name`` (a test's own state, apart from the shared ``syncd`` one); its url."""
        with self.connect(autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def stop(self, timeout: float = 10, *, keep: bool = False) -> None:
        """Stop the server (a fast shutdown: open sessions are cut, as an outage would); ``keep`` keeps its data,
        so ``start`` brings the same databases back."""
        if self.proc is not None and self.proc.poll() is None and self.data is not None:
            pg_ctl = [str(postgres_bin() / "pg_ctl"), "-D", str(self.data / "db"), "stop", "-m", "fast", "-w"]
            subprocess.run(self._as_owner(pg_ctl), capture_output=True, timeout=timeout + 5, check=False)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        super().stop(timeout)
        if self.data is not None and not keep:
            shutil.rmtree(self.data, ignore_errors=True)
            self.data = None


def postgres_bin() -> Path:
    """Debian's PostgreSQL binaries (``/usr/lib/postgresql/<major>/bin``), the newest installed."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
    if not found:
        raise StackError("PostgreSQL is not installed (Debian package postgresql; run scripts/stack-install.sh)")
    return found[-1].parent


@dataclass
class Stack:
    """All three services, started together (Label Studio's first start dominates: ~25 s of migrations)."""

    workdir: Path
    ls_port: int = 0
    s3_port: int = 0
    labelstudio: LabelStudio = field(init=False)
    s3: SeaweedS3 = field(init=False)
    moto: MotoServer = field(init=False)

    def __post_init__(self) -> None:
        self.labelstudio = LabelStudio("labelstudio", self.workdir / "labelstudio", port=self.ls_port)
        self.s3 = SeaweedS3("seaweedfs", self.workdir / "seaweedfs", port=self.s3_port)
        self.moto = MotoServer("moto", self.workdir / "moto")

    @property
    def services(self) -> list[Service]:
        return [self.labelstudio, self.s3, self.moto]

    def __enter__(self) -> Stack:
        try:
            for service in self.services:
                service.start()
            for service in self.services:
                service.wait()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()

    def env(self) -> dict[str, str]:
        """Environment for a syncd process using this stack: secrets travel here, never in the config file."""
        return {
            "LABEL_STUDIO_API_KEY": self.labelstudio.token,
            "AWS_ACCESS_KEY_ID": self.s3.access_key,
            "AWS_SECRET_ACCESS_KEY": self.s3.secret_key,
            "AWS_DEFAULT_REGION": REGION,
            "HF_HUB_OFFLINE": "1",
        }

    def config(
        self,
        state_dir: Path,
        bucket: str,
        *,
        prefix: str = "",
        project: str = "syncd test",
        engine: str = "whisper",
        aws: str = "",
        extra: str = "",
        layout: str = "segments",
    ) -> str:
        """A syncd config (TOML text) pointing at this stack. ``layout`` is the review layout of the projects it
        creates: "segments" by default, the one the real-stack tests of import, export and triage were written
        against; the reviewer's screen test and the demo use syncd's default, "transcript"."""
        return f"""\
[labelstudio]
url = "{self.labelstudio.url}"
project = "{project}"
layout = "{layout}"

[s3]
endpoint_url = "{self.s3.url}"
region = "{REGION}"

[[sources]]
bucket = "{bucket}"
prefix = "{prefix}"

[transcriber]
engine = "{engine}"

[transcriber.aws]
endpoint_url = "{self.moto.url}"
{aws}

[state]
path = "{state_dir / "state.db"}"

[http]
listen = ""

[log]
format = "json"
level = "debug"
{extra}"""


@contextlib.contextmanager
def running_stack(workdir: Path | None = None) -> Iterator[Stack]:
    """A stack in `workdir` (default: a fresh temporary folder removed afterwards)."""
    if workdir is not None:
        with Stack(workdir) as stack:
            yield stack
        return
    with tempfile.TemporaryDirectory(prefix="syncd-stack-") as tmp, Stack(Path(tmp)) as stack:
        yield stack
