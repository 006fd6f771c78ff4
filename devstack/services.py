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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import boto3
import jwt
import requests

from devstack.waiting import until
from syncd.domain.moments import iso

ROOT = Path(__file__).resolve().parent.parent
STACK_DIR = ROOT / ".stack"
LS_VENV = STACK_DIR / "ls-venv"
"""Label Studio 1.23.2, the newest release syncd supports."""
OLD_LS_VENV = Path(os.environ.get("SYNCD_LS_OLD_VENV") or STACK_DIR / "ls-old-venv")
"""The oldest release syncd supports (scripts/stack-install.sh: OLD_LABEL_STUDIO_VERSION); ``$SYNCD_LS_OLD_VENV``
picks another install of it (scripts/check-latest's, on the newest dependencies)."""
LS_TEMPLATES = STACK_DIR / "ls-templates"
"""Per release, the data folder of a Label Studio that has run its migrations and made the admin
(``python -m devstack.templates``, run by scripts/stack-install.sh): a fresh server copies it and starts in seconds
instead of spending its first start (a minute or more on a loaded machine) on migrations. It holds no personal access
token: each server makes its own once it answers, so the token's issue time is that server's clock."""
TEMPLATE_FORMAT = "template 2: no personal access token\n"
"""Written after the release in a template's ``.release``; a template of another format is made again."""
VENV_BIN = Path(sys.executable).parent

LS_TOKEN = "0123456789abcdef0123456789abcdef01234567"
LS_USER = "admin@example.com"
LS_PASSWORD = "syncd-demo"
S3_ACCESS_KEY = "syncd-test-key"
S3_SECRET_KEY = "syncd-test-secret-0123456789"
REGION = "us-east-1"
PG_PASSWORD = "syncd-test-pg"
LS_TELEMETRY_OFF = {
    "SENTRY_DSN": "",
    "FRONTEND_SENTRY_DSN": "",
    "COLLECT_ANALYTICS": "false",
    "LATEST_VERSION_CHECK": "false",
}
"""Label Studio as a self-hosted operator runs it: its bundled Sentry DSNs (server and browser) empty, so no error
report leaves the machine and ``sentry_sdk.init`` never runs (sentry-sdk 3 rejects the options 1.23.2 passes); no
usage analytics; no version check against PyPI at start. Settings of ``label_studio/core/settings``."""


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
    def answered() -> int | None:
        status = requests.get(url, timeout=2).status_code
        return status if status in ok else None

    until(
        answered,
        timeout,
        f"{url} to answer {ok}; see {log}",
        interval=0.3,
        ignore=(requests.RequestException,),
        abort=exited(proc),
        detail=lambda: _tail(log),
        error=StackError,
    )


def exited(proc: subprocess.Popen[Any]) -> Callable[[], str | None]:
    """``until``'s ``abort`` for a wait on a process: it gives up once the process has exited."""
    return lambda: None if proc.poll() is None else f"{proc.args!r} exited with {proc.returncode}"


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

    def cpu_seconds(self) -> float:
        """User + system CPU the service's process has used so far (Linux ``/proc``): benchmarks split a path's
        cost between syncd, Label Studio and S3, which share the machine's cores."""
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

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
    """Label Studio from its own venv (1.23.2 by default; ``venv`` picks another release, e.g. ``OLD_LS_VENV``), as
    Label Studio defaults it: legacy tokens off, and clients authenticate with a personal access token (``token``, a
    JWT refresh token made through the admin's login session after the first start). ``legacy`` starts it with
    ``--enable-legacy-api-token`` (``token`` is then the legacy one). SSRF protection is off unless ``ssrf``: the
    stack's S3 endpoint and syncd's webhook are on loopback addresses, which Label Studio refuses while it is on.
    ``host`` is the public URL Label Studio is told it lives at (``LABEL_STUDIO_HOST``, e.g. a reverse proxy's
    ``http://127.0.0.1:P/ls``): it then serves every page under that sub-path."""

    legacy_token: str = LS_TOKEN
    user: str = LS_USER
    password: str = LS_PASSWORD
    venv: Path = LS_VENV
    legacy: bool = False
    ssrf: bool = False
    host: str = ""
    mint: bool = True
    """Make (or read back) the personal access token once the server answers; off for a template's first start."""
    _pat: str = ""
    _sdk: Any = None

    @property
    def binary(self) -> Path:
        return self.venv / "bin" / "label-studio"

    @property
    def version(self) -> str:
        """The release installed in ``venv`` (its stamp, written by scripts/stack-install.sh)."""
        stamp = self.venv / ".stamp"
        return stamp.read_text().strip() if stamp.exists() else "unknown"

    def start(self) -> None:
        if not self.binary.exists():
            raise StackError(f"{self.binary} missing: run scripts/stack-install.sh")
        if not self.port or not _port_is_free(self.port):
            self.port = free_port()
        template = template_for(self.venv)
        if template is not None and not self.legacy and not (self.workdir / "data").exists():
            shutil.copytree(template, self.workdir / "data")
        env = {
            "LABEL_STUDIO_BASE_DATA_DIR": str(self.workdir / "data"),
            "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "false",
            "DJANGO_DEBUG": "false",
            "LOG_LEVEL": "WARNING",
            **LS_TELEMETRY_OFF,
        }
        if not self.ssrf:
            env |= {"SSRF_PROTECTION_ENABLED": "false", "USE_DEFAULT_BANNED_SUBNETS": "false"}
        if self.host:
            env["LABEL_STUDIO_HOST"] = self.host
        argv = [str(self.binary), "start", "--no-browser", "--host", "127.0.0.1", "--port", str(self.port)]
        argv += ["--username", self.user, "--password", self.password, "--user-token", self.legacy_token]
        self.spawn([*argv, "--enable-legacy-api-token"] if self.legacy else argv, env)

    def wait(self, timeout: float = 300) -> None:
        assert self.proc is not None
        wait_http(f"{self.url}/health", self.proc, self.log_path, timeout)
        self._sdk = None
        if not self.legacy and self.mint:
            self._pat = self.personal_access_token()
            self.check_token()

    @property
    def token(self) -> str:
        """What syncd is given as ``LABEL_STUDIO_API_KEY``: the personal access token (the legacy one if ``legacy``)."""
        return self.legacy_token if self.legacy else self._pat

    def personal_access_token(self) -> str:
        """A personal access token for the admin, made as a person would in Account & Settings: logged in with the
        password, ``POST /api/token/``. Kept in the data folder, so a restarted server's clients keep theirs."""
        saved = self.workdir / "data" / "syncd-pat"
        if saved.exists():
            return saved.read_text().strip()
        token = self.made_yesterday(self.new_personal_access_token())
        saved.write_text(token)
        return token

    def made_yesterday(self, token: str) -> str:
        """``token`` as if made a day ago. Label Studio refuses a token issued later than its clock reads, so on a
        machine whose clock steps back (a virtual machine's, set right after it booted) a token made seconds ago
        would be refused as "Token is invalid" until the clock caught up; the tests are not about that. Unchanged
        where the server's key cannot be read."""
        if not self.signing_key():
            return token
        return self.reissued(token, int(jwt.decode(token, options={"verify_signature": False})["iat"]) - 86400)

    def reissued(self, token: str, iat: int) -> str:
        """``token`` with issue time ``iat``, signed again with the server's key."""
        key = self.signing_key()
        if not key:
            raise StackError(f"{self.name}: no SECRET_KEY in the environment or {self.workdir / 'data' / '.env'}")
        claims = jwt.decode(token, options={"verify_signature": False})
        return jwt.encode(claims | {"iat": iat}, key, "HS256")

    def signing_key(self) -> str:
        """The key the server signs its tokens with: ``SECRET_KEY`` from the environment, else from the data
        folder's ``.env`` (Label Studio's own order); empty when neither has it."""
        env_file = self.workdir / "data" / ".env"
        lines = env_file.read_text().splitlines() if env_file.exists() else []
        from_file = [line.split("=", 1)[1] for line in lines if line.startswith("SECRET_KEY=")]
        return os.environ.get("SECRET_KEY") or (from_file[-1] if from_file else "")

    def check_token(self) -> None:
        """The server exchanges its personal access token for an access token, or a StackError that says why not,
        with the clocks a token's checks compare: the token's issue time, this machine's and the server's."""
        response = requests.post(f"{self.url}/api/token/refresh/", json={"refresh": self._pat}, timeout=60)
        if response.status_code == 200:
            return
        issued = jwt.decode(self._pat, options={"verify_signature": False}).get("iat")
        raise StackError(
            f"Label Studio at {self.url} refused its own personal access token (HTTP {response.status_code}:"
            f" {response.text[:300]}); token issued at {_moment(issued)}, this machine's clock {_moment(time.time())},"
            f" the server's {response.headers.get('Date')}; log {self.log_path}"
        )

    def login(self) -> requests.Session:
        """A browser-like session logged in as the admin (Django's login form, with its CSRF token)."""
        session = requests.Session()
        page = f"{self.url}/user/login/"
        session.get(page, timeout=60).raise_for_status()
        form = {"email": self.user, "password": self.password, "csrfmiddlewaretoken": session.cookies["csrftoken"]}
        response = session.post(page, data=form, headers={"Referer": page}, allow_redirects=False, timeout=60)
        if response.status_code != 302 or "sessionid" not in session.cookies:
            raise StackError(f"Label Studio login as {self.user} failed: HTTP {response.status_code}")
        return session

    def token_settings(self, *, personal: bool = True, legacy: bool = False) -> None:
        """The organization's token settings (Organization, API Tokens Settings): personal access tokens and legacy
        ``Token`` keys on or off. Set through the admin's login session, so it works whichever kind is off."""
        session = self.login()
        body = {"api_tokens_enabled": personal, "legacy_api_tokens_enabled": legacy}
        url = f"{self.url}/api/jwt/settings"
        session.post(url, json=body, headers=_csrf(session, self.url), timeout=60).raise_for_status()

    def revoke(self, token: str) -> None:
        """Revoke a personal access token (Account & Settings, Personal Access Token, revoke)."""
        session = self.login()
        url = f"{self.url}/api/token/blacklist/"
        session.post(url, json={"refresh": token}, headers=_csrf(session, self.url), timeout=60).raise_for_status()

    def rotate(self) -> str:
        """Revoke the personal access token (``token``) and make a new one, as a person would in Account & Settings
        (Label Studio keeps one per user: a second is refused with 409 while the first is valid); the old one."""
        old = self._pat
        self.revoke(old)
        self._pat = self.made_yesterday(self.new_personal_access_token())
        (self.workdir / "data" / "syncd-pat").write_text(self._pat)
        self._sdk = None
        return old

    def new_personal_access_token(self) -> str:
        """A personal access token for the admin (Label Studio refuses it while another is still valid)."""
        session = self.login()
        response = session.post(f"{self.url}/api/token/", headers=_csrf(session, self.url), json={}, timeout=60)
        response.raise_for_status()
        return str(response.json()["token"])

    def client(self) -> Any:
        from label_studio_sdk import LabelStudio as LabelStudioSDK

        if self._sdk is None:
            self._sdk = LabelStudioSDK(base_url=self.url, api_key=self.token)
        return self._sdk

    def auth_headers(self) -> dict[str, str]:
        """The Authorization header of a fresh call: ``Bearer <access token>`` (exchanged from the personal access
        token by the SDK and renewed when it expires), or ``Token <key>`` with legacy auth."""
        headers = self.client()._client_wrapper.get_headers()
        return {"Authorization": str(headers["Authorization"])}

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A raw call with the token, for the endpoints the SDK lacks (e.g. /api/projects/{id}/next)."""
        response = requests.request(method, f"{self.url}{path}", headers=self.auth_headers(), timeout=60, **kwargs)
        response.raise_for_status()
        return response


def template_for(venv: Path) -> Path | None:
    """The migrated data folder made for the release in ``venv``, if one was made for exactly that release."""
    template = LS_TEMPLATES / venv.name
    stamp = template / ".release"
    if stamp.exists() and stamp.read_text() == template_release(venv):
        return template
    return None


def template_release(venv: Path) -> str:
    """What a template made now for the release in ``venv`` carries in its ``.release``."""
    release = venv / ".stamp"
    return (release.read_text() if release.exists() else "unknown\n") + TEMPLATE_FORMAT


def _moment(epoch: float | None) -> str:
    if epoch is None:
        return "never"
    return iso(epoch)


def _csrf(session: requests.Session, url: str) -> dict[str, str]:
    return {"X-CSRFToken": session.cookies["csrftoken"], "Referer": f"{url}/"}


@dataclass
class Nginx(Service):
    """Debian's nginx as a reverse proxy serving ``upstream`` under ``/<prefix>/`` (the prefix stripped, as Label
    Studio's own deployment guide has it), run unprivileged from its own folder and config."""

    upstream: str = ""
    prefix: str = "ls"

    @property
    def public_url(self) -> str:
        """The sub-path URL, without a trailing slash: how an operator would most likely write it."""
        return f"{self.url}/{self.prefix}"

    def start(self) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(binary).exists():
            raise StackError("nginx is not installed (Debian package nginx; run scripts/stack-install.sh)")
        self.port = self.port or free_port()
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "nginx.conf"
        settings = {"dir": self.workdir, "port": self.port, "prefix": self.prefix, "upstream": self.upstream}
        conf.write_text(_NGINX_CONF.format(**settings))
        self.spawn([binary, "-p", str(self.workdir), "-c", str(conf), "-e", str(self.workdir / "error.log")])

    def wait(self, timeout: float = 30) -> None:
        assert self.proc is not None
        wait_http(f"{self.public_url}/health", self.proc, self.log_path, timeout)


_NGINX_CONF = """\
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    client_max_body_size 200m;
    server {{
        listen 127.0.0.1:{port};
        location /{prefix}/ {{
            proxy_pass {upstream}/;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout 300;
        }}
    }}
}}
"""


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
        probe = f"syncd-probe-{os.getpid()}"

        def writable() -> bool:
            client = self.client()
            client.create_bucket(Bucket=probe)
            client.put_object(Bucket=probe, Key="x", Body=b"x")
            client.delete_object(Bucket=probe, Key="x")
            client.delete_bucket(Bucket=probe)
            return True

        until(
            writable,
            timeout,
            f"SeaweedFS S3 to be writable; see {self.log_path}",
            interval=0.5,
            ignore=(Exception,),
            abort=exited(self.proc),
            error=StackError,
        )

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

        def answers() -> bool:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                pass
            with self.connect() as conn:
                conn.execute("SELECT 1")
            return True

        until(
            answers,
            timeout,
            "postgres to answer",
            ignore=(Exception,),
            abort=exited(self.proc),
            detail=lambda: _tail(self.log_path),
            error=StackError,
        )
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
    ls_venv: Path = LS_VENV
    """The Label Studio release to start: its venv (``OLD_LS_VENV`` for the oldest supported)."""
    labelstudio: LabelStudio = field(init=False)
    s3: SeaweedS3 = field(init=False)
    moto: MotoServer = field(init=False)

    def __post_init__(self) -> None:
        ls_dir = self.workdir / "labelstudio"
        self.labelstudio = LabelStudio("labelstudio", ls_dir, port=self.ls_port, venv=self.ls_venv)
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
        labelstudio_url: str = "",
    ) -> str:
        """A syncd config (TOML text) pointing at this stack. ``layout`` is the review layout of the projects it
        creates: "segments" by default, the one the real-stack tests of import, export and triage were written
        against; the reviewer's screen test and the demo use syncd's default, "transcript". ``labelstudio_url``
        points syncd at another Label Studio (a second server, a reverse proxy) instead of the stack's."""
        return f"""\
[labelstudio]
url = "{labelstudio_url or self.labelstudio.url}"
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
def running_stack(workdir: Path | None = None, ls_venv: Path | None = None) -> Iterator[Stack]:
    """A stack in `workdir` (default: a fresh temporary folder removed afterwards), with Label Studio from
    ``ls_venv`` (default ``$SYNCD_LS_VENV``, else 1.23.2's)."""
    venv = ls_venv or Path(os.environ.get("SYNCD_LS_VENV") or LS_VENV)
    if workdir is not None:
        with Stack(workdir, ls_venv=venv) as stack:
            yield stack
        return
    with tempfile.TemporaryDirectory(prefix="syncd-stack-") as tmp, Stack(Path(tmp), ls_venv=venv) as stack:
        yield stack
