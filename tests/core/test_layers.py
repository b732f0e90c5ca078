"""The architecture as a test (issue 9): layers, no import cycles, catalogue symbols, lazy imports with reasons.

* ``lint-imports`` keeps the layer contract of ``pyproject.toml`` (``[tool.importlinter]``);
* no import cycle between modules of ``src/meterhub`` (imports under ``TYPE_CHECKING`` excluded: they
  never run), found with grimp, the graph library import-linter itself uses;
* no quantity id written as a string literal outside the catalogue (``model/quantities.py``): code uses
  the ``Q`` symbols, so a renamed or mistyped id fails at import, not at run time;
* every import inside a function says why it is lazy (``# lazy: <reason>`` on it or just above its group),
  so no function-level import hides a cycle.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import grimp

from meterhub.model.quantities import CATALOGUE

SRC = Path(__file__).resolve().parents[2] / "src" / "meterhub"
CATALOGUE_FILE = SRC / "model" / "quantities.py"


def _python_files() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_lint_imports_keeps_the_layer_contract() -> None:
    exe = Path(sys.executable).with_name("lint-imports")
    cmd = [str(exe)] if exe.exists() else [shutil.which("lint-imports") or "lint-imports"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=SRC.parents[1], timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Contracts: 1 kept, 0 broken." in r.stdout


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    modules = sorted(graph.modules)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in modules:
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_no_import_cycle_between_modules() -> None:
    graph = grimp.build_graph("meterhub", exclude_type_checking_imports=True)
    # A package's __init__ re-exporting its own modules is not a cycle of design: drop package → child
    # edges that are the package's own façade.
    for pkg in [m for m in graph.modules if (SRC.parent / m.replace(".", "/") / "__init__.py").exists()]:
        for child in graph.find_modules_directly_imported_by(pkg):
            if child.startswith(pkg + "."):
                graph.remove_import(importer=pkg, imported=child)
    assert _cycles(graph) == []


def _literal_ids(path: Path, ids: set[str]) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            if isinstance(body[0].value, ast.Constant):
                skip.add(id(body[0].value))  # docstrings
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Name)
            and node.value.id == "Literal"
        ):
            skip.update(id(n) for n in ast.walk(node.slice))  # Literal["…"] types mirror the enum
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            # … and so does the default of a parameter typed with such a Literal
            params = node.args.posonlyargs + node.args.args
            pairs = list(
                zip(params[len(params) - len(node.args.defaults) :], node.args.defaults, strict=True)
            )
            pairs += [(a, d) for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults, strict=True) if d]
            for arg, default in pairs:
                if arg.annotation is not None and "Literal[" in ast.unparse(arg.annotation):
                    skip.add(id(default))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in ids:
            if id(node) not in skip:
                found.append(f"{path.relative_to(SRC.parent)}:{node.lineno}: {node.value!r}")
    return found


def test_no_quantity_id_literal_outside_the_catalogue() -> None:
    ids = {str(q) for q in CATALOGUE}
    found = [hit for p in _python_files() if p != CATALOGUE_FILE for hit in _literal_ids(p, ids)]
    assert found == [], f"{len(found)} quantity ids as string literals; use Q symbols:\n" + "\n".join(found)


def _unexplained_function_imports(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    tree = ast.parse("\n".join(lines))
    bad = []
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(fn):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            # the reason sits on the import's line or in the comment lines above its group of imports
            j = node.lineno - 1
            reason = "# lazy:" in lines[j].lower()
            j -= 1
            while not reason and j >= 0:
                text = lines[j].strip()
                if text.startswith("#"):
                    reason = "# lazy:" in text.lower()
                elif not (text.startswith(("from ", "import ")) or text in {"", ")"} or text.endswith(",")):
                    break
                j -= 1
            if not reason:
                bad.append(f"{path.relative_to(SRC.parent)}:{node.lineno}")
    return bad


def test_every_function_level_import_says_why_it_is_lazy() -> None:
    bad = [hit for p in _python_files() for hit in _unexplained_function_imports(p)]
    assert bad == [], "imports inside functions without a '# lazy: <reason>' comment:\n" + "\n".join(bad)
