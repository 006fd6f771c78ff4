"""Every log event syncd can emit, read from the source: the catalog's one source of truth besides its meanings.

An event is a call ``<something log>.<level>("area.what", field=...)`` anywhere in the package; its name must be a
literal, so that this scan (and a reader grepping for it) finds every one.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

LEVELS = {
    "debug": "debug",
    "info": "info",
    "warning": "warning",
    "error": "error",
    "exception": "error",
    "critical": "critical",
}
NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
IGNORED_FIELDS = {"exc_info", "stack_info"}


class NotLiteralError(Exception):
    """A log call whose event name the scan cannot read."""


@dataclass
class Event:
    name: str
    levels: set[str] = field(default_factory=set)
    fields: set[str] = field(default_factory=set)
    modules: set[str] = field(default_factory=set)
    more_fields: bool = False
    """A call passes ``**fields``: the event carries more than the names listed."""


def _is_log_call(node: ast.Call) -> bool:
    if not isinstance(node.func, ast.Attribute):
        return False
    receiver = ast.unparse(node.func.value)
    return node.func.attr in LEVELS and "log" in receiver.lower() and not receiver.startswith("logging")


def _dict_keys(node: ast.expr) -> set[str] | None:
    """The keys of ``{"a": ..}`` or ``dict(a=..)``; None for anything else."""
    if isinstance(node, ast.Dict) and all(isinstance(k, ast.Constant) for k in node.keys):
        return {str(k.value) for k in node.keys if isinstance(k, ast.Constant)}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
        return {k.arg for k in node.keywords if k.arg is not None}
    if (isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr)) or isinstance(node, ast.IfExp):
        sides = (node.left, node.right) if isinstance(node, ast.BinOp) else (node.body, node.orelse)
        keys = [_dict_keys(side) for side in sides]
        return None if None in keys else set().union(*keys)  # type: ignore[arg-type]
    return None


def _splats(scope: ast.AST) -> dict[str, set[str]]:
    """Names bound in a function to a dict of known keys (``ids = {"recording": ..}``), for ``**ids`` in its calls."""
    known: dict[str, set[str]] = {}
    for node in ast.walk(scope):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            keys = _dict_keys(node.value)
            if keys is not None:
                known[node.targets[0].id] = keys
    return known


def _calls_in_scopes(tree: ast.AST) -> Iterator[tuple[ast.Call, dict[str, set[str]]]]:
    for scope in ast.walk(tree):
        if isinstance(scope, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef):
            splats = _splats(scope)
            for node in ast.iter_child_nodes(scope):
                yield from ((call, splats) for call in _own_log_calls(node))


def _own_log_calls(node: ast.AST) -> Iterator[ast.Call]:
    """Log calls under ``node`` that are not inside a nested function (that function is a scope of its own)."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return
    if isinstance(node, ast.Call) and _is_log_call(node):
        yield node
    for child in ast.iter_child_nodes(node):
        yield from _own_log_calls(child)


def scan(package: Path) -> dict[str, Event]:
    """The events of every module under ``package``, by name; raises on a name that is not a literal."""
    events: dict[str, Event] = {}
    for path in sorted(package.rglob("*.py")):
        module = path.relative_to(package.parent).with_suffix("").as_posix().replace("/", ".")
        for call, splats in _calls_in_scopes(ast.parse(path.read_text(), str(path))):
            first = call.args[0] if call.args else None
            if not (isinstance(first, ast.Constant) and isinstance(first.value, str) and NAME.match(first.value)):
                where = f"{path}:{call.lineno}"
                raise NotLiteralError(f"{where}: a log event's name must be a literal 'area.what' string")
            event = events.setdefault(first.value, Event(first.value))
            event.levels.add(LEVELS[call.func.attr])  # type: ignore[attr-defined]
            event.modules.add(module)
            for keyword in call.keywords:
                if keyword.arg is None:
                    splat = splats.get(keyword.value.id) if isinstance(keyword.value, ast.Name) else None
                    event.fields |= splat or set()
                    event.more_fields |= splat is None
                elif keyword.arg not in IGNORED_FIELDS:
                    event.fields.add(keyword.arg)
    return events
