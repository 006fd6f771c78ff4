"""`syncd status`: the running and recorded versions, each instance with its release, what it holds and works on."""

from __future__ import annotations

import time
from pathlib import Path

from syncd import __version__
from syncd.commands.status import format_status, status_report
from syncd.domain.recording import Status
from syncd.state import migrate
from tests.unit.scenarios import discovered, instances


def test_status_lists_each_instance_with_what_it_holds(tmp_path: Path) -> None:
    a, b = instances(tmp_path, "a", "b", lease=0.5)
    a.join()
    b.join()
    discovered(a, 3)
    b.state.leases.claim(Status.DISCOVERED, 2, "b", 30)
    time.sleep(0.6)  # b stops renewing (killed); a goes on
    assert a.may_run("export")
    a.beat()
    report = status_report(a.state, lease_seconds=0.5)
    rows = {i["name"]: i for i in report["instances"]}
    assert (rows["a"]["holds"], rows["a"]["silent"], rows["a"]["working_on"]) == (["export"], False, 0)
    assert (rows["b"]["holds"], rows["b"]["silent"], rows["b"]["working_on"]) == ([], True, 2)
    assert rows["a"]["roles"] == ["scan", "transcribe", "import", "export"]
    text = format_status(report)
    assert f"syncd {__version__} " in text.split("\n  a ")[1].split("\n")[0]
    assert text.startswith(f"syncd {__version__}; state schema {migrate.head()} (this release's newest:")
    assert "holds export; working on 0" in text and "SILENT" in text.split("\n  b ")[1].split("\n")[0]
    assert a.peer_counts() == {"live": 1, "silent": 1}
    assert a.held_leases() == {"export": 1, "import": 0, "project": 0, "scan": 0}
