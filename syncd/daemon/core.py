"""`syncd run`: the daemon's life cycle: connect, schedule the stages, serve HTTP, answer signals until told to stop.

* SIGTERM/SIGINT: stop starting work, let running stages finish (drain), STOPPING=1, exit 0.
* SIGHUP: re-read the config on a worker thread (connecting and waiting for running stages may take long); the main
  loop keeps answering signals and pinging the watchdog meanwhile. An invalid config (or an unreadable secret) is
  logged and the running one kept.
* WATCHDOG=1 while no stage has been silent (no heartbeat) longer than ``schedule.stage_timeout``.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from syncd import errors
from syncd.config import Settings, load
from syncd.daemon.health import Probes, dependencies_up, health_report
from syncd.daemon.http import HttpServer
from syncd.daemon.jobs import StageJobs
from syncd.daemon.metrics import Metrics
from syncd.daemon.notify import Notifier, status_line, watchdog_interval
from syncd.daemon.signals import STOP, SignalInbox
from syncd.daemon.webhook import WebhookEndpoint, read_webhook_secret
from syncd.errors import ConfigError, ProbeError, classify
from syncd.faults import fault_point
from syncd.log import add_event_sink, configure, describe_error, get_logger, remove_event_sink
from syncd.pipeline import Cycle, StageRun, report_cycle, run_stage
from syncd.services import Services
from syncd.stages import BY_NAME, STAGES, Stage, import_doubt
from syncd.stages.export import webhooked

_TICK = 5.0
SUMMARY_EVERY = 300.0
"""Seconds between two ``daemon.summary`` events at info: idle cycles log at debug, so this keeps journald useful."""


class Daemon:
    def __init__(self, config_path: str, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        """``clock`` times the stages' heartbeats for the watchdog (monotonic seconds; a test passes its own)."""
        self.config_path = config_path
        self.settings = settings
        self.log = get_logger()
        self.metrics = Metrics()
        self.notifier = Notifier()
        roles = tuple(settings.instance.roles)
        self.cycle = Cycle(roles)
        self.summary = Cycle(roles)
        self._summary_due = time.monotonic() + SUMMARY_EVERY
        self.last_good: float | None = None  # monotonic
        self.interrupt = threading.Event()  # asks running stages to return early (shutdown, reload)
        self.stopping = False
        self.svc: Services | None = None
        self.http: HttpServer | None = None
        self.jobs = StageJobs(self._run_stage, clock)
        self.webhook = WebhookEndpoint(self.metrics, self._queue_export)
        self._stuck_logged: set[str] = set()
        self.probes = Probes(settings)
        self._reload_lock = threading.Lock()  # guards the two flags below
        self._reloading = False
        self._reload_again = False
        self._reload_thread: threading.Thread | None = None
        self._swap_lock = threading.Lock()  # a reload's switch-over and the shutdown never interleave
        self.metrics.watch_state(lambda: self.svc.state.recordings.counts() if self.svc else {})
        self.metrics.watch_dependencies(self._dependencies_up)
        self.metrics.watch_parked(lambda: self.svc.state.export_queue.parked_counts() if self.svc else {})
        self.metrics.watch_backlog(lambda: self.svc.state.recordings.backlog_seconds() if self.svc else {})
        self.metrics.watch_projects(lambda: self.svc.state.tasks.project_task_counts() if self.svc else {})
        self.metrics.watch_leases(lambda: self.svc.instance.held_leases() if self.svc else {})
        self.metrics.watch_instances(lambda: self.svc.instance.peer_counts() if self.svc else {})
        self.metrics.watch_oldest(lambda: self.svc.state.recordings.oldest_since() if self.svc else {})
        self.metrics.stuck.set_function(lambda: len(self.jobs.stuck(self.settings.schedule.stage_timeout)))
        self.metrics.watch_import_doubt(lambda: import_doubt.in_doubt(self.svc.state) if self.svc else None)
        self.metrics.watch_twins(lambda: self.svc.state.twins.counts() if self.svc else {})
        self.metrics.watch_refused(lambda: self.svc.state.refusals.counts() if self.svc else {})
        self.metrics.watch_webhooks(lambda: self.svc.state.export_queue.webhook_backlog() if self.svc else (0, None))
        self.metrics.watch_unchecked(
            lambda: {str(p): n for p, n in self.svc.state.tasks.unchecked_predictions().items()} if self.svc else {}
        )

    # --- life cycle -------------------------------------------------------------------------------------

    def run(self) -> int:
        add_event_sink(self.metrics.observe)
        try:
            return self._run()
        finally:
            remove_event_sink(self.metrics.observe)

    def _run(self) -> int:
        self.signals = SignalInbox()
        started = time.monotonic()
        try:
            secret = read_webhook_secret(self.settings)
        except ConfigError as exc:
            self.log.error("daemon.config_invalid", error=str(exc), exit_code=errors.CONFIG)
            return errors.CONFIG
        try:
            self._start_http()
        except OSError as exc:
            self.log.error("http.bind_failed", address=self.settings.http.listen, error=str(exc))
            return errors.CONFIG
        try:
            svc = self._connect_with_retry(self.settings)
        except ProbeError as exc:
            self.log.error("daemon.connect_failed", reason=str(exc), exit_code=exc.code)
            self._stop_http()
            return exc.code
        if svc is None:  # told to stop while still connecting
            self._stop_http()
            self.log.info("daemon.stopped", drained_seconds=0.0)
            return errors.OK
        self.svc = svc
        self._schedule(svc)
        self.jobs.scheduler.start()
        self.webhook.register(self.settings, svc, secret)
        self.metrics.up.set(1)
        self.log.info(
            "daemon.started",
            project=svc.projects.current,
            intervals=intervals(self.settings),
            http=self.settings.http.listen or None,
            startup_seconds=round(time.monotonic() - started, 3),
        )
        self.notifier.ready(f"connected to project {svc.projects.current}; waiting for the first cycle")
        self._loop()
        self._shutdown()
        return errors.OK

    def _loop(self) -> None:
        ping = watchdog_interval()
        while True:
            signum = self.signals.wait(min(ping or _TICK, _TICK))
            if signum is None:
                if ping and self.alive():
                    self.notifier.watchdog()
                continue
            if signum == signal.SIGHUP:
                self.request_reload()
                continue
            self.log.info("daemon.stopping", signal=signal.Signals(signum).name, running=self.jobs.running())
            return

    def _shutdown(self) -> None:
        started = time.monotonic()
        with self._swap_lock:
            self.stopping = True
        self.webhook.accepting = False
        self.interrupt.set()
        self.notifier.stopping()
        self.jobs.scheduler.shutdown(wait=True)
        if self._reload_thread is not None:
            self._reload_thread.join(5)  # a reload still connecting gives up on its own; it never resumes the jobs
        self._stop_http()
        if self.svc is not None:
            self.svc.close()
        self.log.info("daemon.stopped", drained_seconds=round(time.monotonic() - started, 3))

    def alive(self) -> bool:
        """False when a stage has run past stage_timeout: withholding the ping lets systemd restart us."""
        limit = self.settings.schedule.stage_timeout
        stuck = set(self.jobs.stuck(limit))
        for name in stuck - self._stuck_logged:
            self.log.error("stage.stuck", stage=name, limit_seconds=limit)
        self._stuck_logged = stuck
        return bool(self.jobs.scheduler.running) and not stuck

    def _connect_with_retry(self, settings: Settings) -> Services | None:
        """Build the clients and reach the state, Label Studio (project ready) and S3; retry while merely
        unreachable."""
        svc: Services | None = None
        deadline = time.monotonic() + settings.schedule.startup_timeout
        delay = 1.0
        while True:
            try:
                svc = svc or _build(settings)
                svc.connect(warm=True)
                return svc
            except ProbeError as exc:
                if exc.code != errors.UNAVAILABLE or time.monotonic() + delay > deadline:
                    if svc is not None:
                        svc.close()
                    raise
                self.log.warning("daemon.waiting", reason=str(exc), retry_in=delay)
                self.notifier.status(f"waiting: {exc}")
            if self.signals.wait(delay) in STOP:
                if svc is not None:
                    svc.close()
                return None
            delay = min(delay * 2, 15.0)

    # --- stages and cycles --------------------------------------------------------------------------------

    def _schedule(self, svc: Services) -> None:
        """The stages of this instance's roles, and its heartbeat."""
        self.jobs.schedule(svc.settings)
        self.jobs.every("instance", svc.instance.renew_every, self._beat)
        if svc.instance.runs("export"):
            self.jobs.every("webhooks", svc.settings.schedule.webhook_interval, self._export_webhooks)
        else:
            self.jobs.cancel("webhooks")

    def _beat(self) -> None:
        """Renew this instance's leases, and take over a stage whose holder stopped renewing (that stage then runs
        at once); a state that cannot be reached is logged, and the stages say the rest."""
        svc = self.svc
        if svc is None or self.stopping:
            return
        try:
            svc.instance.beat()
            for stage in svc.instance.take_free():
                self.jobs.run_now(stage)
        except Exception as exc:
            self.log.warning("instance.beat_failed", error=describe_error(exc))

    def _run_stage(self, stage: Stage) -> None:
        svc = self.svc
        if self.stopping or svc is None:
            return
        fault_point(f"stage.{stage.name}")
        run = run_stage(svc, stage, self.interrupt)
        if run.count and stage.feeds and not self.stopping:
            self.jobs.run_now(stage.feeds)
        self._count(svc, run)

    def _count(self, svc: Services, run: StageRun) -> None:
        """Every stage run, scheduled or from a webhook, lands here; a cycle is reported once every stage has run."""
        self.summary.add(run)
        if not self.cycle.add(run):
            return
        report = self.cycle.take()
        report_cycle(svc, report)
        if report["ok"]:
            self.last_good = time.monotonic()
            self.metrics.last_good_cycle.set(time.time())
        self.notifier.status(status_line(svc.state.recordings.counts(), self.last_good_age()))
        if time.monotonic() >= self._summary_due:
            self._summary_due = time.monotonic() + SUMMARY_EVERY
            self.log.info("daemon.summary", **self.summary.take(), states=svc.state.recordings.counts())

    def last_good_age(self) -> float | None:
        return None if self.last_good is None else round(time.monotonic() - self.last_good, 3)

    def _queue_export(self, task_id: int, project: int | None) -> None:
        """Leave the delivery in the state for the export lease holder (this instance or another), and when this one
        holds the lease, export it now."""
        svc = self.svc
        if svc is None:
            raise RuntimeError("not connected yet")
        svc.state.export_queue.queue_webhook(task_id, project)
        if "export" in svc.instance.holds:
            self.jobs.run_now("webhooks")

    def _export_webhooks(self) -> None:
        """The webhook job: on the export lease holder, export the deliveries waiting in the state (any instance's).
        One read of the state per tick when none wait; the lease is only touched when some do."""
        svc = self.svc
        if svc is None or self.stopping or "export" not in svc.instance.holds:
            return
        if not svc.state.export_queue.webhook_deliveries(limit=1):
            return
        with self.jobs.tracking("webhooks"):
            run = run_stage(svc, BY_NAME["export"], self.interrupt, work=lambda: webhooked(svc, self.interrupt))
        self._count(svc, run)

    # --- reload -------------------------------------------------------------------------------------------

    def request_reload(self) -> None:
        """Start a reload on a worker thread; a SIGHUP during a reload makes it run once more afterwards."""
        with self._reload_lock:
            if self._reloading:
                self._reload_again = True
                return
            self._reloading = True
        self._reload_thread = threading.Thread(target=self._reload_worker, name="syncd-reload", daemon=True)
        self._reload_thread.start()

    def _reload_worker(self) -> None:
        while True:
            try:
                self.reload()
            except Exception as exc:
                self._reload_failed(exc)
            with self._reload_lock:
                if not self._reload_again or self.stopping:
                    self._reloading = self._reload_again = False
                    return
                self._reload_again = False

    def reload(self) -> None:
        self.notifier.reloading()
        self.log.info("config.reloading", path=self.config_path)
        try:
            settings = load(self.config_path)
            secret = read_webhook_secret(settings)
            svc = Services.build(settings, paced=True)
        except Exception as exc:
            self._reload_failed(exc)
            return
        try:
            svc.connect()
        except Exception as exc:
            svc.close()
            self._reload_failed(exc)
            return
        if settings.http.listen != self.settings.http.listen:
            self.log.warning("config.restart_needed", key="http.listen", running=self.settings.http.listen)
        if not self._swap(settings, svc):
            svc.close()
            return
        self.webhook.register(settings, svc, secret)
        self.log.info(
            "config.reloaded", path=self.config_path, project=svc.projects.current, intervals=intervals(settings)
        )
        self.notifier.ready(f"configuration reloaded; project {svc.projects.current}")

    def _reload_failed(self, exc: Exception) -> None:
        error = str(exc) if isinstance(exc, ConfigError | ProbeError) else describe_error(exc)
        self.log.error("config.reload_failed", path=self.config_path, error=error, kept="running config")
        self.notifier.ready(f"reload failed, running config kept: {error.splitlines()[0]}")

    def _swap(self, settings: Settings, svc: Services) -> bool:
        """Pause, let running stages return (they are asked to), switch clients and intervals, resume. Runs on the
        reload worker: the main loop keeps pinging the watchdog however long a stage takes to return. False when
        the daemon began stopping meanwhile (nothing switched)."""
        self.jobs.scheduler.pause()
        self.interrupt.set()
        self.jobs.drain(time.monotonic() + (settings.schedule.stage_timeout or 3600), give_up=lambda: self.stopping)
        with self._swap_lock:
            if self.stopping:
                return False
            old, self.svc, self.settings = self.svc, svc, settings
            self.probes = Probes(settings)
            configure(settings.log.level, settings.log.format)
            self.interrupt.clear()
            self._schedule(svc)
            self.jobs.scheduler.resume()
        if old is not None:
            old.close(leave=False)  # the new clients hold this instance's leases now
        return True

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
        svc = self.svc
        if svc is None:
            return health_report(self.settings, phase, self.last_good_age(), self.probes)
        try:
            parked = sum(svc.state.export_queue.parked_counts().values())
            ok, body = health_report(self.settings, phase, self.last_good_age(), self.probes, svc.state, parked)
        except Exception as exc:  # the state database itself is unreachable
            check = {"ok": False, "up": False, "error": describe_error(exc), "where": svc.state.where}
            ok, body = False, {"status": "failing", "checks": {"state": check}, "down": ["state"]}
        me = svc.instance
        return ok, body | {"instance": {"name": me.name, "roles": list(me.roles), "holds": sorted(me.holds)}}

    def _dependencies_up(self) -> dict[str, bool]:
        return {} if self.svc is None else dependencies_up(self.probes, self.svc.state)

    def metrics_text(self) -> bytes:
        return self.metrics.render()

    def webhook_delivery(self, headers: Any, body: bytes) -> tuple[int, dict[str, Any]]:
        return self.webhook.handle(headers, body)


def _build(settings: Settings) -> Services:
    """The clients; a state database that cannot be reached (PostgreSQL down) is waited for like the services, a
    token that can never work stops the daemon (78)."""
    try:
        return Services.build(settings, paced=True)
    except ConfigError as exc:
        raise ProbeError(str(exc), errors.CONFIG) from exc
    except Exception as exc:
        if classify(exc) != errors.UNAVAILABLE:
            raise
        raise ProbeError(f"state: {describe_error(exc)}", errors.UNAVAILABLE) from exc


def intervals(settings: Settings) -> dict[str, float]:
    return {stage.name: stage.interval(settings) for stage in STAGES}


def run(config_path: str, settings: Settings) -> int:
    return Daemon(config_path, settings).run()
