"""`syncd run`: the stages as separate APScheduler jobs, driven by signals, watched by systemd.

Each stage is its own interval job (``max_instances=1``, coalescing), so a slow transcription never delays the export
of finished reviews. The main thread only waits for signals and pings the watchdog. Signal handlers do nothing but
let CPython write the signal number to a wake-up pipe, which the main thread reads: no work, and no lock, is ever
taken inside a handler, and a signal delivered to any thread (native libraries start their own) still lands here.

* SIGTERM/SIGINT: stop starting work, let running stages finish (drain), STOPPING=1, exit 0.
* SIGHUP: re-read the config; an invalid one is logged and the running one kept.
* WATCHDOG=1 while no stage has been stuck longer than ``schedule.stage_timeout``.
"""

from __future__ import annotations

import os
import select
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from syncd import exitcodes, webhooks
from syncd.config import ConfigError, Settings, load, read_secret
from syncd.cycle import CycleTracker
from syncd.health import health_report
from syncd.httpd import HttpServer
from syncd.log import configure, describe_error, get_logger
from syncd.metrics import EventTap, Metrics
from syncd.notify import Notifier, watchdog_interval
from syncd.pipeline import STAGES, run_stage, stage_functions
from syncd.probe import ProbeError, buckets_readable, classify, labelstudio_alive
from syncd.services import Services
from syncd.stages.exporter import export_task

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_TICK = 5.0


class SignalInbox:
    """Signals as messages: ``wait`` returns the next one received, or None after ``timeout`` seconds."""

    def __init__(self) -> None:
        self._read, write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(write, False)
        signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        for signum in SIGNALS:
            signal.signal(signum, _queued)

    def wait(self, timeout: float) -> int | None:
        ready, _, _ = select.select([self._read], [], [], timeout)
        if not ready:
            return None
        return os.read(self._read, 1)[0]  # one at a time: the rest stay queued in the pipe


def _queued(_signum: int, _frame: FrameType | None) -> None:
    """The work happens in the main loop, which reads the number CPython wrote to the wake-up pipe."""


def intervals(settings: Settings) -> dict[str, float]:
    s = settings.schedule
    return {
        "scan": s.scan_interval,
        "transcribe": s.transcribe_interval,
        "import": s.import_interval,
        "export": s.export_interval,
    }


class Daemon:
    def __init__(self, config_path: str, settings: Settings) -> None:
        self.config_path = config_path
        self.settings = settings
        self.log = get_logger()
        self.metrics = Metrics()
        self.notifier = Notifier()
        self.cycle = CycleTracker()
        self.interrupt = threading.Event()  # asks running stages to return early (shutdown, reload)
        self.stopping = False
        self.svc: Services | None = None
        self.http: HttpServer | None = None
        self.webhook_secret = ""
        self._running: dict[str, float] = {}
        self._running_lock = threading.Lock()
        self._stuck_logged: set[str] = set()
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=len(STAGES) + 2)},
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
            timezone="UTC",
        )
        self.metrics.watch_state(lambda: self.svc.state.counts() if self.svc else {})

    # --- life cycle -------------------------------------------------------------------------------------

    def run(self) -> int:
        self.signals = SignalInbox()
        started = time.monotonic()
        try:
            self._start_http()
        except OSError as exc:
            self.log.error("http.bind_failed", address=self.settings.http.listen, error=str(exc))
            return exitcodes.CONFIG
        try:
            svc = self._connect_with_retry(self.settings)
        except ProbeError as exc:
            self.log.error("daemon.connect_failed", reason=str(exc), exit_code=exc.code)
            self._stop_http()
            return exc.code
        if svc is None:  # told to stop while still connecting
            self._stop_http()
            self.log.info("daemon.stopped", drained_seconds=0.0)
            return exitcodes.OK
        self.svc = svc
        self._schedule()
        self.scheduler.start()
        self._register_webhook()
        self.metrics.up.set(1)
        self.log.info(
            "daemon.started",
            project=svc.project_id,
            intervals=intervals(self.settings),
            http=self.settings.http.listen or None,
            startup_seconds=round(time.monotonic() - started, 3),
        )
        self.notifier.ready(f"connected to project {svc.project_id}; waiting for the first cycle")
        self._loop()
        self._shutdown()
        return exitcodes.OK

    def _loop(self) -> None:
        ping = watchdog_interval()
        while True:
            signum = self.signals.wait(min(ping or _TICK, _TICK))
            if signum is None:
                if ping and self._alive():
                    self.notifier.watchdog()
                continue
            if signum == signal.SIGHUP:
                self.reload()
                continue
            self.log.info("daemon.stopping", signal=signal.Signals(signum).name, running=self.running())
            return

    def _shutdown(self) -> None:
        started = time.monotonic()
        self.stopping = True
        self.interrupt.set()
        self.notifier.stopping()
        self.scheduler.shutdown(wait=True)
        self._stop_http()
        if self.svc is not None:
            self.svc.close()
        self.log.info("daemon.stopped", drained_seconds=round(time.monotonic() - started, 3))

    def _alive(self) -> bool:
        """False when a stage has run past stage_timeout: withholding the ping lets systemd restart us."""
        limit = self.settings.schedule.stage_timeout
        now = time.monotonic()
        with self._running_lock:
            stuck = [name for name, since in self._running.items() if limit and now - since > limit]
        for name in set(stuck) - self._stuck_logged:
            self.log.error("stage.stuck", stage=name, limit_seconds=limit)
        self._stuck_logged = set(stuck)
        return self.scheduler.running and not stuck

    # --- connecting ---------------------------------------------------------------------------------------

    def _services(self, settings: Settings) -> Services:
        svc = Services.build(settings)
        svc.log = EventTap(svc.log, self.metrics)
        return svc

    def _connect_with_retry(self, settings: Settings) -> Services | None:
        """Build the clients and reach Label Studio (project resolved) and S3; retry while merely unreachable."""
        svc = self._services(settings)
        deadline = time.monotonic() + settings.schedule.startup_timeout
        delay = 1.0
        while True:
            try:
                connect(svc)
                return svc
            except ProbeError as exc:
                if exc.code != exitcodes.UNAVAILABLE or time.monotonic() + delay > deadline:
                    svc.close()
                    raise
                self.log.warning("daemon.waiting", reason=str(exc), retry_in=delay)
                self.notifier.status(f"waiting: {exc}")
            if self.signals.wait(delay) in (signal.SIGTERM, signal.SIGINT):
                svc.close()
                return None
            delay = min(delay * 2, 15.0)

    # --- scheduling ---------------------------------------------------------------------------------------

    def _schedule(self) -> None:
        for stage, seconds in intervals(self.settings).items():
            self.scheduler.add_job(
                self._run_stage,
                "interval",
                seconds=seconds,
                args=[stage],
                id=stage,
                name=stage,
                replace_existing=True,
                next_run_time=datetime.now(UTC),
            )

    def running(self) -> list[str]:
        with self._running_lock:
            return sorted(self._running)

    @contextmanager
    def _tracking(self, name: str) -> Iterator[None]:
        with self._running_lock:
            self._running[name] = time.monotonic()
        try:
            yield
        finally:
            with self._running_lock:
                self._running.pop(name, None)

    def _run_stage(self, stage: str) -> None:
        svc = self.svc
        if self.stopping or svc is None:
            return
        with self._tracking(stage):
            count, seconds, ok = run_stage(svc, stage, stage_functions(svc, self.interrupt)[stage])
            self.log.debug("stage.completed", stage=stage, count=count, seconds=seconds, ok=ok)
        self.metrics.stage(stage, count, seconds, ok)
        self.cycle.add(stage, count, seconds, ok)
        if stage == "export":
            self._cycle_completed(svc)

    def _cycle_completed(self, svc: Services) -> None:
        """A daemon cycle ends with each export run; it reports what every stage did since the previous one."""
        report = self.cycle.take()
        states = svc.state.counts()
        self.log.info("cycle.completed", **report, states=states)
        if report["ok"]:
            self.metrics.last_good_cycle.set(self.cycle.last_good or 0)
        self.notifier.status(self.cycle.status_line(states))

    # --- reload -------------------------------------------------------------------------------------------

    def reload(self) -> None:
        self.notifier.reloading()
        self.log.info("config.reloading", path=self.config_path)
        try:
            settings = load(self.config_path)
            svc = self._services(settings)
        except Exception as exc:
            self._reload_failed(exc)
            return
        try:
            connect(svc)
        except Exception as exc:
            svc.close()
            self._reload_failed(exc)
            return
        if settings.http.listen != self.settings.http.listen:
            self.log.warning("config.restart_needed", key="http.listen", running=self.settings.http.listen)
        self._swap(settings, svc)
        self.log.info("config.reloaded", path=self.config_path, project=svc.project_id, intervals=intervals(settings))
        self.notifier.ready(f"configuration reloaded; project {svc.project_id}")

    def _reload_failed(self, exc: Exception) -> None:
        error = str(exc) if isinstance(exc, ConfigError | ProbeError) else describe_error(exc)
        self.log.error("config.reload_failed", path=self.config_path, error=error, kept="running config")
        self.notifier.ready(f"reload failed, running config kept: {error.splitlines()[0]}")

    def _swap(self, settings: Settings, svc: Services) -> None:
        """Pause, let running stages return (they are asked to), switch clients and intervals, resume."""
        self.scheduler.pause()
        self.interrupt.set()
        deadline = time.monotonic() + (settings.schedule.stage_timeout or 3600)
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.05)
        old, self.svc, self.settings = self.svc, svc, settings
        configure(settings.log.level, settings.log.format)
        self.interrupt.clear()
        self._schedule()
        self.scheduler.resume()
        if old is not None:
            old.close()
        self._register_webhook()

    # --- HTTP: health, metrics, webhook ---------------------------------------------------------------------

    def _start_http(self) -> None:
        if not self.settings.http.listen:
            return
        self.http = HttpServer(self.settings.http.address, self)
        self.http.start()
        self.log.info("http.listening", address=self.settings.http.listen, port=self.http.port)

    def _stop_http(self) -> None:
        if self.http is not None:
            self.http.stop()
            self.http = None

    def health(self) -> tuple[bool, dict[str, Any]]:
        phase = "stopping" if self.stopping else "starting" if self.svc is None else "running"
        return health_report(self.settings, phase, self.cycle.last_good_age())

    def metrics_text(self) -> bytes:
        return self.metrics.render()

    def webhook(self, headers: Any, body: bytes) -> tuple[int, dict[str, Any]]:
        if not webhooks.authorized(headers, self.webhook_secret):
            self.metrics.webhooks.labels("unauthorized").inc()
            self.log.warning("webhook.rejected", reason="missing or wrong secret header")
            return 401, {"error": "unauthorized"}
        try:
            action, task_id = webhooks.task_to_export(body)
        except ValueError as exc:
            self.metrics.webhooks.labels("invalid").inc()
            self.log.warning("webhook.invalid", error=str(exc))
            return 400, {"error": str(exc)}
        if task_id is None or self.stopping:
            self.metrics.webhooks.labels("ignored").inc()
            return 200, {"queued": False, "action": action}
        self.metrics.webhooks.labels("accepted").inc()
        self.log.info("webhook.received", action=action, task=task_id)
        self.scheduler.add_job(
            self._export_now, args=[task_id, time.monotonic()], id=f"webhook-{task_id}", replace_existing=True
        )
        return 202, {"queued": True, "action": action, "task": task_id}

    def _export_now(self, task_id: int, received: float) -> None:
        svc = self.svc
        if svc is None or self.stopping:
            return
        with self._tracking(f"webhook-{task_id}"):
            try:
                written = export_task(svc, svc.labelstudio.task(task_id))
            except Exception as exc:
                self.log.error("webhook.export_failed", task=task_id, error=exc)
                return
        self.log.info("webhook.exported", task=task_id, written=written, seconds=round(time.monotonic() - received, 3))

    def _register_webhook(self) -> None:
        http = self.settings.http
        self.webhook_secret = read_secret(http.webhook_secret_env, http.webhook_secret_file) or ""
        if not (http.public_url and http.listen and self.webhook_secret and self.svc):
            return
        url = webhooks.url_for(http.public_url)
        try:
            hook, created = webhooks.register(self.svc.labelstudio.sdk, self.svc.project_id, url, self.webhook_secret)
        except Exception as exc:
            self.log.error("webhook.register_failed", url=url, error=exc)
            return
        self.log.info("webhook.registered", webhook=hook, project=self.svc.project_id, url=url, created=created)


def connect(svc: Services) -> None:
    """Label Studio answers and the project exists (created if missing), and every source bucket is readable."""
    labelstudio_alive(svc.settings)
    try:
        _ = svc.project_id
    except Exception as exc:
        raise ProbeError(f"Label Studio project: {describe_error(exc)}", classify(exc)) from exc
    buckets_readable(svc.settings, svc.storage.client)


def run(config_path: str, settings: Settings) -> int:
    return Daemon(config_path, settings).run()
