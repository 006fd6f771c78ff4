"""Drift, found on purpose before a user meets it: resolve the newest versions every range allows (pyproject.toml's
and each ``locks/label-studio-*.in``), with no lock; print which packages moved against the locks and which of our
own caps hold one back; install them into ``.stack/latest/``; run the unit tier and the end-to-end tests against
the real stack on them; say what broke. Its failure is a finding to fix in ranges and locks (``scripts/lock``),
never a red main: CI does not run it.

    scripts/check-latest            # resolve, install, test (a few minutes: downloads what moved)
    scripts/check-latest --no-tests # resolve and print what moved only
    scripts/check-latest --uncapped # Label Studio on its own ranges alone: is a cap of ours still needed?
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from devstack.locks import LOCKS, inputs, moved, pins
from devstack.services import ROOT, STACK_DIR

UV = STACK_DIR / "tools" / "bin" / "uv"
LATEST = STACK_DIR / "latest"
END_TO_END = ["tests/integration/test_e2e_whisper.py", "tests/integration/test_labelstudio_versions.py"]
"""Whisper → Label Studio → review → S3, and the smoke run on the oldest and newest Label Studio releases."""
LABEL_STUDIO = {"1.23.2": "ls-venv", "1.17.0": "ls-old-venv"}


def uv(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1"}
    proc = subprocess.run([str(UV), *args], env=env, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise SystemExit(f"check-latest: uv {' '.join(args)} failed:\n{proc.stderr.strip()}")
    return proc


def newest(out: Path, *sources: str) -> Path:
    """Resolve ``sources`` afresh (no lock, no preferences) into ``out``, for every platform as scripts/lock does,
    so that what moved is compared like for like."""
    universal = ("--universal", "--python-version", "3.11")
    uv("pip", "compile", "--quiet", "--upgrade", *universal, "--no-header", *sources, "-o", str(out))
    return out


def uncapped(source: Path, out: Path) -> Path:
    """``source`` without our own caps: only its ``label-studio==`` line, so Label Studio's ranges alone decide."""
    kept = [str(r) for r in inputs(source) if r.name == "label-studio"]
    plain = out.with_suffix(".in")
    plain.write_text("\n".join(kept) + "\n")
    return newest(out, str(plain))


def report_moves(title: str, lock: Path, resolved: Path) -> int:
    changes = moved(pins(lock), pins(resolved))
    print(f"\n{title}: {len(changes)} moved against {lock.relative_to(ROOT)}")
    for name, old, new in changes:
        print(f"  {name:32} {old:>24} -> {new}")
    return len(changes)


def report_caps(source: Path, resolved: Path, free: Path) -> None:
    held = moved(pins(resolved), pins(free))
    for name, capped, unheld in held:
        if name != "label-studio":
            print(f"  held back by {source.relative_to(ROOT)}: {name} {capped} (Label Studio's ranges alone: {unheld})")


def install(venv: Path, requirements: Path, *editable: str) -> None:
    if venv.exists():
        shutil.rmtree(venv)
    uv("venv", "-q", "--python", sys.executable, str(venv))
    uv("pip", "sync", "-q", "--python", str(venv / "bin" / "python"), str(requirements))
    if editable:
        uv("pip", "install", "-q", "--no-deps", "--python", str(venv / "bin" / "python"), *editable)


def pytest(venv: Path, args: list[str], env: dict[str, str], log: Path) -> tuple[bool, str]:
    """Run pytest from ``venv``; (passed, its closing line), the whole output in ``log``."""
    started = time.monotonic()
    proc = subprocess.run(
        [str(venv / "bin" / "pytest"), "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    log.write_text(proc.stdout + proc.stderr)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    failed = [line for line in lines if line.startswith(("FAILED", "ERROR"))]
    summary = (lines[-1] if lines else "no output") + f" ({time.monotonic() - started:.0f} s)"
    return proc.returncode == 0, "\n    ".join([summary, *failed[:20]])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-tests", action="store_true", help="resolve and print what moved; install nothing")
    parser.add_argument(
        "--uncapped", action="store_true", help="install Label Studio without our caps in locks/label-studio-*.in"
    )
    args = parser.parse_args()
    if not UV.exists():
        raise SystemExit("check-latest: run scripts/stack-install.sh first (it installs uv from locks/uv.txt)")
    LATEST.mkdir(parents=True, exist_ok=True)
    print(f"check-latest: newest releases the ranges allow, resolved {time.strftime('%Y-%m-%d %H:%M %Z')}")

    syncd = newest(LATEST / "dev.txt", "pyproject.toml", "--extra", "whisper", "--extra", "demo", "--extra", "dev")
    report_moves("syncd (pyproject.toml, all extras)", LOCKS / "dev.txt", syncd)
    releases = {}
    for version, name in LABEL_STUDIO.items():
        source = LOCKS / f"label-studio-{version}.in"
        resolved = newest(LATEST / f"label-studio-{version}.txt", str(source))
        report_moves(f"Label Studio {version} ({source.name})", source.with_suffix(".txt"), resolved)
        free = uncapped(source, LATEST / f"label-studio-{version}-uncapped.txt")
        report_caps(source, resolved, free)
        releases[version] = (name, free if args.uncapped else resolved)
    if args.no_tests:
        return 0

    print("\ninstalling the newest versions into .stack/latest/ ...")
    venv = LATEST / "venv"
    install(venv, syncd, "-e", str(ROOT))
    env = {"SYNCD_LS_VENV": str(LATEST / "ls-venv"), "SYNCD_LS_OLD_VENV": str(LATEST / "ls-old-venv")}
    for version, (name, resolved) in releases.items():
        install(LATEST / name, resolved)
        (LATEST / name / ".stamp").write_text(f"{version}\n")

    results = {
        "unit tier": pytest(venv, ["tests/unit", "tests/packaging"], env, LATEST / "unit.log"),
        "end to end": pytest(venv, ["-m", "integration", *END_TO_END], env, LATEST / "end-to-end.log"),
    }
    print("\nresults on the newest versions (logs in .stack/latest/):")
    for name, (passed, summary) in results.items():
        print(f"  {name}: {'passed' if passed else 'BROKE'}: {summary}")
    broke = [name for name, (passed, _) in results.items() if not passed]
    if broke:
        print(
            "\nA finding, not a red main: cap the range that broke in pyproject.toml or locks/*.in, or fix syncd, "
            "then scripts/lock and ./scripts/test."
        )
    return 1 if broke else 0


if __name__ == "__main__":
    sys.exit(main())
