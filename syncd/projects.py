"""The Label Studio projects syncd writes to: set-up, the series a titled configuration makes, rollover.

New tasks go to the newest project; older ones are still read for reviews. A titled project (``Review {year}-{month}``)
rolls over to the next one when it is full (``labelstudio.max_tasks_per_project``) or its period is over; a project
named by id is fixed. Each step records its intent in the state before it calls Label Studio, so a crash anywhere
leaves one new project, finished on the next try.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

from syncd.config import Settings
from syncd.faults import fault_point
from syncd.labelstudio import LabelStudioClient
from syncd.log import describe_error
from syncd.state import StateStore, keys, refusals


class Projects:
    """The project life cycle over one state and one Label Studio (``Services.projects``)."""

    def __init__(
        self,
        settings: Settings,
        state: StateStore,
        labelstudio: LabelStudioClient,
        storage: dict[str, Any],
        log: Any,
        *,
        sure: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.state = state
        self.labelstudio = labelstudio
        self.storage_credentials = storage
        """What Label Studio needs to play the audio: the S3 storage it registers per bucket."""
        self.log = log
        self.current_id: int | None = None
        self.webhook: tuple[str, str] | None = None
        """(url, secret) registered on every project syncd creates, once the daemon has set it."""
        self.sure = sure
        """Called right before a project is created or given its webhook: raises (``FencedError``) when the ``project``
        lease this work runs under was taken by another instance (``Services`` passes ``Instance.sure``)."""

    @property
    def current(self) -> int:
        """The project new tasks go to: the newest one syncd writes to."""
        if self.current_id is None:
            raise RuntimeError("Services.connect() (or projects.ensure()) must run before the stages")
        return self.current_id

    def all(self) -> list[int]:
        """Every project syncd writes to and reads from, oldest first; the last one takes new tasks."""
        known = [int(p["id"]) for p in self.state.tasks.projects()]
        return known if self.current in known else [*known, self.current]

    def ensure(self) -> int:
        """The current project, with its sorted view and audio storages, created or brought up to date. A titled
        project series that the state does not know (first start, lost state) is found again in Label Studio."""
        if self.state.cursors.get(keys.NEXT_PROJECT.name):
            self.next("finishing a rollover cut short")
        current = self._current()
        max_speakers = self.settings.transcriber.aws.max_speakers
        project = self.labelstudio.ensure_project(max_speakers, title=str(current["id"]))
        self.current_id = project
        for pid in self.all():
            self.ensure_storages(pid)
        self.log.info("project.ready", project=project, title=current["title"], projects=self.all())
        return project

    def _current(self) -> dict[str, Any]:
        """The state's newest project when it belongs to the configuration; otherwise the configured project, or
        the configured title's series (found in Label Studio, or its first project created), becomes the newest."""
        wanted, rows = self.settings.labelstudio.project, self.state.tasks.projects()
        seq = max((r["seq"] for r in rows), default=0) + 1
        if wanted.isdigit():
            if not rows or rows[-1]["id"] != int(wanted):
                self.state.tasks.add_project(int(wanted), wanted, seq)
            return {"id": int(wanted), "title": wanted}
        if rows and project_series(wanted, {rows[-1]["id"]: rows[-1]["title"]}):
            return rows[-1]
        series = project_series(wanted, self.labelstudio.find_projects(_literal_prefix(wanted)))
        for number, (pid, title) in enumerate(sorted(series.items())):
            self.state.tasks.add_project(pid, title, seq + number)
        if not series:
            title = period_title(wanted)
            self.sure()
            pid = self.labelstudio.ensure_project(self.settings.transcriber.aws.max_speakers, title=title)
            self.state.tasks.add_project(pid, title, seq)
        return self.state.tasks.projects()[-1]

    def ensure_storages(self, project: int) -> None:
        """The S3 storage that presigns each bucket's audio; one Label Studio refuses (SSRF protection, permissions:
        HTTP 400/403) is recorded and logged, and syncd carries on without it: tasks import, their audio does not
        play until it is accepted."""
        for bucket in sorted({s.bucket for s in self.settings.sources}):
            try:
                self.labelstudio.ensure_storage(project, bucket, self.storage_credentials)
            except Exception as exc:
                if getattr(exc, "status_code", None) not in (400, 403):
                    raise
                error, means = self._refused(refusals.STORAGE, project, bucket, exc)
                self.log.error("storage.register_failed", project=project, bucket=bucket, error=error, means=means)
                continue
            self.state.refusals.clear(refusals.STORAGE, project)

    def rollover_due(self) -> str | None:
        """Why new tasks must go to a new project now ("full", "period"), or None. A project named by id is fixed."""
        wanted = self.settings.labelstudio.project
        if wanted.isdigit():
            return None
        if self.state.tasks.seen_task_count(self.current) >= self.settings.labelstudio.max_tasks_per_project:
            return "full"
        current = next((str(r["title"]) for r in self.state.tasks.projects() if r["id"] == self.current), None)
        base = period_title(wanted)
        if current is not None and current != base and not current.startswith(f"{base} ("):
            return "period"
        return None

    def room(self) -> int:
        """Tasks the current project may still take (unbounded for a fixed project)."""
        if self.settings.labelstudio.project.isdigit():
            return 1 << 62
        limit = self.settings.labelstudio.max_tasks_per_project
        return max(0, limit - self.state.tasks.seen_task_count(self.current))

    def next(self, reason: str) -> int:
        """Create the next project like the current one (layout, instructions, sampling, view, storages, webhook)
        and make it current. The intent (its title) is recorded first and the project looked up by title before it
        is created, so a crash anywhere here leaves one new project, finished on the next try."""
        rows = self.state.tasks.projects()
        intent = json.loads(self.state.cursors.get(keys.NEXT_PROJECT.name) or "null") or {
            "title": _next_title(period_title(self.settings.labelstudio.project), [r["title"] for r in rows]),
            "seq": max((r["seq"] for r in rows), default=0) + 1,
            "like": rows[-1]["id"] if rows else None,
        }
        self.state.cursors.set(keys.NEXT_PROJECT.name, json.dumps(intent))
        max_speakers = self.settings.transcriber.aws.max_speakers
        self.sure()
        project = self.labelstudio.ensure_project(max_speakers, title=intent["title"], like=intent["like"])
        fault_point("import.after_project_created")
        self.ensure_storages(project)
        if self.webhook:
            self.sure()
            self.register_webhook(project, *self.webhook)
        with self.state.batch():
            self.state.tasks.add_project(project, intent["title"], intent["seq"])
            self.state.cursors.change(keys.NEXT_PROJECT.name, lambda _: None)
        self.current_id = project
        previous = intent["like"]
        self.log.info("project.rollover", project=project, title=intent["title"], previous=previous, reason=reason)
        return project

    def _refused(self, what: str, project: int, target: str, exc: Exception) -> tuple[str, str]:
        """Record what Label Studio refused to register; the reason in its words, and what the refusal means."""
        reason = refused_reason(exc)
        self.state.refusals.record(what, project, target, reason)
        return reason, refusals.CONSEQUENCE[what]

    def register_webhook(self, project: int, url: str, secret: str) -> None:
        """Our webhook on one project; a refusal is recorded (`syncd status`, /healthz, `syncd check`) and logged, and
        leaves the export poll as the way reviews arrive."""
        try:
            hook, created = self.labelstudio.ensure_webhook(project, url, secret)
        except Exception as exc:
            error, means = self._refused(refusals.WEBHOOK, project, url, exc)
            self.log.error("webhook.register_failed", project=project, url=url, error=error, means=means)
            return
        self.state.refusals.clear(refusals.WEBHOOK, project)
        self.log.info("webhook.registered", webhook=hook, project=project, url=url, created=created)


def refused_reason(exc: Exception) -> str:
    """Label Studio's own words for a refusal (its ``detail``: "URL resolves to a reserved network address (block:
    127.0.0.0/8)"), with the status; the whole error otherwise."""
    body, status = getattr(exc, "body", None), getattr(exc, "status_code", None)
    if isinstance(body, dict) and body.get("detail"):
        return f"HTTP {status}: {body['detail']}"
    return describe_error(exc)


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
