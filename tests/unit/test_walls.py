"""The house walls (STYLE.md "Walls that keep the house readable"), checked on the source.

Each rule parses the product's Python files (``ast``, nothing is imported) and fails naming every
``file:line`` that breaks it:

* ``einvoice`` never imports ``workers``;
* ``einvoice/domain/`` imports no I/O module (it is tested with plain values);
* only ``einvoice/factus/`` imports httpx;
* ``einvoice/sandbox/`` never imports ``einvoice/factus/`` (the simulator is the other side of
  the wire, written from the contract);
* SQL lives in ``einvoice/db/``: elsewhere no SQL text, no ``select``/``update``/``insert``/
  ``delete``/``text`` of SQLAlchemy, no ``execute``/``scalars``/``scalar``/``query``/``get`` on a
  session or connection (migrations are outside ``einvoice/`` and not checked);
* services never commit a session: a transaction they need between two HTTP calls is a
  :class:`einvoice.db.uow.UnitOfWork`;
* no job status literal (one of the seven ``JobStatus`` values as a whole string constant)
  outside ``einvoice/domain/``: code says ``JobStatus.X``; SQL text in ``einvoice/db/`` keeps
  literal statuses (partial index predicates must match them literally), and every status it
  names is checked to be a ``JobStatus`` (or ``FollowupStatus``) value;
* no import cycle between ``einvoice`` modules at module level.

An exception is an entry of :data:`ALLOWED` with a one-line reason; it should stay rare.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from einvoice.domain.jobs import FollowupStatus, JobStatus

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("einvoice", "workers")

#: (rule, path relative to the repository) -> why that file may break that rule.
ALLOWED: dict[tuple[str, str], str] = {
    ("sql", "einvoice/demo.py"): "the demo plays an ERP: it creates its own database and "
    "enqueues half of its invoices with a plain SQL INSERT, as an ERP would",
    ("sql", "einvoice/devservices.py"): "creates the development database on its embedded "
    "PostgreSQL server (CREATE DATABASE), before any repository exists",
    ("status", "einvoice/demo.py"): "the demo plays an ERP and reads its job rows as an ERP "
    "would; it is to move to JobStatus with its next change",
    ("status", "einvoice/db/invoices.py"): "two ORM filters on the job status, to move to "
    "JobStatus with the invoice repository's next change",
    ("httpx", "einvoice/webhooks/sender.py"): "the outcome webhooks' sender: the ERP's "
    "receivers are the other external system we POST to (signed Standard Webhooks)",
}

#: Modules that do I/O; ``einvoice/domain/`` imports none of them (nor their submodules).
IO_MODULES = ("sqlalchemy", "psycopg", "psycopg2", "httpx", "redis", "celery", "kombu", "socket",
              "requests", "urllib.request", "http.client", "einvoice.db", "einvoice.factus",
              "einvoice.services", "einvoice.sandbox", "einvoice.queueing")

#: SQLAlchemy statement builders that belong in ``einvoice/db/``.
SQL_BUILDERS = {"select", "update", "insert", "delete", "text"}
#: Methods that run SQL when called on a session or connection.
SQL_METHODS = {"execute", "scalars", "scalar", "query", "get", "exec_driver_sql"}
#: Names under which code holds a session or a connection.
SESSION_NAMES = re.compile(r"(^|_)(session|sess|conn|connection)$")
#: A string that is a SQL statement (upper-case keywords, as the project writes them).
SQL_TEXT = re.compile(
    r"^\s*(SELECT\s|INSERT\s+INTO\s|UPDATE\s+\w+\s+SET\s|DELETE\s+FROM\s|WITH\s+\w+\s+AS\s*\(|"
    r"LISTEN\s|NOTIFY\s|CREATE\s+(TABLE|INDEX|DATABASE|FUNCTION|TRIGGER)\s|"
    r"DROP\s+(TABLE|INDEX|DATABASE)\s|ALTER\s+TABLE\s)")


@dataclass(frozen=True)
class Source:
    """One parsed product file."""

    path: str  # relative to the repository, with "/"
    module: str  # dotted module name
    tree: ast.Module


@cache
def sources() -> tuple[Source, ...]:
    """Every ``.py`` file of the product packages, parsed."""
    found = []
    for package in PRODUCT:
        for file in sorted((ROOT / package).rglob("*.py")):
            rel = file.relative_to(ROOT).as_posix()
            parts = rel[:-3].split("/")
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found.append(Source(rel, ".".join(parts), ast.parse(file.read_text(), rel)))
    return tuple(found)


def _in(source: Source, folder: str) -> bool:
    return source.path.startswith(folder.rstrip("/") + "/") or source.path == folder


def _imports(source: Source) -> Iterator[tuple[int, str]]:
    """(line, imported module) of each import of ``source``, wherever it stands;
    ``from a import b`` yields ``a.b`` too (b may be a module)."""
    for node in ast.walk(source.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def _is_under(module: str, roots: tuple[str, ...] | str) -> bool:
    roots = (roots,) if isinstance(roots, str) else roots
    return any(module == root or module.startswith(root + ".") for root in roots)


def _report(rule: str, hits: list[str]) -> str:
    return f"{rule}: {len(hits)} place(s)\n  " + "\n  ".join(hits)


def _allowed(rule: str, source: Source) -> bool:
    return (rule, source.path) in ALLOWED


# ------------------------------------------------------------------------------------------
# Imports between layers
# ------------------------------------------------------------------------------------------


def test_einvoice_never_imports_workers() -> None:
    # Given every module of the einvoice package, when its imports are read,
    hits = [f"{s.path}:{line} imports {name}" for s in sources() if _in(s, "einvoice")
            for line, name in _imports(s) if _is_under(name, "workers")]
    # then none reaches the Celery wiring.
    assert not hits, _report("einvoice imports workers", hits)


def test_the_domain_imports_no_io_module() -> None:
    hits = [f"{s.path}:{line} imports {name}" for s in sources() if _in(s, "einvoice/domain")
            for line, name in _imports(s) if _is_under(name, IO_MODULES)]
    assert not hits, _report("einvoice/domain imports I/O", hits)


def test_only_the_factus_package_imports_httpx() -> None:
    hits = [f"{s.path}:{line} imports {name}" for s in sources()
            if not _in(s, "einvoice/factus") and not _allowed("httpx", s)
            for line, name in _imports(s) if _is_under(name, "httpx")]
    assert not hits, _report("httpx outside einvoice/factus", hits)


def test_the_sandbox_never_imports_the_factus_client_side() -> None:
    hits = [f"{s.path}:{line} imports {name}" for s in sources() if _in(s, "einvoice/sandbox")
            for line, name in _imports(s) if _is_under(name, "einvoice.factus")]
    assert not hits, _report("einvoice/sandbox imports einvoice/factus", hits)


# ------------------------------------------------------------------------------------------
# SQL lives in einvoice/db/
# ------------------------------------------------------------------------------------------


def _sqlalchemy_names(source: Source) -> tuple[set[str], set[str]]:
    """(local names bound to a SQLAlchemy statement builder, local names of sqlalchemy
    modules), from ``source``'s imports."""
    builders: set[str] = set()
    modules: set[str] = set()
    for node in ast.walk(source.tree):
        if isinstance(node, ast.ImportFrom) and node.module and _is_under(node.module, "sqlalchemy"):
            for alias in node.names:
                if alias.name in SQL_BUILDERS:
                    builders.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if _is_under(alias.name, "sqlalchemy"):
                    modules.add(alias.asname or alias.name.split(".")[0])
    return builders, modules


def _docstrings(tree: ast.Module) -> set[int]:
    """ids of the string constants that are docstrings."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _receiver_name(node: ast.expr) -> str | None:
    """The last name of a call's receiver: ``uow.session`` -> ``session``."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _sql_hits(source: Source) -> Iterator[str]:
    builders, modules = _sqlalchemy_names(source)
    docstrings = _docstrings(source.tree)
    for node in ast.walk(source.tree):
        if isinstance(node, ast.ImportFrom) and node.module and _is_under(node.module, "sqlalchemy"):
            for alias in node.names:
                if alias.name in SQL_BUILDERS:
                    yield f"{source.path}:{node.lineno} imports sqlalchemy's {alias.name}"
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in builders:
                yield f"{source.path}:{node.lineno} calls {func.id}(...) of sqlalchemy"
            elif isinstance(func, ast.Attribute):
                owner = _receiver_name(func.value)
                if func.attr in SQL_BUILDERS and owner in modules:
                    yield f"{source.path}:{node.lineno} calls {owner}.{func.attr}(...)"
                elif func.attr in SQL_METHODS and owner and SESSION_NAMES.search(owner):
                    yield f"{source.path}:{node.lineno} runs SQL: {owner}.{func.attr}(...)"
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and id(node) not in docstrings and SQL_TEXT.match(node.value)):
            yield f"{source.path}:{node.lineno} holds SQL text {node.value.strip()[:40]!r}"
        elif isinstance(node, ast.JoinedStr):
            head = "".join(part.value for part in node.values
                           if isinstance(part, ast.Constant) and isinstance(part.value, str))
            if SQL_TEXT.match(head):
                yield f"{source.path}:{node.lineno} holds SQL text {head.strip()[:40]!r}"


def test_sql_lives_only_in_the_db_package() -> None:
    # Given every product file outside einvoice/db/ (and the listed exceptions),
    hits = [hit for s in sources() if not _in(s, "einvoice/db") and not _allowed("sql", s)
            for hit in sorted(_sql_hits(s), key=lambda h: int(h.split(":")[1].split()[0]))]
    # then none builds, holds or runs a SQL statement.
    assert not hits, _report("SQL outside einvoice/db", hits)


def test_services_never_commit_a_session() -> None:
    hits = []
    for s in sources():
        if not _in(s, "einvoice/services"):
            continue
        for node in ast.walk(s.tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "commit"):
                owner = _receiver_name(node.func.value)
                if owner and SESSION_NAMES.search(owner):
                    hits.append(f"{s.path}:{node.lineno} calls {owner}.commit()")
    assert not hits, _report("a service commits a session (use a UnitOfWork)", hits)


def test_the_wall_checks_catch_what_they_forbid() -> None:
    # Given a made-up service that breaks the SQL rule four ways,
    code = (
        "from sqlalchemy import select, text as t\n"
        "def f(session):\n"
        "    session.execute(t('x'))\n"
        "    return select(1), 'SELECT 1 FROM jobs'\n"
    )
    fake = Source("einvoice/services/fake.py", "einvoice.services.fake", ast.parse(code))
    # when it is checked, then each break is named with its line.
    hits = list(_sql_hits(fake))
    assert any(":1 imports sqlalchemy's select" in h for h in hits), hits
    assert any(":3 runs SQL: session.execute" in h for h in hits), hits
    assert any(":3 calls t(...)" in h for h in hits), hits
    assert any(":4 calls select(...)" in h for h in hits), hits
    assert any(":4 holds SQL text 'SELECT 1 FROM jobs'" in h for h in hits), hits


# ------------------------------------------------------------------------------------------
# Import cycles
# ------------------------------------------------------------------------------------------


def _module_graph(package: str) -> dict[str, set[str]]:
    """module -> the modules of ``package`` it imports at module level."""
    known = {s.module: s for s in sources() if _is_under(s.module, package)}
    graph: dict[str, set[str]] = {}
    for name, source in known.items():
        targets = set()
        for imported in _module_level_targets(source):
            # The module itself if it is one of ours, else its nearest package of ours.
            module = imported
            while module and module not in known:
                module = module.rpartition(".")[0]
            if module and module != name:
                targets.add(module)
        graph[name] = targets
    return graph


def _module_level_targets(source: Source) -> Iterator[str]:
    """The modules ``source`` imports at module level. ``from a import b`` imports the module
    ``a.b`` when b is a module (Python loads it even while ``a``'s ``__init__`` is running),
    else ``a``."""
    modules = {s.module for s in sources()}
    for node in source.tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.Import):
                yield from (alias.name for alias in inner.names)
            elif isinstance(inner, ast.ImportFrom) and inner.module and not inner.level:
                for alias in inner.names:
                    sub = f"{inner.module}.{alias.name}"
                    yield sub if sub in modules else inner.module


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each strongly connected group of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def test_einvoice_modules_import_each_other_without_cycles() -> None:
    # Given the module-level imports between einvoice's modules (importing a submodule also
    # runs its package's __init__; that implicit step is not counted, only import statements),
    cycles = _cycles(_module_graph("einvoice"))
    # then no group of modules needs each other to load.
    assert not cycles, "import cycles at module level:\n  " + "\n  ".join(
        " <-> ".join(group) for group in cycles)


def test_the_cycle_check_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# ------------------------------------------------------------------------------------------
# Job statuses are the domain's
# ------------------------------------------------------------------------------------------

#: The seven job statuses, as the strings a bare literal would spell.
STATUS_WORDS = frozenset(status.value for status in JobStatus)

#: Statuses of other tables that SQL text in ``einvoice/db/`` may name, with the column.
OTHER_STATUSES = {"validated": "invoice_sales.status, set when its job is accepted"}

#: Where SQL text names a status: ``status = 'x'``, ``status IN ('x', ...)``, and the
#: ``'from'``/``'to'`` keys of an event's metadata built in SQL.
_SQL_STATUS_EQ = re.compile(r"\bstatus\s*(?:=|<>|!=)\s*'(\w+)'", re.IGNORECASE)
_SQL_STATUS_IN = re.compile(r"\bstatus\s+(?:NOT\s+)?IN\s*\(([^)]*)\)", re.IGNORECASE)
_SQL_FROM_TO = re.compile(r"'(?:from|to)',\s*'(\w+)'")


def _status_literal_hits(source: Source) -> Iterator[str]:
    docstrings = _docstrings(source.tree)
    for node in ast.walk(source.tree):
        if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                and node.value in STATUS_WORDS and id(node) not in docstrings):
            yield f"{source.path}:{node.lineno} holds the status literal {node.value!r}"


def _sql_statuses(sql: str) -> list[str]:
    """Every status value that the SQL text ``sql`` names."""
    found = _SQL_STATUS_EQ.findall(sql) + _SQL_FROM_TO.findall(sql)
    for listed in _SQL_STATUS_IN.findall(sql):
        found += re.findall(r"'(\w+)'", listed)
    return found


def _unknown_sql_status_hits(source: Source) -> Iterator[str]:
    known = STATUS_WORDS | {status.value for status in FollowupStatus} | set(OTHER_STATUSES)
    for node in ast.walk(source.tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            for status in _sql_statuses(node.value):
                if status not in known:
                    yield f"{source.path}:{node.lineno} names the unknown status {status!r}"


def test_no_bare_status_literal_outside_the_domain() -> None:
    # Given every product file outside einvoice/domain/ (and the listed exceptions),
    hits = [hit for s in sources() if not _in(s, "einvoice/domain") and not _allowed("status", s)
            for hit in _status_literal_hits(s)]
    # then none spells a job status as a bare string: it says JobStatus.X (SQL text, which
    # holds a status inside a longer statement, is checked by the next test).
    assert not hits, _report("job status literal outside einvoice/domain (use JobStatus)", hits)


def test_every_status_named_in_sql_is_a_domain_status() -> None:
    # Given the SQL text of the repositories (statements, partial-index predicates, docstrings),
    hits = [hit for s in sources() if _in(s, "einvoice/db") for hit in _unknown_sql_status_hits(s)]
    # then each status it names is a JobStatus or FollowupStatus value (or a listed column of
    # another table): a renamed status cannot leave a statement silently matching nothing.
    assert not hits, _report("SQL names a status the domain does not know", hits)


def test_the_status_checks_catch_what_they_forbid() -> None:
    # Given a made-up service comparing with a bare status and a repository with a typo in SQL,
    service = Source("einvoice/services/fake.py", "einvoice.services.fake", ast.parse(
        'def f(job):\n    """A "failed" job."""\n    return job.status == "failed"\n'))
    repo = Source("einvoice/db/fake.py", "einvoice.db.fake", ast.parse(
        "SQL = \"UPDATE electronic_invoicing_jobs SET status = 'sennt' "
        "WHERE status IN ('pending', 'procesing')\"\n"))
    # when they are checked, then the literal (not the docstring) and both typos are named.
    assert list(_status_literal_hits(service)) == [
        "einvoice/services/fake.py:3 holds the status literal 'failed'"]
    assert sorted(_unknown_sql_status_hits(repo)) == [
        "einvoice/db/fake.py:1 names the unknown status 'procesing'",
        "einvoice/db/fake.py:1 names the unknown status 'sennt'"]
