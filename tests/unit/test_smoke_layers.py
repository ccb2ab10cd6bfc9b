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
