"""Instances sharing a state: roles, stage leases that fail over, one live process per name, project set-up under its
lease."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import get_args

import pytest
from structlog.testing import capture_logs

from syncd.config import Role
from syncd.errors import ConfigError
from syncd.pipeline import run_stage
from syncd.stages import BY_NAME, STAGE_NAMES
from syncd.state.cluster import PROJECT, Instance
from tests.unit.fakes import services
from tests.unit.scenarios import instances


def test_roles_are_the_stages() -> None:
    assert get_args(Role) == STAGE_NAMES


def test_a_stage_lease_has_one_holder_and_fails_over_when_it_runs_out(tmp_path: Path) -> None:
    a, b = instances(tmp_path, "a", "b", lease=0.5)
    assert a.may_run("export") and a.may_run("transcribe")
    assert not b.may_run("export"), "held by a"
    assert b.may_run("transcribe"), "per-recording work takes no stage lease"
    assert b.state.leases.holder("export") == "a"
    a.beat()
    assert not b.may_run("export")
    time.sleep(0.6)  # a stops renewing (killed)
    with capture_logs() as logs:
        assert b.may_run("export")
        assert a.beat() == [] and not a.may_run("export")
    assert [(e["event"], e["instance"]) for e in logs] == [("lease.acquired", "b"), ("lease.lost", "a")]


def test_a_second_live_process_under_the_same_name_is_refused(tmp_path: Path) -> None:
    [a] = instances(tmp_path, "same")
    a.join()
    a.state.leases.join("same", socket.gethostname(), 1, ["scan"], "0")  # pid 1 is alive
    with pytest.raises(ConfigError, match=r"instance\.name"):
        a.join()


def test_project_set_up_waits_for_the_other_instance(tmp_path: Path) -> None:
    a, b = instances(tmp_path, "a", "b", lease=5)
    order: list[str] = []
    refused = threading.Event()

    def waiting() -> bool:
        """``exclusively`` asks whether to stop each time it found the lease held: b is waiting now."""
        refused.set()
        return False

    def set_up(me: Instance) -> None:
        with me.exclusively(PROJECT, stop=waiting):
            order.append(f"{me.name} set up")

    with a.exclusively(PROJECT):
        other = threading.Thread(target=set_up, args=(b,))
        other.start()
        assert refused.wait(10), "b never found the lease held"
        order.append("a set up")
    other.join(10)
    assert order == ["a set up", "b set up"]


def test_a_stage_outside_the_roles_does_nothing(tmp_path: Path) -> None:
    svc, *_ = services(tmp_path, instance={"name": "gpu-1", "roles": ["transcribe"]})
    ran: list[str] = []
    run = run_stage(svc, BY_NAME["export"], threading.Event(), work=lambda: ran.append("export") or 1)
    assert (run.count, run.ok, ran) == (0, True, [])
    assert svc.instance.roles == ("transcribe",)


def test_a_standby_takes_the_stages_whose_holder_stopped_within_one_lease(tmp_path: Path) -> None:
    a, b = instances(tmp_path, "a", "b", lease=0.6)  # leases last 0.4 s, renewed every 0.2 s
    assert a.may_run("export")
    assert b.take_free() == ["scan", "import"], "free ones only: export is a's"
    a.beat()
    assert b.take_free() == []
    time.sleep(0.45)  # a died after its last renewal
    assert b.take_free() == ["export"]
    assert b.state.leases.holder("export") == "b"


def test_a_lease_that_ran_out_unrenewed_is_lost_even_when_no_one_took_it(tmp_path: Path) -> None:
    """A holder frozen past its lease must not go on believing (nor report in /metrics) that it holds it."""
    [a] = instances(tmp_path, "a", lease=0.6)  # leases last 0.4 s
    assert a.may_run("export")
    time.sleep(0.5)  # frozen: no renewal
    with capture_logs() as logs:
        assert a.beat() == []
    assert [(e["event"], e["lease"]) for e in logs] == [("lease.lost", "export")]
    assert a.held_leases()["export"] == 0 and a.state.leases.holder("export") is None
