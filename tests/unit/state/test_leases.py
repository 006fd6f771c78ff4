"""Leases on recordings: concurrent claims never share one, an expired claim is taken over, a clean stop hands
everything back."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from syncd.domain.recording import Status
from syncd.state.cluster import Instance
from tests.unit.fakes import new_store
from tests.unit.scenarios import discovered, instances


def test_concurrent_claims_never_share_a_recording(tmp_path: Path) -> None:
    fleet = instances(tmp_path, "a", "b", "c")
    discovered(fleet[0], 300)
    got: dict[str, list[int]] = {}

    def work(me: Instance) -> None:
        mine = got.setdefault(me.name, [])
        while batch := me.state.leases.claim(Status.DISCOVERED, 7, me.name, me.lease_seconds):
            mine += [rec.id for rec in batch]
            me.state.transition([rec.id for rec in batch], Status.DISCOVERED, Status.TRANSCRIBING)

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
