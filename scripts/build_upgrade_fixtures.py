"""Build tests/fixtures/upgrade: each earlier release's source (from git history) and the state it writes on the real
stack, for the upgrade tests (tests/integration/test_upgrade.py).

For every release in devstack.releases.RELEASES: ``git archive`` of its ``syncd`` package into
``syncd-<version>.tar.gz``, its ``syncd config example`` into ``config-example-<version>.toml``, then, on one fresh
local stack (Label Studio, SeaweedFS, moto), the release itself imports three recordings and exports two reviews
(devstack.releases.first_half) and its SQLite state is kept as ``state-<version>.db``. Run it once per new release,
from the repository root, with the full git history present:

    .venv/bin/python -m scripts.build_upgrade_fixtures [VERSION ...]
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import tempfile
from contextlib import closing
from pathlib import Path

from devstack import ROOT, running_stack
from devstack.releases import RELEASES, UPGRADE_FIXTURES, Release, first_half, run_release, unpack


def archive(release: Release) -> None:
    subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar.gz", "-o", str(release.tarball), release.commit, "syncd"],
        check=True,
    )


def keep(state: Path, kept: Path) -> None:
    """A consistent copy of a SQLite state (SQLite's online backup: whatever a journal still held included)."""
    kept.unlink(missing_ok=True)
    with closing(sqlite3.connect(state)) as source, closing(sqlite3.connect(kept)) as copy:
        source.backup(copy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("versions", nargs="*", default=sorted(RELEASES), help="releases to build (default: all)")
    releases = [RELEASES[v] for v in parser.parse_args().versions]
    UPGRADE_FIXTURES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="syncd-fixtures-") as tmp, running_stack() as stack:
        s3, ls = stack.s3.client(), stack.labelstudio.client()
        for release in releases:
            archive(release)
            work = Path(tmp) / release.version
            source = unpack(release, work / "source")
            example = run_release(source, ["config", "example"], stack).stdout
            release.example.write_text(example)
            bucket = f"upgrade-{release.version.replace('.', '-')}"
            s3.create_bucket(Bucket=bucket)
            first_half(release, source, stack, s3, ls, bucket, work / "syncd.toml", f"upgrade from {release.version}")
            keep(work / "state.db", release.state)
            print(f"{release.version} ({release.commit[:7]}): {release.tarball.name}, {release.state.name}")


if __name__ == "__main__":
    main()
