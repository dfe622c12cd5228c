"""The pure core (geo/, dispatch/) never imports an I/O framework nor reads the environment."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN_MODULES = {"redis", "litestar", "websockets", "uvicorn", "server"}
FORBIDDEN_CALLS = {("os", "environ"), ("os", "getenv"), ("os", "putenv")}


def violations(source: str) -> list[str]:
    """Forbidden imports and environment reads in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "os":
                names += [f"os.{a.name}" for a in node.names]
        else:
            names = []
        for name in names:
            if name.split(".")[0] in FORBIDDEN_MODULES:
                found.append(f"line {node.lineno}: imports {name}")
            if name in {"os.environ", "os.getenv", "os.putenv"}:
                found.append(f"line {node.lineno}: imports {name}")
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and (node.value.id, node.attr) in FORBIDDEN_CALLS
        ):
            found.append(f"line {node.lineno}: reads the environment ({node.value.id}.{node.attr})")
    return found


@pytest.mark.parametrize("package", ["geo", "dispatch"])
def test_pure_core_has_no_io_imports(package: str) -> None:
    files = sorted((REPO / package).rglob("*.py"))
    assert files, f"{package}/ has no Python files"
    problems = {
        str(path.relative_to(REPO)): found
        for path in files
        if (found := violations(path.read_text()))
    }
    assert problems == {}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import redis", 1),
        ("from litestar import get", 1),
        ("import websockets.asyncio.client", 1),
        ("import os\nx = os.environ['A']", 1),
        ("from os import getenv", 1),
        ("import numpy\nimport os.path\nos.path.join('a')", 0),
    ],
)
def test_the_checker_catches_what_it_should(source: str, expected: int) -> None:
    assert len(violations(source)) == expected
