"""The domain stays pure: no module in simgate.domain imports I/O or a third-party library."""

from __future__ import annotations

import ast
import pkgutil
from pathlib import Path

import simgate.domain

ALLOWED = {
    "__future__", "collections", "dataclasses", "decimal", "enum", "typing", "abc",
    "functools", "itertools", "math", "re", "datetime", "fractions", "operator", "hashlib",
}  # fmt: skip


def test_domain_imports_only_pure_stdlib_and_itself() -> None:
    folder = Path(simgate.domain.__file__).parent
    for module in pkgutil.iter_modules([str(folder)]):
        tree = ast.parse((folder / f"{module.name}.py").read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top in ALLOWED or name.startswith("simgate.domain"), (
                    f"simgate.domain.{module.name} imports {name}"
                )


FACES = ("simgate/http", "simgate/bootstrap.py", "simgate/config.py")
"""Name no marketplace: a new one is a folder plus a registry line (DESIGN.md, Plug-ins)."""


def test_http_bootstrap_and_config_import_no_marketplace_module() -> None:
    import simgate.marketplaces

    src = Path(simgate.marketplaces.__file__).parent.parent.parent
    inside = {m.name for m in pkgutil.iter_modules(simgate.marketplaces.__path__)} - {"base"}
    assert {"onlinesim", "dispatch"} <= inside
    files = [
        p for face in FACES for p in ((src / face).rglob("*.py") if (src / face).is_dir() else [src / face])
    ]
    assert len(files) >= 4
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            modules: list[str] = []
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module]
                if node.module == "simgate.marketplaces":
                    modules += [f"{node.module}.{alias.name}" for alias in node.names]
            for module in modules:
                parts = [*module.split("."), ""]
                plugin_module = parts[:2] == ["simgate", "marketplaces"] and parts[2] in inside
                assert not plugin_module, (
                    f"{path.relative_to(src)} imports {module}: only the registry and marketplaces.base"
                )
