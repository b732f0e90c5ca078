"""``meterhub.config`` is a leaf of the layer contract (issue 9 item 2): it imports only the model and the
error hierarchy, never a subsystem, and has no import hidden inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

from meterhub.config import ConfigError, ConfigIssue
from meterhub.errors import ConfigurationError, exit_code_of, http_status_of

CONFIG = Path(__file__).resolve().parents[2] / "src" / "meterhub" / "config"
ALLOWED = ("meterhub.config", "meterhub.model", "meterhub.errors")


def _imports(tree: ast.AST) -> list[tuple[str, int, bool]]:
    """(module, line, at module level) of every import of a meterhub module."""
    top = {id(node) for node in getattr(tree, "body", [])}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("meterhub"):
            found.append((node.module, node.lineno, id(node) in top))
        elif isinstance(node, ast.Import):
            found += [
                (a.name, node.lineno, id(node) in top) for a in node.names if a.name.startswith("meterhub")
            ]
    return found


def test_config_imports_only_the_model_and_the_errors() -> None:
    upward = [
        f"{path.name}:{line}: {module}"
        for path in sorted(CONFIG.glob("*.py"))
        for module, line, _ in _imports(ast.parse(path.read_text(encoding="utf-8")))
        if not module.startswith(ALLOWED)
    ]
    assert upward == []


def test_config_has_no_import_inside_a_function() -> None:
    hidden = [
        f"{path.name}:{line}: {module}"
        for path in sorted(CONFIG.glob("*.py"))
        for module, line, at_top in _imports(ast.parse(path.read_text(encoding="utf-8")))
        if not at_top
    ]
    assert hidden == []


def test_a_config_error_is_a_configuration_error_with_exit_code_2_and_http_422() -> None:
    err = ConfigError([ConfigIssue("site.yaml", 3, ("buses", 0, "port"), "too large")])
    assert isinstance(err, ConfigurationError)
    assert (exit_code_of(err), http_status_of(err)) == (2, 422)
    assert str(err) == "site.yaml:3: buses[0].port: too large"
