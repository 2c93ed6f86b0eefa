"""The benchmark scripts are run by hand, not by CI: every name they import from qmonit and
the tests must still exist, or a benchmark breaks unseen when the code moves."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parent.parent / "benchmarks").glob("*.py"))


def missing_imports(path: Path) -> list[str]:
    """`module.name` for every `from qmonit... / tests... import name` that does not resolve,
    at any depth of the file (benchmarks import some names inside functions)."""
    missing = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.ImportFrom) and node.module
                and node.module.split(".")[0] in ("qmonit", "tests")):
            continue
        module = importlib.import_module(node.module)
        for alias in node.names:
            if hasattr(module, alias.name):
                continue
            try:
                importlib.import_module(f"{node.module}.{alias.name}")
            except ModuleNotFoundError:
                missing.append(f"{node.module}.{alias.name}")
    return missing


def test_there_are_benchmarks() -> None:
    assert {p.name for p in BENCHMARKS} >= {"collect.py", "demo.py", "dashboards.py"}


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.name)
def test_benchmark_imports_resolve(path: Path) -> None:
    assert missing_imports(path) == []
