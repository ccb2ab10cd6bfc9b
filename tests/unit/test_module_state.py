"""No module-level mutable state in src/simgate: what a process holds, bootstrap builds and passes.

State kept in a module outlives the object that should own it: a second app built in the same
process (every integration test builds several) would share it, and a test has to reset it by
hand. Read with `ast`: a `global` statement anywhere, a lowercase module-level name bound to a
list, dict or set (an ALL_CAPS one is a constant by the house's convention), and a function
that mutates a module-level container in place all count.
"""

from __future__ import annotations

import ast
from pathlib import Path

import simgate

ROOT = Path(simgate.__file__).parent

CONTAINERS = (ast.List, ast.Dict, ast.Set, ast.ListComp, ast.DictComp, ast.SetComp)
FACTORIES = frozenset({"list", "dict", "set", "defaultdict", "deque", "OrderedDict", "Counter"})
MUTATORS = frozenset(
    {
        "append",
        "extend",
        "insert",
        "add",
        "update",
        "setdefault",
        "pop",
        "popitem",
        "clear",
        "remove",
        "discard",
    }
)


def _is_container(value: ast.expr | None) -> bool:
    if isinstance(value, CONTAINERS):
        return True
    if isinstance(value, ast.Call):
        func = value.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        return name in FACTORIES
    return False


def module_state(source: str) -> list[str]:
    """What in `source` is module-level mutable state, one line each."""
    tree = ast.parse(source)
    found: list[str] = []
    containers: set[str] = set()
    for node in tree.body:
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign):
            targets, value = [node.target], node.value
        else:
            continue
        if not _is_container(value):
            continue
        for target in targets:
            if isinstance(target, ast.Name) and target.id != "__all__":
                containers.add(target.id)
                if not target.id.lstrip("_").isupper():
                    found.append(f"line {node.lineno}: {target.id} is a mutable container")
    for node in ast.walk(tree):
        if isinstance(node, ast.Global):
            found.append(f"line {node.lineno}: global {', '.join(node.names)}")
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        local = {a.arg for a in ast.walk(function.args) if isinstance(a, ast.arg)}
        local |= {
            n.id for n in ast.walk(function) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
        }
        for node in ast.walk(function):
            target: ast.expr | None = None
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in MUTATORS
            ):
                target = node.func.value
            elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store | ast.Del):
                target = node.value
            if isinstance(target, ast.Name) and target.id in containers and target.id not in local:
                found.append(f"line {node.lineno}: {function.name} changes module-level {target.id}")
    return found


def test_the_finder_sees_each_kind_of_module_state() -> None:
    source = """
import collections
CONSTANT = {"a": 1}
__all__ = ["x"]
seen = set()
_cache: dict[str, int] = {}
queue = collections.deque()
count = 0
def remember(name):
    global count
    CONSTANT[name] = 2
    CONSTANT.update(b=3)
def harmless(CONSTANT):
    CONSTANT.append(1)
    local = []
    local.append(1)
"""
    assert module_state(source) == [
        "line 5: seen is a mutable container",
        "line 6: _cache is a mutable container",
        "line 7: queue is a mutable container",
        "line 10: global count",
        "line 11: remember changes module-level CONSTANT",
        "line 12: remember changes module-level CONSTANT",
    ]


KNOWN: dict[tuple[str, str], str] = {}
"""Empty: the log writer thread belongs to its handler (logs.LineQueue), the simulator's checks
are a literal (simulator/findings.CATALOGUE). Never add an entry."""


def test_no_module_level_mutable_state_in_src() -> None:
    found = {
        (str(path.relative_to(ROOT)), line.split(": ", 1)[1]): line
        for path in sorted(ROOT.rglob("*.py"))
        for line in module_state(path.read_text(encoding="utf-8"))
    }
    new = sorted(f"{where} {line}" for (where, what), line in found.items() if (where, what) not in KNOWN)
    assert new == [], "module-level mutable state (build it in bootstrap.py and pass it):\n" + "\n".join(new)
    stale = sorted(set(KNOWN) - set(found))
    assert stale == [], f"fixed: delete these from KNOWN: {stale}"
