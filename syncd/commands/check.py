"""`syncd check`: can this config work?

`check` only reads, except one small object it writes beside the audio and deletes again (proving output writes
work); it never creates the Label Studio project or registers storage.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from syncd import errors
from syncd.config import Settings
from syncd.errors import ProbeError, classify
from syncd.labelstudio.probe import labelstudio_alive
from syncd.log import describe_error
from syncd.s3.probe import conditional_writes, quick_s3_client
from syncd.state import StateStore, refusals

if TYPE_CHECKING:
    from syncd.labelstudio import LabelStudioClient


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"


def _run(name: str, probe: Callable[[], str]) -> Check:
    try:
        return Check(name, True, probe())
    except ProbeError as exc:
        return Check(name, False, str(exc))
    except Exception as exc:
        return Check(name, False, f"{describe_error(exc)} ({errors.DOC[classify(exc)]})")


def checks(settings: Settings, config_path: str) -> Iterator[Check]:
    """Each check in order; later ones are skipped (not run) when what they need already failed."""
    from syncd.labelstudio import connection

    engine = settings.transcriber.engine
    yield Check("config", True, f"{config_path}: valid ({len(settings.sources)} source(s), engine {engine})")
    yield _run("state", lambda: _state_writable(settings))
    clients: list[LabelStudioClient] = []
    token = _run("labelstudio.token", lambda: _token(settings, clients))
    yield token
    alive = _run("labelstudio.reachable", lambda: _alive(settings))
    yield alive
    if token.ok and alive.ok:
        [client] = clients
        yield _run("labelstudio.version", lambda: _version(settings))
        ls = settings.labelstudio
        auth = _run("labelstudio.auth", lambda: f"token accepted (user {connection.login(ls, client)})")
        yield auth
        if auth.ok:
            yield _run("labelstudio.project", lambda: client.describe_project(_current_title(settings)))
    yield from _refusals(settings)
    s3 = quick_s3_client(settings)
    for source in settings.sources:
        where = f"s3://{source.bucket}/{source.prefix}"
        listed = _run(f"s3.list {where}", partial(_list, s3, source.bucket, source.prefix))
        yield listed
        if listed.ok:
            yield _run(f"s3.read {where}", partial(_read, s3, source.bucket, source.prefix))
            yield _run(f"s3.write {where}", partial(_write_delete, settings, source.bucket, source.prefix))
            yield _run(f"s3.conditional_writes {where}", partial(_conditional, settings, s3, source))
    if engine == "aws":
        yield _run("transcribe", lambda: _transcribe(settings))


def _token(settings: Settings, clients: list[LabelStudioClient]) -> str:
    """The token is there and may work (its kind); the client built on it goes into ``clients`` for the checks after."""
    from syncd.labelstudio import connection

    client = connection.client(settings.labelstudio)
    clients.append(client)
    return f"found ({client.token_kind})"


def _current_title(settings: Settings) -> str:
    """The project new tasks go to, as far as the state knows (after rollover), else the configured one."""
    from syncd.projects import period_title

    wanted = settings.labelstudio.project
    if not wanted.isdigit() and (settings.state.url or Path(settings.state.path).exists()):
        store = StateStore.open(settings.state)
        try:
            projects = store.tasks.projects()
        finally:
            store.close()
        if projects:
            return str(projects[-1]["title"])
    return wanted if wanted.isdigit() else period_title(wanted)


def _refusals(settings: Settings) -> Iterator[Check]:
    """What Label Studio refused the running syncd (webhook, audio storage), as the state recorded it: a check
    cannot register anything itself, so it reports what registration met."""
    if not (settings.state.url or Path(settings.state.path).exists()):
        return
    try:
        store = StateStore.open(settings.state)
    except Exception:
        return  # the "state" check already says why
    try:
        yield from refusal_checks(settings, store.refusals.all_known())
    finally:
        store.close()


def refusal_checks(settings: Settings, refused: list[refusals.Refusal]) -> Iterator[Check]:
    for r in refused:
        detail = f"project {r.project} ({r.target}): refused, {r.reason}; meanwhile {r.consequence}. {refusals.REMEDY}"
        yield Check(f"labelstudio.{r.what}", False, detail)
    if settings.http.public_url and not any(r.what == refusals.WEBHOOK for r in refused):
        yield Check("labelstudio.webhook", True, "no refusal recorded (`syncd run` registers it on each project)")


def _state_writable(settings: Settings) -> str:
    store = StateStore.open(settings.state)
    try:
        return f"{store.where} opened ({sum(store.recordings.counts().values())} recordings)"
    finally:
        store.close()


def _version(settings: Settings) -> str:
    from syncd.labelstudio.probe import labelstudio_release, support

    supported, about = support(labelstudio_release(settings))
    if not supported:
        raise ProbeError(about, errors.CHECK_FAILED)
    return about


def _alive(settings: Settings) -> str:
    labelstudio_alive(settings)
    return f"{settings.labelstudio.url} answers /health"


def _list(s3: Any, bucket: str, prefix: str) -> str:
    page = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1000)
    return f"listed {page.get('KeyCount', 0)} object(s){' (more)' if page.get('IsTruncated') else ''}"


def _read(s3: Any, bucket: str, prefix: str) -> str:
    page = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1000)
    first = next((o for o in page.get("Contents", []) if o["Size"] > 0), None)
    if first is None:
        return "no object to read yet (nothing to check)"
    s3.get_object(Bucket=bucket, Key=first["Key"], Range="bytes=0-0")["Body"].read()
    return f"read {first['Key']!r}"


def _write_delete(settings: Settings, bucket: str, prefix: str) -> str:
    """Writes a .txt (never taken for audio) where outputs go, through the export stage's writer, then deletes it."""
    from syncd.s3.storage import Storage

    storage = Storage(settings.s3, conditional=settings.output.conditional_writes == "require")
    key = f"{prefix}syncd-check-{uuid.uuid4().hex[:12]}.transcript.txt"
    storage.write(bucket, key, b"syncd check: safe to delete\n", "txt", {}, if_absent=True)
    storage.delete(bucket, key)
    return f"wrote and deleted {key!r}"


def _conditional(settings: Settings, s3: Any, source: Any) -> str:
    if settings.output.conditional_writes == "single-writer":
        return 'not required: output.conditional_writes = "single-writer" (one syncd writes these outputs)'
    return conditional_writes(s3, source.bucket, source.prefix)


def _transcribe(settings: Settings) -> str:
    from syncd.s3.storage import boto_client

    client = boto_client("transcribe", settings.s3, settings.transcriber.aws.endpoint_url)
    client.list_transcription_jobs(MaxResults=1)
    return f"transcribe:ListTranscriptionJobs allowed in {settings.s3.region}"


def run_checks(
    settings: Settings,
    config_path: str,
    out: Callable[[str], None] = print,
    run: Callable[[Settings, str], Iterable[Check]] = checks,
) -> int:
    """Prints each check as it is done and the tally; ``run`` yields the checks (``checks``, or a test's own)."""
    failed = 0
    for check in run(settings, config_path):
        out(check.line())
        failed += not check.ok
    out(f"{'all checks passed' if not failed else f'{failed} check(s) failed'}")
    return errors.CHECK_FAILED if failed else errors.OK
