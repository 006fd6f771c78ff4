"""The state store on a real PostgreSQL server: the whole unit tier again, each test on a database of its own."""

from __future__ import annotations

import os
import subprocess
import sys

from devstack import PG_PASSWORD, ROOT, Postgres
from tests.unit.fakes import POSTGRES_ENV


def test_the_unit_tier_passes_on_postgresql(postgres: Postgres) -> None:
    env = os.environ | {POSTGRES_ENV: f"postgresql://syncd:{PG_PASSWORD}@127.0.0.1:{postgres.port}"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/unit"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary, summary
