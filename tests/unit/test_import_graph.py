"""The import graph of src/simgate: no cycles, and the layer table of DESIGN.md.

The graph is read with `ast`, so it sees every import: at module level, inside functions
(where cycles hide, e.g. SqlUnitOfWork.__init__) and under TYPE_CHECKING. An edge goes to the
module named (`from simgate.hardware import goip` is an edge to simgate.hardware.goip), not
to the packages above it. What does not hold yet is listed below with the reason; those lists
only shrink: a new cycle or a new crossing fails, and so does an entry that no longer applies
(delete it, so the fixed rule stays fixed).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path

import simgate
from simgate.hardware import DRIVERS

ROOT = Path(simgate.__file__).parent

KNOWN_CYCLES: tuple[frozenset[str], ...] = ()
"""Empty: the SQL unit of work lives in sql_unit.py over repositories that import only
sql_base.py, and the memory fake's records in memory_state.py. Never add an entry."""


LEAVES = ("simgate.catalogue", "simgate.settings_error", "simgate.credentials", "simgate.lateline")
"""Small modules over the standard library and domain types that the table does not place:
the marketplace's names (catalogue.py), the error a bad setting raises (settings_error.py),
comparing secrets (credentials.py), a log line the log thread makes (lateline.py). The
sign-in back-off is pure: domain/throttle.py."""

BELOW_THE_FACES = (
    "simgate.domain",
    *LEAVES,
    "simgate.services",
    "simgate.storage",
    "simgate.delivery",
    "simgate.marketplaces",
    "simgate.hardware",
)

MAY_IMPORT: dict[str, tuple[str, ...]] = {
    # DESIGN.md "Layers and who may import whom"; a package may always import itself and the
    # bare `simgate` package (its __version__).
    "simgate.domain": (),
    "simgate.services": ("simgate.domain", "simgate.storage.ports", *LEAVES),
    "simgate.storage": ("simgate.domain",),
    "simgate.delivery": ("simgate.domain", "simgate.services", "simgate.storage.ports"),
    # A plug-in runs its use cases in a transaction itself (Store.transact) and maps the
    # catalogue's names to its own.
    "simgate.marketplaces": (
        "simgate.services",
        "simgate.domain",
        "simgate.storage.ports",
        "simgate.catalogue",
    ),
    "simgate.hardware": ("simgate.services", "simgate.domain", *LEAVES),
    "simgate.http": BELOW_THE_FACES,
    "simgate.dashboard": BELOW_THE_FACES,
}

KNOWN_CROSSINGS: dict[tuple[str, str], str] = {
    ("simgate.hardware.android", "simgate.http.body"): "the one bounded body reader (webhooks)",
    ("simgate.hardware.ejoin", "simgate.http.body"): "the one bounded body reader (webhooks)",
    ("simgate.dashboard.api", "simgate.http.body"): "the one bounded body reader",
    ("simgate.dashboard.views", "simgate.http.body"): "the one bounded body reader",
}

NAME_NO_DRIVER = ("simgate.http", "simgate.bootstrap", "simgate.config")
"""DESIGN.md: http/, bootstrap.py and config.py name no driver (only the registry and base.py);
that they name no marketplace is test_smoke_layers' business."""


def within(module: str, prefixes: Iterable[str]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


@cache
def modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = ["simgate", *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _nearest_module(name: str) -> str | None:
    while name and name not in modules():
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> set[str]:
    path = modules()[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    return imports_in(path.read_text(encoding="utf-8"), module, package)


def imports_in(source: str, module: str, package: str) -> set[str]:
    """The simgate modules `source` imports anywhere (functions, TYPE_CHECKING blocks too)."""
    targets: set[str | None] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets.update(_nearest_module(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            for alias in node.names:
                submodule = f"{name}.{alias.name}"
                targets.add(submodule if submodule in modules() else _nearest_module(name))
    return {target for target in targets if target is not None and target != module}


@cache
def graph() -> dict[str, frozenset[str]]:
    return {module: frozenset(imports_of(module)) for module in modules()}


def cycles(edges: Mapping[str, Iterable[str]]) -> list[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan, without recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(edges[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges.get(child, ()))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def crossings() -> set[tuple[str, str]]:
    """Imports the layer table forbids."""
    found = set()
    for module, targets in graph().items():
        for layer, allowed in MAY_IMPORT.items():
            if not within(module, [layer]):
                continue
            for target in targets:
                if target != "simgate" and not within(target, [layer, *allowed]):
                    found.add((module, target))
    return found


def driver_names() -> list[tuple[str, str]]:
    return sorted(
        (module, target)
        for module, targets in graph().items()
        if within(module, NAME_NO_DRIVER)
        for target in targets
        if within(target, DRIVERS.values())
    )


# -- the finder itself ---------------------------------------------------------------------


def test_cycles_are_found_in_a_small_graph() -> None:
    edges = {"a": ["b"], "b": ["c"], "c": ["a", "d"], "d": ["e"], "e": ["d"], "f": ["a"]}
    assert sorted(sorted(c) for c in cycles(edges)) == [["a", "b", "c"], ["d", "e"]]
    assert cycles({"a": ["b"], "b": []}) == []


def test_imports_inside_functions_and_relative_imports_are_edges() -> None:
    source = """
from typing import TYPE_CHECKING
from simgate.hardware import goip, DRIVERS
from . import feed
from .modem import port
import simgate.domain.types
if TYPE_CHECKING:
    from simgate.storage.ports import Store
def build():
    from simgate.services.sink import StoreSink
"""
    assert imports_in(source, "simgate.hardware.example", "simgate.hardware") == {
        "simgate.hardware.goip",
        "simgate.hardware",
        "simgate.hardware.feed",
        "simgate.hardware.modem.port",
        "simgate.domain.types",
        "simgate.storage.ports",
        "simgate.services.sink",
    }


# -- the rules -----------------------------------------------------------------------------


def test_no_import_cycles() -> None:
    new = [sorted(cycle) for cycle in cycles(graph()) if not any(cycle <= known for known in KNOWN_CYCLES)]
    assert new == [], f"import cycles: {new}"


def test_layers_import_only_what_design_md_allows() -> None:
    new = sorted(crossings() - set(KNOWN_CROSSINGS))
    assert new == [], f"imports across the layer table of DESIGN.md: {new}"


def test_http_bootstrap_and_config_name_no_driver() -> None:
    assert driver_names() == [], "a new driver must cost one module and one registry line"


def test_hardware_never_touches_the_store() -> None:
    """Drivers hand SMS to a Sink (hardware/base.py); the store is bootstrap's business."""
    touching = sorted(
        (module, target)
        for module, targets in graph().items()
        if within(module, ["simgate.hardware"])
        for target in targets
        if within(target, ["simgate.storage"])
    )
    assert touching == []


def test_the_known_exceptions_only_shrink() -> None:
    """An entry that no longer applies must go, or the fixed rule could break again unseen."""
    current = cycles(graph())
    gone = [sorted(known) for known in KNOWN_CYCLES if not any(c & known for c in current)]
    assert gone == [], f"these cycles are gone: delete them from KNOWN_CYCLES: {gone}"
    stale = sorted(set(KNOWN_CROSSINGS) - crossings())
    assert stale == [], f"these imports no longer cross: delete them from KNOWN_CROSSINGS: {stale}"


def test_only_bootstrap_touches_the_schema() -> None:
    """Migrating and checking the schema is composition (bootstrap.py), not a face's business."""
    calls = sorted(
        module
        for module, path in modules().items()
        if not within(module, ["simgate.storage", "simgate.bootstrap"])
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "schema"
        and node.attr in ("upgrade", "check_current", "current_revision")
    )
    assert calls == []
