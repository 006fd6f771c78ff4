"""The shape of the package, as DESIGN.md and the README's folder tree state it: each rule fails on the first module
that breaks it, naming it."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import syncd

ROOT = Path(syncd.__file__).parent
MAX_ROOT_MODULES = 10
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(path: Path) -> Iterator[str]:
    """The syncd modules a file imports at run time (inside functions too; ``if TYPE_CHECKING:`` blocks excluded)."""
    tree = ast.parse(path.read_text())
    skipped = {id(n) for block in ast.walk(tree) if _type_checking(block) for n in ast.walk(block)}
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name.startswith("syncd"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("syncd"):
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                yield child if child in MODULES else node.module


GRAPH = {name: {m for m in _imports(path) if m != name} for name, path in MODULES.items()}


def _stage_of(module: str) -> str | None:
    """``syncd.stages.export_plan`` belongs to the export stage; ``syncd.stages.tasks`` to none (shared)."""
    if not module.startswith("syncd.stages.") or module == "syncd.stages.tasks":
        return None
    return module.rsplit(".", 1)[1].rstrip("_").split("_")[0]


def test_the_package_root_holds_few_modules() -> None:
    root = sorted(p.name for p in ROOT.glob("*.py"))
    assert len(root) <= MAX_ROOT_MODULES, root


def test_no_stage_imports_another_stage() -> None:
    crossings = [
        (module, imported)
        for module, imports in GRAPH.items()
        if (stage := _stage_of(module))
        for imported in imports
        if _stage_of(imported) not in (None, stage)
    ]
    assert crossings == []


def test_the_domain_imports_nothing_above_it() -> None:
    above = [
        (module, imported)
        for module, imports in GRAPH.items()
        if module.startswith("syncd.domain")
        for imported in imports
        if not imported.startswith("syncd.domain") and imported != "syncd"
    ]
    assert above == []


def test_no_import_circle() -> None:
    """Packages' ``__init__`` re-exports are edges like any other import."""
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = "open"
        for imported in sorted(GRAPH.get(module, ())):
            if state.get(imported) == "open":
                return [*path, module, imported]
            if imported not in state and (circle := visit(imported, [*path, module])):
                return circle
        state[module] = "done"
        return None

    circles = [circle for module in sorted(GRAPH) if module not in state and (circle := visit(module, []))]
    assert circles == []


MIN_REASON_WORDS = 20
"""A reason is a sentence or two, not a phrase: what the module holds whole, and why a split would cost more."""


def _long_reason(path: Path) -> str | None:
    """The module's ``__long__``: a string constant assigned at module level, or None."""
    for node in ast.parse(path.read_text()).body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "__long__" for t in node.targets)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            return node.value.value
    return None


def test_a_long_module_says_why_it_is_one_thing() -> None:
    """A module over MAX_LINES lines states, in a module-level ``__long__ = "..."``, why it is one thing kept whole:
    at least MIN_REASON_WORDS words, read by a person reviewing it (a phrase in the docstring proves nothing). A module
    within MAX_LINES carries no ``__long__``, so a reason never outlives the length it excused."""
    unexcused, stale = [], []
    for name, path in MODULES.items():
        reason = _long_reason(path)
        if len(path.read_text().splitlines()) > MAX_LINES:
            if reason is None or len(reason.split()) < MIN_REASON_WORDS:
                unexcused.append(name)
        elif reason is not None:
            stale.append(name)
    assert unexcused == [], f"over {MAX_LINES} lines without a __long__ reason of {MIN_REASON_WORDS}+ words"
    assert stale == [], f"within {MAX_LINES} lines: drop __long__"


NOT_UNIT_TESTED = {
    "syncd.state.legacy": "frozen pre-Alembic migrations, run by tests/unit/state/test_migrate.py",
    "syncd.state.store": "the composition of the table modules; each table has its own tests",
}
"""The modules with no test file of their own, each with why: every other module has tests/unit/<path>/test_<name>.py.
Packages' ``__init__``, ``__main__`` and the Alembic revisions (run by test_migrate) are not modules with behaviour of
their own."""


def _test_file(module: str) -> Path:
    path = MODULES[module].relative_to(ROOT)
    return Path(__file__).parent / path.parent / f"test_{path.stem}.py"


def test_every_test_file_is_named_after_a_module() -> None:
    """A reader finds a module's tests by its path: ``tests/unit/stages/test_export_plan.py`` tests
    ``syncd/stages/export_plan.py``, and no test file is named after something else."""
    here = Path(__file__).parent
    wanted = {_test_file(m) for m in MODULES if MODULES[m].name not in ("__init__.py", "__main__.py")}
    orphans = [str(p.relative_to(here)) for p in sorted(here.rglob("test_*.py")) if p not in wanted]
    assert orphans == ["test_house.py"]


def _needs_tests(module: str) -> bool:
    return MODULES[module].name not in ("__init__.py", "__main__.py") and ".migrations" not in module


def test_every_module_has_its_own_tests_or_a_reason() -> None:
    missing = [m for m in MODULES if _needs_tests(m) and m not in NOT_UNIT_TESTED and not _test_file(m).exists()]
    assert missing == []


def test_every_exemption_names_a_module_without_tests_and_a_reason() -> None:
    stale = [m for m in NOT_UNIT_TESTED if m not in MODULES or _test_file(m).exists()]
    unreasoned = [m for m, why in NOT_UNIT_TESTED.items() if len(why.split()) < 5]
    assert stale == [] and unreasoned == []
