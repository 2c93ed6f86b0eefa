"""The layout shows the pipeline: one package per stage, imports only from the same or an
earlier stage, no import cycle, and the README's Layout section names every part."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "qmonit"

# The stages in pipeline order: a module may import from its own stage or an earlier one.
STAGES = ("support", "core", "sources", "simulation", "stores", "collect", "derive",
          "rollup", "datadisk", "grafana", "app")
ROOT_MODULES = {"__init__", "__main__"}


def modules() -> dict[str, Path]:
    return {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
            for p in PACKAGE.rglob("*.py")}


def imports(path: Path, top_level_only: bool) -> set[str]:
    """The qmonit modules a file imports (`from qmonit.x import y` names y when y is a
    module)."""
    known = modules()
    found = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] == "qmonit":
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in known else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "qmonit"}
    return found


def stage(module: str) -> int | None:
    parts = module.split(".")
    return STAGES.index(parts[1]) if len(parts) > 1 and parts[1] in STAGES else None


def test_every_module_is_in_a_stage_package() -> None:
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.stem not in ROOT_MODULES)
    packages = sorted(p.name for p in PACKAGE.iterdir()
                      if p.is_dir() and (p / "__init__.py").exists())
    assert loose == []
    assert packages == sorted(STAGES)


def test_no_import_from_a_later_stage() -> None:
    backwards = []
    for name, path in sorted(modules().items()):
        mine = stage(name)
        for imported in sorted(imports(path, top_level_only=False)):
            theirs = stage(imported)
            if mine is not None and theirs is not None and theirs > mine:
                backwards.append(f"{name} -> {imported}")
    assert backwards == []


def test_no_import_cycle() -> None:
    known = modules()
    graph = {name: {i for i in imports(path, top_level_only=True) if i in known and i != name}
             for name, path in known.items()}
    cycles, done, trail = [], set(), []

    def visit(name: str) -> None:
        if name in trail:
            cycles.append(" -> ".join(trail[trail.index(name):] + [name]))
            return
        if name in done:
            return
        trail.append(name)
        for other in sorted(graph[name]):
            visit(other)
        trail.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)
    assert cycles == []


def test_the_readme_layout_names_every_package_and_module() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    words = set(re.findall(r"[A-Za-z_][A-Za-z_0-9.]*", section))
    missing = []
    for name in sorted(modules()):
        parts = name.split(".")
        if len(parts) == 1 or parts[-1] in ROOT_MODULES or parts[-1] == "__init__":
            continue
        if parts[-1] not in words and f"{parts[-1]}.py" not in words \
                and f"{parts[-1]}/" not in section:
            missing.append(name)
    for top in ("jobs", "dashboards", "deploy", "benchmarks", "tests"):
        if f"{top}/" not in section:
            missing.append(top)
    assert missing == []
