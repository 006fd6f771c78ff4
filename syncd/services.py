"""The live clients a cycle needs, built once from settings: state store, S3, the engine, Label Studio."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from syncd import exitcodes
from syncd.cluster import PROJECT, Instance
from syncd.config import ConfigError, Settings, read_secret
from syncd.events import Queue
from syncd.faults import fault_point
from syncd.labelstudio import LabelStudioClient
from syncd.log import describe_error, get_logger
from syncd.probe import ProbeError, buckets_readable, classify, conditional_writes, labelstudio_alive
from syncd.state import StateStore
from syncd.storage import Storage, credentials
from syncd.transcribers.base import Transcriber


def make_transcriber(settings: Settings, storage: Storage) -> Transcriber:
    engine = settings.transcriber.engine
    if engine == "aws":
        from syncd.transcribers.aws import AwsTranscriber

        return AwsTranscriber(settings.transcriber, settings.s3, storage)
    from syncd.transcribers.whisper import WhisperTranscriber

    return WhisperTranscriber(settings.transcriber.whisper, storage, settings.transcriber.language)


def labelstudio_token(settings: Settings) -> str:
    ls = settings.labelstudio
    token = read_secret(ls.api_key_env, ls.api_key_file)
    if not token:
        where = f"file {ls.api_key_file!r}" if ls.api_key_file else f"environment variable {ls.api_key_env}"
        raise ConfigError(
            f"labelstudio: no API token found in {where} (set labelstudio.api_key_env or labelstudio.api_key_file)"
        )
    return token


@dataclass
class Services:
    settings: Settings
    state: StateStore
    storage: Storage
    transcriber: Transcriber
    labelstudio: LabelStudioClient
    log: Any = field(default_factory=get_logger)
    _project_id: int | None = None

    @classmethod
    def build(cls, settings: Settings, *, paced: bool = False) -> Services:
        storage = Storage(settings.s3, conditional=settings.output.conditional_writes == "require")
        return cls(
            settings=settings,
            state=StateStore.open(settings.state),
            storage=storage,
            transcriber=make_transcriber(settings, storage),
            labelstudio=LabelStudioClient(settings.labelstudio, labelstudio_token(settings)),
            paced=paced,
        )

    paced: bool = False
    """Imports wait for a full batch or for ``import_interval`` (the daemon); `syncd once` imports whatever is ready."""
    webhook: tuple[str, str] | None = None
    """(url, secret) registered on every project syncd creates, once the daemon has set it."""
    queues: dict[str, Queue] = field(default_factory=dict)
    """The sources' event queues by URL, made on first use."""
    instance: Instance = field(init=False)
    """This process among the instances sharing the state: its roles and the leases it holds."""

    def __post_init__(self) -> None:
        self.instance = Instance.from_settings(self.settings.instance, self.state)

    def queue(self, url: str) -> Queue:
        if url not in self.queues:
            self.queues[url] = Queue(self.settings.s3, url)
        return self.queues[url]

    @property
    def project_id(self) -> int:
        """The project new tasks go to: the newest one syncd writes to."""
        if self._project_id is None:
            raise RuntimeError("Services.connect() (or ensure_project()) must run before the stages")
        return self._project_id

    def projects(self) -> list[int]:
        """Every project syncd writes to and reads from, oldest first; the last one takes new tasks."""
        known = [int(p["id"]) for p in self.state.projects()]
        return known if self.project_id in known else [*known, self.project_id]

    def ensure_project(self) -> int:
        """The current project, with its sorted view and audio storages, created or brought up to date. A titled
        project series that the state does not know (first start, lost state) is found again in Label Studio."""
        if self.state.cursor(NEXT_PROJECT):
            self.next_project("finishing a rollover cut short")
        current = self._current()
        max_speakers = self.settings.transcriber.aws.max_speakers
        project = self.labelstudio.ensure_project(max_speakers, title=str(current["id"]))
        self._project_id = project
        for pid in self.projects():
            self._ensure_storages(pid)
        self.log.info("project.ready", project=project, title=current["title"], projects=self.projects())
        return project

    def _current(self) -> dict[str, Any]:
        """The state's newest project when it belongs to the configuration; otherwise the configured project, or
        the configured title's series (found in Label Studio, or its first project created), becomes the newest."""
        wanted, rows = self.settings.labelstudio.project, self.state.projects()
        seq = max((r["seq"] for r in rows), default=0) + 1
        if wanted.isdigit():
            if not rows or rows[-1]["id"] != int(wanted):
                self.state.add_project(int(wanted), wanted, seq)
            return {"id": int(wanted), "title": wanted}
        if rows and project_series(wanted, {rows[-1]["id"]: rows[-1]["title"]}):
            return rows[-1]
        series = project_series(wanted, self.labelstudio.find_projects(_literal_prefix(wanted)))
        for number, (pid, title) in enumerate(sorted(series.items())):
            self.state.add_project(pid, title, seq + number)
        if not series:
            title = period_title(wanted)
            pid = self.labelstudio.ensure_project(self.settings.transcriber.aws.max_speakers, title=title)
            self.state.add_project(pid, title, seq)
        return self.state.projects()[-1]

    def _ensure_storages(self, project: int) -> None:
        for bucket in sorted({s.bucket for s in self.settings.sources}):
            self.labelstudio.ensure_storage(project, bucket, self.storage_credentials())

    # --- rollover ---------------------------------------------------------------------------------------------

    def rollover_due(self) -> str | None:
        """Why new tasks must go to a new project now ("full", "period"), or None. A project named by id is fixed."""
        wanted = self.settings.labelstudio.project
        if wanted.isdigit():
            return None
        if self.state.seen_task_count(self.project_id) >= self.settings.labelstudio.max_tasks_per_project:
            return "full"
        current = next((str(r["title"]) for r in self.state.projects() if r["id"] == self.project_id), None)
        base = period_title(wanted)
        if current is not None and current != base and not current.startswith(f"{base} ("):
            return "period"
        return None

    def room(self) -> int:
        """Tasks the current project may still take (unbounded for a fixed project)."""
        if self.settings.labelstudio.project.isdigit():
            return 1 << 62
        limit = self.settings.labelstudio.max_tasks_per_project
        return max(0, limit - self.state.seen_task_count(self.project_id))

    def next_project(self, reason: str) -> int:
        """Create the next project like the current one (layout, instructions, sampling, view, storages, webhook)
        and make it current. The intent (its title) is recorded first and the project looked up by title before it
        is created, so a crash anywhere here leaves one new project, finished on the next try."""
        rows = self.state.projects()
        intent = json.loads(self.state.cursor(NEXT_PROJECT) or "null") or {
            "title": _next_title(period_title(self.settings.labelstudio.project), [r["title"] for r in rows]),
            "seq": max((r["seq"] for r in rows), default=0) + 1,
            "like": rows[-1]["id"] if rows else None,
        }
        self.state.set_cursor(NEXT_PROJECT, json.dumps(intent))
        max_speakers = self.settings.transcriber.aws.max_speakers
        project = self.labelstudio.ensure_project(max_speakers, title=intent["title"], like=intent["like"])
        fault_point("import.after_project_created")
        self._ensure_storages(project)
        if self.webhook:
            self.register_webhook(project, *self.webhook)
        with self.state.batch():
            self.state.add_project(project, intent["title"], intent["seq"])
            self.state.change_cursor(NEXT_PROJECT, lambda _: None)
        self._project_id = project
        previous = intent["like"]
        self.log.info("project.rollover", project=project, title=intent["title"], previous=previous, reason=reason)
        return project

    def register_webhook(self, project: int, url: str, secret: str) -> None:
        """Our webhook on one project; a refusal is logged and leaves polling as the way reviews arrive."""
        try:
            hook, created = self.labelstudio.ensure_webhook(project, url, secret)
        except Exception as exc:
            self.log.error("webhook.register_failed", project=project, url=url, error=exc)
            return
        self.log.info("webhook.registered", webhook=hook, project=project, url=url, created=created)

    def connect(self) -> None:
        """Label Studio answers and the project is ready, every source bucket is readable and (unless the operator
        chose single-writer mode) enforces conditional writes; a ProbeError (with the exit code it stands for)
        otherwise."""
        labelstudio_alive(self.settings)
        buckets_readable(self.settings, self.storage.client)
        if self.storage.conditional:
            for bucket, prefix in {s.bucket: s.prefix for s in self.settings.sources}.items():
                conditional_writes(self.storage.client, bucket, prefix)
        try:
            self.instance.join()
        except ConfigError as exc:
            raise ProbeError(str(exc), exitcodes.CONFIG) from exc
        except Exception as exc:
            raise ProbeError(f"state {self.state.where}: {describe_error(exc)}", classify(exc)) from exc
        try:
            with self.instance.exclusively(PROJECT):
                self.ensure_project()
        except Exception as exc:
            raise ProbeError(f"Label Studio project: {describe_error(exc)}", classify(exc)) from exc

    def storage_credentials(self) -> dict[str, Any]:
        s3 = self.settings.s3
        extra: dict[str, Any] = {"region_name": s3.region}
        if s3.endpoint_url:
            extra["s3endpoint"] = s3.endpoint_url
        return credentials(s3) | extra

    def close(self, *, leave: bool = True) -> None:
        """Close the clients; ``leave`` (unless a reload hands this instance's leases to new clients) frees them."""
        self.transcriber.close()
        if not leave:
            self.state.close()
            return
        try:
            self.instance.leave()
        except Exception as exc:  # the state may be the thing that is down; its leases then run out on their own
            self.log.warning("instance.leave_failed", error=describe_error(exc))
        self.state.close()


NEXT_PROJECT = "project-next"
"""State cursor holding a rollover's intent (title, sequence, the project it follows) until the project is set up."""


def _now() -> float:
    return time.time()


def period_title(template: str, moment: float | None = None) -> str:
    """The title for the period ``moment`` falls in (UTC): ``{year}`` and ``{month}`` filled in."""
    now = time.gmtime(_now() if moment is None else moment)
    return template.replace("{year}", f"{now.tm_year:04d}").replace("{month}", f"{now.tm_mon:02d}")


def _literal_prefix(template: str) -> str:
    return template.split("{", 1)[0] or template


def _next_title(base: str, taken: list[str]) -> str:
    if base not in taken:
        return base
    number = 2
    while f"{base} ({number})" in taken:
        number += 1
    return f"{base} ({number})"


def project_series(template: str, found: dict[int, str]) -> dict[int, str]:
    """The projects (id -> title) a titled configuration has written to: the title for any period, then an
    optional " (n)" for the projects that followed a full one."""
    pattern = re.escape(template).replace(r"\{year\}", r"\d{4}").replace(r"\{month\}", r"\d{2}")
    series = re.compile(rf"{pattern}( \(\d+\))?")
    return {pid: title for pid, title in found.items() if series.fullmatch(title)}
