"""Leases on recordings: concurrent claims never share one, an expired claim is taken over, a clean stop hands
everything back."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from syncd.domain.recording import S3Object, Status
from syncd.state.cluster import Instance
from syncd.state.leases import Fence, FencedError
from tests.unit.fakes import POSTGRES_ENV, new_store
from tests.unit.scenarios import discovered, instances


def test_concurrent_claims_never_share_a_recording(tmp_path: Path) -> None:
    fleet = instances(tmp_path, "a", "b", "c")
    discovered(fleet[0], 300)
    got: dict[str, list[int]] = {}

    def work(me: Instance) -> None:
        mine = got.setdefault(me.name, [])
        while batch := me.state.leases.claim(Status.DISCOVERED, 7, me.name, me.lease_seconds):
            mine += [rec.id for rec in batch]
            me.state.recordings.transition([rec.id for rec in batch], Status.DISCOVERED, Status.TRANSCRIBING)

    threads = [threading.Thread(target=work, args=(me,)) for me in fleet]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    claimed = [rec for ids in got.values() for rec in ids]
    assert sorted(claimed) == sorted(set(claimed)) and len(claimed) == 300


def test_a_live_claim_is_left_alone_and_an_expired_one_taken_over(tmp_path: Path) -> None:
    a, b = instances(tmp_path, "a", "b")
    discovered(a, 3)
    assert len(a.state.leases.claim(Status.DISCOVERED, 10, "a", 0.5)) == 3
    assert b.state.leases.claim(Status.DISCOVERED, 10, "b", 30) == []
    assert len(a.state.leases.claim(Status.DISCOVERED, 10, "a", 30)) == 3, "the holder's own claims are renewed"
    a.state.leases.beat("a", 0.3)
    time.sleep(0.4)
    taken = b.state.leases.claim(Status.DISCOVERED, 10, "b", 30)
    assert len(taken) == 3
    assert (
        b.state.leases.count_in_hand(Status.DISCOVERED, "b") == 3
        and a.state.leases.count_in_hand(Status.DISCOVERED, "a") == 0
    )


def test_leaving_hands_everything_back_at_once(tmp_path: Path) -> None:
    a, b = instances(tmp_path, "a", "b")
    a.join()
    discovered(a, 2)
    a.state.leases.claim(Status.DISCOVERED, 10, "a", 30)
    assert a.may_run("import")
    assert [(i["name"], i["holds"], i["claimed"]) for i in b.state.leases.instances()] == [("a", ["import"], 2)]
    a.leave()
    assert b.may_run("import") and len(b.state.leases.claim(Status.DISCOVERED, 10, "b", 30)) == 2
    assert b.state.leases.instances() == []


def test_a_named_lease_is_taken_once_renewed_by_its_holder_and_free_when_released(tmp_path: Path) -> None:
    leases = new_store(tmp_path).leases
    assert leases.take("export", "a", 30) and leases.holder("export") == "a"
    assert not leases.take("export", "b", 30), "a running lease keeps its holder"
    assert leases.take("export", "a", 30), "the holder renews it"
    leases.release("export", "b")
    assert leases.holder("export") == "a", "only the holder releases"
    leases.release("export", "a")
    assert leases.holder("export") is None and leases.take("export", "b", 30)


def test_an_expired_lease_goes_to_the_next_taker_and_beat_reports_only_what_it_renewed(tmp_path: Path) -> None:
    leases = new_store(tmp_path).leases
    leases.join("a", "host", 1, ["export", "import"], "0")
    assert leases.take("export", "a", 0.05) and leases.take("import", "a", 30)
    time.sleep(0.1)
    assert leases.holder("export") is None, "expired"
    assert leases.beat("a", 30) == ["import"], "an expired lease is not renewed by a late beat"
    assert leases.take("export", "b", 30) and leases.holder("export") == "b"
    [row] = [r for r in leases.all() if r["name"] == "export"]
    assert row["holder"] == "b"


def test_join_returns_the_row_it_replaces(tmp_path: Path) -> None:
    leases = new_store(tmp_path).leases
    assert leases.join("a", "host", 1, ["scan"], "0") is None
    old = leases.join("a", "host", 2, ["scan", "export"], "0")
    assert old is not None and old["pid"] == 1
    [me] = leases.instances()
    assert (me["pid"], me["roles"], me["holds"], me["claimed"]) == (2, "scan,export", [], 0)


def test_a_lease_counts_its_changes_of_holder_and_never_restarts_the_count(tmp_path: Path) -> None:
    leases = new_store(tmp_path).leases
    first = leases.take("import", "a", 30)
    assert first is not None and leases.take("import", "a", 30) == first, "a renewal is the same generation"
    leases.release("import", "a")
    second = leases.take("import", "b", 30)
    leases.release("import", "b")
    third = leases.take("import", "a", 30)
    assert second == first + 1 and third == first + 2, "a freed lease keeps its count: a's old work stays fenced"


def test_writes_under_a_lease_taken_since_are_refused_and_write_nothing(tmp_path: Path) -> None:
    """A holder frozen past its lease wakes up: every state change it makes under that lease is refused."""
    store_a, store_b = new_store(tmp_path), new_store(tmp_path)
    generation = store_a.leases.take("import", "a", 0.05)
    assert generation is not None
    ((rec_id, _),) = store_a.recordings.add_objects([S3Object("b", "k.wav", "e", 1)])
    time.sleep(0.1)  # a froze; its lease ran out
    assert store_b.leases.take("import", "b", 30) == generation + 1
    with store_a.db.fenced(Fence("import", "a", generation)):
        with pytest.raises(FencedError, match="held by 'b'"):
            store_a.recordings.transition([rec_id], Status.DISCOVERED, Status.TRANSCRIBING)
        with pytest.raises(FencedError):
            store_a.cursors.set("import-tasks:1", "x")
    assert store_b.recordings.get(rec_id).status == Status.DISCOVERED and store_b.cursors.get("import-tasks:1") is None
    with store_b.db.fenced(Fence("import", "b", generation + 1)):
        assert store_b.recordings.transition([rec_id], Status.DISCOVERED, Status.TRANSCRIBING) == [rec_id]


def test_extend_outlasts_a_request_survives_the_heartbeat_and_refuses_a_lease_taken_since(tmp_path: Path) -> None:
    leases = new_store(tmp_path).leases
    leases.join("a", "host", 1, ["import"], "0")
    generation = leases.take("import", "a", 2)
    assert generation is not None
    fence = Fence("import", "a", generation)
    assert leases.extend(fence, 61) > 60, "long enough for a request with a 60 s timeout"
    leases.beat("a", 2)
    assert leases.take("import", "a", 2) == generation
    [row] = [r for r in leases.all() if r["name"] == "import"]
    assert row["until"] - leases.now() > 59, "neither the heartbeat nor a renewal shortens it"
    leases.release("import", "a")
    assert leases.take("import", "b", 30) == generation + 1
    with pytest.raises(FencedError, match="taken by another instance"):
        leases.extend(fence, 61)


@pytest.mark.skipif(not os.environ.get(POSTGRES_ENV), reason="the database's clock is PostgreSQL's")
def test_on_postgresql_a_skewed_instance_clock_still_gives_one_holder(tmp_path: Path) -> None:
    """Lease times come from the database: an instance whose clock runs an hour ahead (it would see every lease as
    long expired) does not take a running one, nor claim recordings another instance holds."""
    honest, ahead = new_store(tmp_path), new_store(tmp_path)
    ahead.leases.clock = lambda: time.time() + 3600
    assert honest.leases.take("export", "a", 30) and not ahead.leases.take("export", "b", 30)
    assert ahead.leases.holder("export") == "a"
    honest.recordings.add_objects([S3Object("b", "k.wav", "e", 1)])
    assert len(honest.leases.claim(Status.DISCOVERED, 10, "a", 30)) == 1
    assert ahead.leases.claim(Status.DISCOVERED, 10, "b", 30) == []


def test_on_sqlite_lease_times_are_the_instance_clock(tmp_path: Path) -> None:
    """The contrast the PostgreSQL test relies on: with the instances' own clocks, one running an hour ahead sees a
    running lease as expired (why a shared state reads the database's clock)."""
    if os.environ.get(POSTGRES_ENV):
        pytest.skip("SQLite only")
    honest, ahead = new_store(tmp_path), new_store(tmp_path)
    ahead.leases.clock = lambda: time.time() + 3600
    assert honest.leases.take("export", "a", 30) and ahead.leases.take("export", "b", 30)
