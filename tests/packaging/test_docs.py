"""The manual: it builds with warnings as errors (a link to a missing page or anchor fails), its reference pages are
what their generators print from the code, the log-event catalog names exactly the events syncd emits, and the README
stays a short front door."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.reference import pages
from scripts.reference.events import NotLiteralError, scan

ROOT = Path(__file__).resolve().parents[2]
REGENERATE = ".venv/bin/python -m scripts.reference"


def test_the_manual_builds_with_warnings_as_errors(tmp_path: Path) -> None:
    """Never ``--quiet``: MkDocs then drops the warnings before strict mode counts them, and a broken link passes."""
    mkdocs = Path(sys.executable).with_name("mkdocs")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    cmd = [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, check=False)
    assert run.returncode == 0, f"./scripts/docs failed:\n{run.stdout}{run.stderr}"
    assert (tmp_path / "site" / "reference" / "log-events" / "index.html").exists()


@pytest.mark.parametrize("name", sorted(pages.PAGES))
def test_a_reference_page_is_what_the_code_says(name: str) -> None:
    page = ROOT / "docs" / "reference" / name
    assert page.read_text() == pages.PAGES[name](), f"docs/reference/{name} is stale: run {REGENERATE}, commit it"


def test_every_event_syncd_emits_is_in_the_catalog() -> None:
    undocumented = {name: sorted(e.modules) for name, e in pages.emitted().items() if name not in pages.meanings()}
    assert undocumented == {}, f"add what these mean to docs/reference/log-events.toml, then run {REGENERATE}"


def test_the_catalog_lists_only_events_syncd_emits() -> None:
    unemitted = sorted(set(pages.meanings()) - set(pages.emitted()))
    assert unemitted == [], "docs/reference/log-events.toml lists events nothing emits: remove them"


def test_the_catalog_counts_the_events_on_its_page() -> None:
    count = len(pages.emitted())
    assert count >= 100
    assert f"syncd can emit **{count} events**" in (ROOT / "docs" / "reference" / "log-events.md").read_text()


def test_an_event_is_read_with_its_levels_fields_and_modules(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "a.py").write_text(
        "def f(svc, rec):\n"
        "    ids = {'recording': rec.id} | ({'key': rec.key} if rec else {})\n"
        "    svc.log.info('audio.found', size=1, **ids)\n"
        "    svc.log.exception('audio.found', error=2, exc_info=True)\n"
        "    svc.log.warning('audio.odd', **rec.more)\n"
        "    logging.getLogger('x').info('not an event %s', 1)\n"
    )
    events = scan(package)
    assert sorted(events) == ["audio.found", "audio.odd"]
    found = events["audio.found"]
    assert (found.levels, found.fields, found.modules, found.more_fields) == (
        {"info", "error"},
        {"size", "recording", "key", "error"},
        {"pkg.a"},
        False,
    )
    assert events["audio.odd"].more_fields


@pytest.mark.parametrize("call", ["svc.log.info(f'{what}.failed')", "svc.log.info(name)", "svc.log.info('Oops')"])
def test_an_event_name_the_scan_cannot_read_is_refused_with_its_place(tmp_path: Path, call: str) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "b.py").write_text(f"def g(svc, what, name):\n    {call}\n")
    with pytest.raises(NotLiteralError, match=r"b\.py:2: a log event's name must be a literal"):
        scan(tmp_path / "pkg")


def test_the_readme_is_a_short_front_door() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines: move the detail into docs/"


def test_every_link_from_the_readme_into_the_manual_lands() -> None:
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\((docs/[^)#]+)(?:#[^)]*)?\)", readme)
    assert targets, "the README links into the manual"
    assert [t for t in targets if not (ROOT / t).exists()] == []
