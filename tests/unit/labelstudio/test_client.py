"""The Label Studio client's incremental reads: changed-task pages through any number of ties on updated_at."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from syncd.labelstudio import LabelStudioClient, LabelStudioError, ls_time
from syncd.labelstudio.client import not_found
from tests.unit.fakes import EPOCH, services


class TasksEndpoint:
    """Label Studio's /api/tasks/ as far as paging goes: filters on updated_at and id, ordering by ONE field, ties in
    an order Label Studio does not promise (reverse id here)."""

    def __init__(self, tasks: list[dict[str, Any]]) -> None:
        self.tasks = tasks
        self.requests = 0

    def __call__(self, method: str, path: str, **kwargs: Any) -> Any:
        self.requests += 1
        if self.requests > 200:
            raise AssertionError("changed_task_pages makes no progress")
        params = kwargs["params"]
        query = json.loads(params["query"])
        rows = list(self.tasks)
        for item in query["filters"]["items"]:
            field, value = item["filter"].rsplit(":", 1)[1], item["value"]
            if item["operator"] == "greater":
                rows = [t for t in rows if t[field] > value]
            elif item["operator"] == "in":
                rows = [t for t in rows if value["min"] <= t[field] <= value["max"]]
            else:
                raise AssertionError(f"unexpected operator {item['operator']}")
        order = query["ordering"][0].rsplit(":", 1)[1]
        rows.sort(key=lambda t: (t[order], -t["id"]))
        page = [dict(t) for t in rows[: params["page_size"]]]
        return SimpleNamespace(content=json.dumps({"tasks": page}).encode())


def _stamped(groups: list[tuple[int, range]]) -> list[dict[str, Any]]:
    return [{"id": i, "updated_at": ls_time(EPOCH.timestamp() + second)} for second, ids in groups for i in ids]


def test_changed_task_pages_page_through_any_number_of_ties(tmp_path: Path) -> None:
    svc, *_ = services(tmp_path)
    client = LabelStudioClient(svc.settings.labelstudio, "token")
    tasks = _stamped([(1, range(1, 26)), (0, range(26, 29)), (2, range(29, 41)), (3, range(41, 42))])
    client._request = TasksEndpoint(tasks)  # type: ignore[method-assign]
    pages = list(client.changed_task_pages(1, ls_time(0), page_size=10))
    read = [(t["updated_at"], t["id"]) for page in pages for t in page]
    assert sorted(i for _, i in read) == list(range(1, 42)), "every task exactly once"
    last_of_page = [max((t["updated_at"], t["id"]) for t in page) for page in pages]
    assert last_of_page == sorted(last_of_page)
    firsts = [min((t["updated_at"], t["id"]) for t in page) for page in pages[1:]]
    assert all(first > last for last, first in zip(last_of_page, firsts, strict=False))

    tie = tasks[0]["updated_at"]
    resumed = [t["id"] for page in client.changed_task_pages(1, tie, 12, page_size=10) for t in page]
    assert sorted(resumed) == [*range(13, 26), *range(29, 42)]


def test_a_project_keeps_its_layout_read_once_from_its_label_config(tmp_path: Path) -> None:
    """A project created with the segments layout keeps getting segments tasks after the default changed."""
    from syncd.labelstudio import layouts

    svc, *_ = services(tmp_path)
    client = LabelStudioClient(svc.settings.labelstudio, "token")
    reads: list[int] = []

    def get(project_id: int) -> Any:
        reads.append(project_id)
        return SimpleNamespace(label_config=layouts.label_config("segments" if project_id == 1 else "transcript"))

    client._sdk = SimpleNamespace(projects=SimpleNamespace(get=get))  # type: ignore[assignment]
    assert [client.layout_of(p, "whole") for p in (1, 2, 1, 2)] == ["segments", "transcript"] * 2
    assert reads == [1, 2]


def test_the_client_loads_none_of_the_sdks_dataframe_extensions() -> None:
    """The SDK's ``LabelStudio`` class pulls in pandas and numpy (~65 MB of RSS in every syncd process)."""
    code = (
        "import sys; from syncd.services import Services; from syncd.labelstudio.client import LabelStudioClient;"
        "print(sorted({'pandas', 'numpy', 'jsf'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_not_found_reads_the_sdks_errors_and_ours_alike() -> None:
    assert not_found(SimpleNamespace(status_code=404))  # type: ignore[arg-type]
    assert not_found(LabelStudioError("GET /api/tasks/7: HTTP 404: gone"))
    assert not not_found(LabelStudioError("GET /api/tasks/7: HTTP 500: oops", 500))
    assert not not_found(ValueError("404"))
