"""A lease holder frozen (SIGSTOP) in the middle of a fenced transaction, on a real PostgreSQL: the lease row it
locked is freed by the server within ``hold_limit``, another instance takes the lease on time instead of queueing
behind the frozen one, and the woken holder writes nothing: its open transaction was rolled back and its next one is
fenced."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from devstack import PG_PASSWORD, ROOT, Postgres, until
from syncd.state import StateStore
from syncd.state.cluster import Instance

LEASE = 3.0
HOLD = LEASE / 3

HOLDER = textwrap.dedent(
    """
    import json, os, signal, sys
    from syncd.state import StateStore
    from syncd.state.cluster import Instance
    from syncd.errors import UNAVAILABLE, classify
    from syncd.state.db import FencedError

    store = StateStore(sys.argv[1], hold_limit=float(sys.argv[2]))
    holder = Instance("frozen", ("export",), float(sys.argv[3]), store)
    holder.join()
    assert holder.may_run("export")
    outcome = {}
    with holder.fence("export"):
        try:
            with store.batch():
                store.cursors.set("export:1", "1")
                os.kill(os.getpid(), signal.SIGSTOP)  # frozen with the lease row locked
                store.cursors.set("export-sweep:1", "1")
        except Exception as exc:
            outcome["open"] = {"error": type(exc).__name__, "outage": classify(exc) == UNAVAILABLE}
        try:
            store.cursors.set("export-sweep:1", "1")
        except FencedError as exc:
            outcome["next"] = str(exc)
    outcome["reads"] = store.cursors.get("export:1")
    print(json.dumps(outcome), flush=True)
    """
)


def _stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"


def test_a_holder_frozen_inside_a_transaction_neither_stalls_the_others_nor_writes_after_waking(
    postgres: Postgres, tmp_path: Path
) -> None:
    url = postgres.database("frozen").replace("syncd@", f"syncd:{PG_PASSWORD}@")
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url, str(HOLD), str(LEASE)], env=env, stdout=subprocess.PIPE, text=True
    )
    watchdog = threading.Timer(0, lambda: None)
    try:
        until(
            lambda: _stopped(proc.pid),
            60,
            "the holder to reach its freeze",
            interval=0.05,
            abort=lambda: None if proc.poll() is None else f"the holder exited with {proc.returncode}",
        )
        frozen = time.monotonic()
        # Were the lock not freed, taking the lease would queue behind it: wake the holder late, and fail on time.
        watchdog = threading.Timer(4 * LEASE, proc.send_signal, (signal.SIGCONT,))
        watchdog.start()

        store = StateStore(url, hold_limit=HOLD)
        other = Instance("other", ("export",), LEASE, store)
        other.join()
        # each try returns; none waits on the frozen holder's lock
        until(lambda: other.may_run("export"), 4 * LEASE, "the lease taken from the frozen holder", interval=0.1)
        taken = time.monotonic() - frozen
        assert taken <= LEASE + 1, f"taken {taken:.1f}s after the freeze"
        assert store.leases.holder("export") == "other"
    finally:
        watchdog.cancel()
        proc.send_signal(signal.SIGCONT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    outcome = json.loads(out.strip().splitlines()[-1])
    # The server ended the frozen transaction; the woken process takes it as an outage, never a recording's fault.
    assert outcome["open"] == {"error": "InternalError", "outage": True}, outcome
    assert "is now held by 'other'" in outcome["next"], outcome  # and its next write is fenced
    assert outcome["reads"] is None and store.cursors.get("export:1") is None
    assert store.cursors.get("export-sweep:1") is None
