"""The shape of the package, as DESIGN.md and the README's folder tree state it: each rule fails on the first module
that breaks it, naming it."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import syncd
from syncd.state import keys

ROOT = Path(syncd.__file__).parent
CODE = [ROOT, *(ROOT.parent / d for d in ("tests", "bench", "devstack", "scripts"))]
"""Where code that names cursors lives: the package, the tests, the benchmarks, the real-stack helpers, the scripts."""
MAX_ROOT_MODULES = 10
MAX_LINES = 500
MAX_ROOMS = 24


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


def _room(module: str) -> str:
    """The room a module belongs to as the house is drawn: a module at the package root is a room, a package is one,
    and each stage (with its steps) is one, beside the bookkeeping the stages share."""
    parts = module.split(".")
    if module.startswith("syncd.stages.") and parts[2] != "__init__":
        return f"stages.{_stage_of(module) or 'tasks'}"
    return parts[1] if len(parts) > 1 else "syncd"


def test_the_house_has_few_rooms() -> None:
    rooms = sorted({_room(m) for m in MODULES if m not in ("syncd", "syncd.__main__", "syncd.stages")})
    assert len(rooms) <= MAX_ROOMS, rooms


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


# --- the import stage's walk into the shared task bookkeeping ------------------------------------------------------

Function = tuple[str, str]
"""(module, qualified name): ``("syncd.stages.tasks", "TaskCursor.load")``."""


def _functions() -> tuple[dict[Function, ast.AST], dict[str, dict[str, tuple[str, ...]]]]:
    """Every module-level function and method of the package, and each module's imported names (-> module, or
    module and name)."""
    functions: dict[Function, ast.AST] = {}
    names: dict[str, dict[str, tuple[str, ...]]] = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                functions[(module, node.name)] = node
            elif isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef):
                        functions[(module, f"{node.name}.{item.name}")] = item
        imported: dict[str, tuple[str, ...]] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("syncd"):
                for alias in node.names:
                    child = f"{node.module}.{alias.name}"
                    imported[alias.asname or alias.name] = (child,) if child in MODULES else (node.module, alias.name)
        names[module] = imported
    return functions, names


FUNCTIONS, NAMES = _functions()


def _dotted(node: ast.AST) -> list[str] | None:
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute) and (head := _dotted(node.value)):
        return [*head, node.attr]
    return None


def _calls(function: Function) -> list[Function]:
    """The package's functions ``function`` calls, in source order (calls on objects, ``svc.state.recordings.get``,
    are not followed: they are the clients', not the stages')."""
    module, name = function
    owner = name.split(".")[0] if "." in name else None
    found = []
    for node in ast.walk(FUNCTIONS[function]):
        if not isinstance(node, ast.Call) or not (parts := _dotted(node.func)):
            continue
        if parts[0] in ("self", "cls") and owner:
            parts = [owner, *parts[1:]]
        target = NAMES[module].get(parts[0])
        where, rest = (module, parts) if target is None else (target[0], [*target[1:], *parts[1:]])
        callee = next(((where, ".".join(rest[:n])) for n in (2, 1) if (where, ".".join(rest[:n])) in FUNCTIONS), None)
        if callee:
            found.append((node.lineno, node.col_offset, callee))
    return [callee for *_, callee in sorted(found)]


def walk_into(start: Function, stage: str, shared: str) -> tuple[int, int]:
    """(entries, climbs) of the walk from ``start``: each function it reaches is read once, in source order. An entry
    is a call from the stage's modules into ``shared``; a climb is the walk's coming back up from ``shared`` into the
    stage (a return, or a call back) before it enters again."""
    moves: list[str] = []
    seen: set[Function] = set()

    def room(function: Function) -> str:
        return "shared" if function[0] == shared else "stage" if _stage_of(function[0]) == stage else "other"

    def visit(function: Function) -> None:
        seen.add(function)
        for callee in _calls(function):
            here, there = room(function), room(callee)
            moves.append(f"{here}>{there}")
            if callee not in seen:
                visit(callee)
            moves.append(f"{there}>{here}")

    visit(start)
    entries = [i for i, move in enumerate(moves) if move == "stage>shared"]
    climbs = [i for i, move in enumerate(moves) if move == "shared>stage" and entries and i < entries[-1]]
    return len(entries), len(climbs)


def test_the_import_stage_enters_the_shared_task_bookkeeping_a_few_times() -> None:
    """Import's own work (reconcile, twins, doubt) lives beside it, not in ``stages.tasks``."""
    entries, climbs = walk_into(("syncd.stages.import_", "run"), "import", "syncd.stages.tasks")
    assert entries <= 5 and climbs <= 5, (entries, climbs)


CURSOR_METHODS = {"get", "set", "change", "prefixed", "bump"}
"""The methods of ``StateStore.cursors``: the first argument of each is a cursor's name (a prefix for ``prefixed``)."""


def _cursor_names() -> Iterator[tuple[str, str]]:
    """(where, name) for each cursor name written in code as a string, passed to a method of a cursors table
    (``….cursors.set("export:1", …)``); an f-string gives its fixed start (``f"export:{project}"``: ``export:``)."""
    for folder in CODE:
        for path in sorted(folder.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args):
                    continue
                table = node.func.value
                if node.func.attr not in CURSOR_METHODS or not (
                    isinstance(table, ast.Attribute) and table.attr == "cursors"
                ):
                    continue
                where = f"{path.relative_to(ROOT.parent)}:{node.lineno}"
                name = node.args[0]
                if isinstance(name, ast.Constant) and isinstance(name.value, str):
                    yield where, name.value + ("" if node.func.attr != "prefixed" else "*")
                elif isinstance(name, ast.JoinedStr):
                    head = name.values[0] if name.values else None
                    yield where, (head.value if isinstance(head, ast.Constant) else "") + "*"


def test_every_cursor_name_in_code_is_registered() -> None:
    """A name written out where a cursor is read or written is one ``syncd.state.keys`` registers (``*``: a prefix
    that a part follows); a typo or a new name not added there fails here, before the table refuses it at run time."""

    def registered(name: str) -> bool:
        if name.endswith("*"):
            return any(k.prefix and k.name == name[:-1] for k in keys.KEYS)
        return keys.registered(name) is not None

    unregistered = [(where, name) for where, name in _cursor_names() if not registered(name)]
    assert unregistered == []


def test_every_registered_cursor_key_is_used_by_the_package() -> None:
    """Each key of the registry is named (``keys.NAME``) by a module of the package: the list says what the table
    holds, not what it once held."""
    declared = {name for name, value in vars(keys).items() if isinstance(value, keys.Key)}
    used = {
        node.attr
        for module, path in MODULES.items()
        if module != "syncd.state.keys"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "keys"
    }
    assert sorted(declared - used) == []
    assert {k.name for k in keys.KEYS} == {value.name for name, value in vars(keys).items() if name in declared}


def test_the_cursor_table_is_written_in_sql_only_by_its_own_module() -> None:
    """Tables that keep values in the cursors table go through ``StateStore.cursors`` (migrations aside)."""
    spelled = [
        module
        for module, path in MODULES.items()
        if module != "syncd.state.cursors"
        and ".migrations" not in module
        and any(f"{verb} cursors" in path.read_text() for verb in ("FROM", "INTO", "UPDATE"))
    ]
    assert spelled == []


def test_every_exemption_names_a_module_without_tests_and_a_reason() -> None:
    stale = [m for m in NOT_UNIT_TESTED if m not in MODULES or _test_file(m).exists()]
    unreasoned = [m for m, why in NOT_UNIT_TESTED.items() if len(why.split()) < 5]
    assert stale == [] and unreasoned == []
