"""No import cycle between core's subpackages (core.cli, core.runs, core.predict, ...).

import-linter's layers contract (pyproject.toml) fixes the order of the layers it names;
this test covers every subpackage, named or new, and counts imports inside functions
too (a lazy import is still a dependency: it only hides the cycle until run time).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def subpackage_imports(package_dir: Path) -> dict[str, set[str]]:
    """{subpackage: the other subpackages of the same package it imports anywhere}."""
    pkg = package_dir.name
    subpackages = {p.name for p in package_dir.iterdir() if (p / "__init__.py").is_file()}
    edges: dict[str, set[str]] = {s: set() for s in subpackages}
    for path in package_dir.rglob("*.py"):
        parts = path.relative_to(package_dir).with_suffix("").parts
        if len(parts) < 2 or parts[0] not in subpackages:
            continue  # a top-level module (core/errors.py) is no subpackage
        module = [pkg, *parts]  # `from .x` in a/b.py or a/__init__.py resolves in pkg.a
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = module[: len(module) - node.level] if node.level else []
                head = ".".join(base + ([node.module] if node.module else []))
                # `from core import runs` imports the subpackage runs
                names = [head] + [f"{head}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                target = name.split(".")
                inside = len(target) > 1 and target[0] == pkg and target[1] in subpackages
                if inside and target[1] != parts[0]:
                    edges[parts[0]].add(target[1])
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def _chain(edges: dict[str, set[str]], group: list[str]) -> str:
    return "; ".join(f"{a} -> {', '.join(sorted(edges[a] & set(group)))}" for a in group)


def test_core_subpackages_import_each_other_without_cycles():
    edges = subpackage_imports(ROOT / "core")
    assert {"cli", "runs", "predict", "training"} <= set(edges)  # the scan sees core
    found = cycles(edges)
    assert not found, "import cycles between core's subpackages: " + " | ".join(
        _chain(edges, g) for g in found
    )


def test_the_check_finds_a_cycle_through_a_lazy_import(tmp_path):
    pkg = tmp_path / "pkg"
    for sub, text in {
        "a": "from pkg.b import thing\n",
        "b": "def f():\n    from ..c import other\n",  # relative, inside a function
        "c": "import pkg.a.mod\n",
        "d": "from pkg import a\n",
    }.items():
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
        (pkg / sub / "mod.py").write_text(text)
    (pkg / "__init__.py").write_text("")
    edges = subpackage_imports(pkg)
    assert edges == {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [["a", "b", "c"]]
    (pkg / "c" / "mod.py").write_text("import numpy\n")
    assert cycles(subpackage_imports(pkg)) == []
