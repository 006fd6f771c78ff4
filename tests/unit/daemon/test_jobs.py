"""Stage jobs: one per role, replaced on reload; a running job is stuck only once it has been silent too long."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd import heartbeat
from syncd.daemon.jobs import StageJobs
from syncd.stages import STAGE_NAMES, Stage
from tests.unit.fakes import settings


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _jobs(clock: Clock | None = None) -> StageJobs:
    return StageJobs(lambda _stage: None, clock=clock or Clock())


@pytest.fixture
def paused() -> Iterator[StageJobs]:
    """Jobs on a started, paused scheduler: jobs are added and replaced as in the daemon, none runs."""
    jobs = _jobs()
    jobs.scheduler.start(paused=True)
    try:
        yield jobs
    finally:
        jobs.scheduler.shutdown(wait=False)


def test_one_job_per_role_and_a_reload_drops_the_roles_taken_away(paused: StageJobs, tmp_path: Path) -> None:
    jobs = paused
    jobs.schedule(settings(tmp_path))
    assert sorted(j.id for j in jobs.scheduler.get_jobs()) == sorted(STAGE_NAMES)
    jobs.schedule(settings(tmp_path, instance={"roles": ["export"]}, schedule={"export_interval": 7}))
    (job,) = jobs.scheduler.get_jobs()
    assert job.id == "export" and job.trigger.interval.total_seconds() == 7


def test_housekeeping_one_off_and_cancelled_jobs(paused: StageJobs) -> None:
    jobs = paused
    jobs.every("beat", 5, lambda: None)
    jobs.submit("webhook-7", print, "a")
    jobs.submit("webhook-7", print, "b")  # a newer one of the same name replaces it
    assert sorted(j.id for j in jobs.scheduler.get_jobs()) == ["beat", "webhook-7"]
    assert jobs.scheduler.get_job("webhook-7").args == ("b",)
    jobs.cancel("beat")
    jobs.cancel("never-there")
    jobs.run_now("never-there")
    assert [j.id for j in jobs.scheduler.get_jobs()] == ["webhook-7"]


def test_a_job_is_stuck_once_silent_longer_than_the_limit_and_a_beat_revives_it() -> None:
    clock = Clock()
    jobs = _jobs(clock)
    with jobs.tracking("transcribe"):
        assert jobs.running() == ["transcribe"]
        clock.now += 30
        assert jobs.stuck(60) == []
        clock.now += 31
        assert jobs.stuck(60) == ["transcribe"]
        assert jobs.stuck(0) == []  # no limit configured: never stuck
        heartbeat.beat()
        assert jobs.stuck(60) == []
    assert jobs.running() == [] and jobs.stuck(60) == []


def test_a_scheduled_stage_runs_at_once_and_is_tracked_while_it_runs(tmp_path: Path) -> None:
    seen: list[tuple[str, list[str]]] = []
    ran = threading.Event()

    def run(stage: Stage) -> None:
        seen.append((stage.name, jobs.running()))
        ran.set()

    jobs = StageJobs(run)
    jobs.schedule(settings(tmp_path, instance={"roles": ["scan"]}))
    jobs.scheduler.start()
    try:
        assert ran.wait(10)
        assert jobs.drain(time.monotonic() + 10)
    finally:
        jobs.scheduler.shutdown()
    assert seen == [("scan", ["scan"])] and jobs.running() == []


def test_drain_waits_for_running_jobs_or_gives_up() -> None:
    jobs = _jobs()
    assert jobs.drain(time.monotonic() + 5)
    release = threading.Event()
    entered = threading.Event()

    def work() -> None:
        with jobs.tracking("export"):
            entered.set()
            release.wait(10)

    worker = threading.Thread(target=work)
    worker.start()
    try:
        assert entered.wait(5)
        assert not jobs.drain(time.monotonic() + 0.05)
        assert not jobs.drain(time.monotonic() + 60, give_up=lambda: True)
        release.set()
        assert jobs.drain(time.monotonic() + 10)
    finally:
        release.set()
        worker.join(5)
