"""Project rollover decisions and their crash safety, with a Label Studio fake that knows several projects."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from syncd import projects as projects_module
from syncd.projects import period_title, project_series
from syncd.services import Services
from syncd.state import keys
from tests.unit.fakes import services


@dataclass
class ProjectsLabelStudio:
    """Label Studio's projects: id -> title; creations counted."""

    titles: dict[int, str] = field(default_factory=dict)
    created: list[tuple[str, int | None]] = field(default_factory=list)
    hooks: list[int] = field(default_factory=list)

    def find_projects(self, contains: str) -> dict[int, str]:
        return {pid: t for pid, t in self.titles.items() if contains.lower() in t.lower()}

    def ensure_project(self, max_speakers: int, title: str | None = None, like: int | None = None) -> int:
        assert title is not None
        if title.isdigit():
            return int(title)
        found = [pid for pid, t in self.titles.items() if t == title]
        if found:
            return found[0]
        pid = 100 + len(self.titles)
        self.titles[pid] = title
        self.created.append((title, like))
        return pid

    def ensure_storage(self, project_id: int, bucket: str, s3: dict[str, Any]) -> int:
        return 1

    def ensure_webhook(self, project_id: int, url: str, secret: str) -> tuple[int, bool]:
        self.hooks.append(project_id)
        return project_id, True


def _svc(tmp_path: Path, project: str = "Review", **labelstudio: Any) -> tuple[Services, ProjectsLabelStudio]:
    ls = ProjectsLabelStudio()
    svc, *_ = services(tmp_path, client=ls, labelstudio={"layout": "whole", "project": project, **labelstudio})
    svc.projects.current_id = None
    svc.projects.ensure()
    return svc, ls


def test_full_project_rolls_over_to_a_numbered_one_with_the_webhook(tmp_path: Path) -> None:
    svc, ls = _svc(tmp_path, max_tasks_per_project=3)
    first = svc.projects.current
    assert svc.projects.rollover_due() is None and svc.projects.room() == 3
    svc.state.tasks.note_tasks(first, {1: "a", 2: "b", 3: None})
    assert svc.projects.rollover_due() == "full" and svc.projects.room() == 0
    svc.projects.webhook = ("http://syncd/webhook", "secret")
    second = svc.projects.next("full")
    assert ls.created == [("Review", None), ("Review (2)", first)]
    assert svc.projects.current == second and svc.projects.all() == [first, second] and ls.hooks == [second]
    assert svc.projects.rollover_due() is None and svc.state.cursors.get(keys.NEXT_PROJECT.name) is None


def test_a_crash_after_creating_the_next_project_leaves_one_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc, ls = _svc(tmp_path, max_tasks_per_project=1)
    svc.state.tasks.note_tasks(svc.projects.current, {1: "a"})

    def crash(name: str) -> None:
        raise SystemExit(name)

    monkeypatch.setattr(projects_module, "fault_point", crash)
    with pytest.raises(SystemExit):
        svc.projects.next("full")
    assert json.loads(svc.state.cursors.get(keys.NEXT_PROJECT.name) or "{}")["title"] == "Review (2)"
    monkeypatch.undo()

    restarted, *_ = services(tmp_path, client=ls, labelstudio={"layout": "whole", "project": "Review"})
    restarted.projects.current_id = None
    restarted.projects.ensure()
    assert [title for title, _ in ls.created] == ["Review", "Review (2)"]
    assert [p["title"] for p in restarted.state.tasks.projects()] == ["Review", "Review (2)"]
    assert restarted.state.cursors.get(keys.NEXT_PROJECT.name) is None


def test_a_period_in_the_title_rolls_over_when_the_period_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc, _ = _svc(tmp_path, project="Review {year}-{month}")
    assert [p["title"] for p in svc.state.tasks.projects()] == [period_title("Review {year}-{month}")]
    next_month = time.time() + 40 * 86400
    monkeypatch.setattr(projects_module, "_now", lambda: next_month)
    assert svc.projects.rollover_due() == "period"
    svc.projects.next("period")
    assert svc.state.tasks.projects()[-1]["title"] == period_title("Review {year}-{month}", next_month)


def test_a_numbered_project_is_fixed_and_a_lost_state_finds_the_series_again(tmp_path: Path) -> None:
    svc, _ = _svc(tmp_path, project="42", max_tasks_per_project=1)
    svc.state.tasks.note_tasks(42, {1: "a", 2: "b"})
    assert svc.projects.current == 42 and svc.projects.rollover_due() is None

    found = {7: "Review", 9: "Review (2)", 11: "Reviewers", 12: "Review 2026-01"}
    assert project_series("Review", found) == {7: "Review", 9: "Review (2)"}
    assert project_series("Review {year}-{month}", found) == {12: "Review 2026-01"}
    client = ProjectsLabelStudio(titles=dict(found))
    lost, *_ = services(tmp_path / "lost", client=client, labelstudio={"layout": "whole", "project": "Review"})
    lost.projects.current_id = None
    assert lost.projects.ensure() == 9 and lost.projects.all() == [7, 9]
