"""STYLE.md wall: the simulator is written from the contract alone, never from the client's code."""

from __future__ import annotations

import ast
from pathlib import Path

import einvoice.sandbox

FORBIDDEN = ("einvoice.factus", "einvoice.domain", "httpx")


def _imported_modules(source: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_simulator_imports_neither_the_factus_client_nor_the_domain_nor_httpx():
    sources = sorted(Path(einvoice.sandbox.__file__).parent.glob("*.py"))
    assert {path.name for path in sources} >= {"app.py", "state.py", "validation.py", "server.py"}

    offenders = {
        f"{path.name}: {name}"
        for path in sources
        for name in _imported_modules(path)
        if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN)
    }

    assert offenders == set()
