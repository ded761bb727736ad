"""The Celery app registers every task of the house, and the task modules do not import each
other in a circle (a cycle hides which module defines what, and breaks with a partial import)."""

from __future__ import annotations

import ast
from pathlib import Path

from einvoice import queueing

WORKERS = Path(__file__).resolve().parents[3] / "workers"


def _module_level_imports(path: Path) -> set[str]:
    """The ``workers.*`` modules a file imports at module level (function bodies excluded)."""
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "workers":
                found |= {f"workers.{alias.name}" for alias in node.names}
            elif node.module.startswith("workers."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("workers.")}
    return found


def test_every_task_name_of_the_house_is_registered_by_the_app_alone() -> None:
    # Given the app as `celery -A workers` loads it (autodiscovery, nothing else imported)
    from workers.app import app

    # When we list the names the producers publish (einvoice.queueing.TASK_*)
    names = {v for k, v in vars(queueing).items() if k.startswith("TASK_")}

    # Then every one of them has a registered task, follow-ups included
    assert len(names) == 10  # webhook deliveries and their dispatcher included
    assert names <= set(app.tasks), sorted(names - set(app.tasks))


def test_task_modules_import_no_other_task_module() -> None:
    # Given the module-level imports of every workers module
    graph = {f"workers.{p.stem}": _module_level_imports(p) for p in WORKERS.glob("*.py")
             if p.stem != "__init__"}

    # Then no two of them import each other, directly or through a third
    def reaches(start: str, target: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, set()) - seen:
            if nxt == target or reaches(nxt, target, seen | {nxt}):
                return True
        return False

    cycles = sorted(m for m in graph if reaches(m, m, set()))
    assert not cycles, f"modules on an import cycle: {cycles}"
