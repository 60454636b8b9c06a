"""The package's layers (pyproject.toml, [tool.importlinter]) hold: no module imports upward,
no sibling layers import each other, and no package has an import cycle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def _python_files(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


def test_no_source_file_holds_more_than_450_lines():
    long = {
        str(p.relative_to(REPO)): n
        for p in _python_files("src")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 450
    }
    assert not long, long


def test_no_function_is_longer_than_80_lines():
    long = []
    for path in _python_files("src"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            functions = (ast.FunctionDef, ast.AsyncFunctionDef)
            if isinstance(node, functions) and node.end_lineno - node.lineno + 1 > 80:
                long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}")
    assert not long, long


def test_no_test_file_imports_another():
    """Shared test code lives in helper modules (tests/helpers.py, conftest.py), not in tests."""
    found = []
    for path in _python_files("tests"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            if any(
                n.startswith("tests.") and n.rsplit(".", 1)[-1].startswith("test_") for n in names
            ):
                found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not found, found
