"""STYLE.md wall: ``einvoice/domain/`` imports no I/O library and no outer layer."""

from __future__ import annotations

import ast
from pathlib import Path

import einvoice.domain

FORBIDDEN = (
    "sqlalchemy",
    "psycopg",
    "httpx",
    "requests",
    "aiohttp",
    "redis",
    "celery",
    "einvoice.db",
    "einvoice.factus",
    "einvoice.services",
    "einvoice.sandbox",
    "einvoice.settings",
    "workers",
)


def _imported_modules(source: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_domain_modules_import_no_io_library_or_outer_layer() -> None:
    package_dir = Path(einvoice.domain.__file__).parent
    sources = sorted(package_dir.glob("*.py"))
    assert {path.name for path in sources} >= {
        "invoices.py",
        "dian.py",
        "payload.py",
        "errors.py",
        "jobs.py",
    }
    offenders = {
        f"{path.name}: {module}"
        for path in sources
        for module in _imported_modules(path)
        if any(module == banned or module.startswith(banned + ".") for banned in FORBIDDEN)
    }
    assert offenders == set()
