"""Packaging: every third-party module the package imports is a runtime dependency.

`make demo` installs only `[project] dependencies` (the dev extras are for tests), so a module that
src/ imports from a dev-only package would start in the test venv and crash a newcomer's demo.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "meterhub"


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; (]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _runtime_distributions() -> set[str]:
    """What `pip install -e .` installs: [project] dependencies and what they require (no extras)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    todo = [_name(d) for d in project["dependencies"]]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            reqs = requires(name) or []
        except PackageNotFoundError:
            continue
        todo.extend(_name(r) for r in reqs if "extra ==" not in r and "extra==" not in r)
    return seen


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> set[str]:
    """Top-level names of absolute imports that run at import or call time (not under TYPE_CHECKING)."""
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out


def test_every_imported_third_party_module_is_a_runtime_dependency() -> None:
    runtime = _runtime_distributions()
    dists = packages_distributions()
    missing: dict[str, set[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        for mod in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if mod in sys.stdlib_module_names or mod in ("meterhub", "__future__"):
                continue
            provided = {d.lower().replace("_", "-") for d in dists.get(mod, [mod])}
            if not provided & runtime:
                missing.setdefault(mod, set()).add(str(path.relative_to(ROOT)))
    assert not missing, f"imported by src/ but not in [project] dependencies: {missing}"
