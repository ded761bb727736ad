"""The error catalogue explains every code einvoice can write, in Spanish and English, and finds
the DIAN rules inside the rejections the Factus simulator sends.

The codes are collected from the source itself (the way ``test_walls.py`` reads the house
rules): every ``PayloadError("code", ...)`` and helper that wraps it, every ``reason = "..."`` and
``reason="..."``, every ``code=``/``error_code=`` of an outcome, decision or follow-up, the
database trigger's ``error_code := '...'``, and the few codes built at run time (listed below with
where they come from). A new code without a catalogue row fails here.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from einvoice.db.models import Base
from einvoice.domain.catalogue import (
    COLUMNS,
    entries,
    explain,
    explain_job,
    find_dian_rules,
    language_of,
    markdown_table,
    parse_catalogue,
    render_lines,
)
from einvoice.factus.errors import _TOKEN_CREDENTIAL_ERRORS, DianRejectionError, error_from_response
from einvoice.sandbox import dian as simulator_dian

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = ROOT / "einvoice"

#: Calls whose ``code=`` keyword is an ``error_code`` (an outcome, a decision, a follow-up's
#: finish or reschedule). ``add_event(code=...)`` is an event code, not an error code.
ERROR_CODE_CALLS = {"CallOutcome", "Decision", "StepOutcome", "_Outcome", "finish", "reschedule",
                    "_finish", "_reschedule"}
#: Calls that take the code positionally, and at which position (claim's ``decide(kind, code)``,
#: the webhook service's ``_fail(session, followup, code, message)``).
POSITIONAL_CODE_CALLS = {"decide": 1, "_fail": 2}
#: ``PayloadError`` calls whose code is not a literal, with the codes they can produce.
DYNAMIC_PAYLOAD_CODES: dict[str, tuple[str, ...]] = {
    # payload._line's fail(code, column, value, detail): its callers pass literals (collected).
    "code": (),
    # payload._line: a NULL qty, unit_price or tax_rate.
    "f\"missing_{('quantity' if column == 'qty' else column.removeprefix('unit_'))}\"": (
        "missing_quantity", "missing_price", "missing_tax_rate"),
}
#: Codes written at run time from a variable part, each with an example the catalogue must
#: explain through its family row.
RUN_TIME_CODES = (
    "dian_rejected:FAK24",  # factus_call.rejected_by_dian: "dian_rejected:" + rule codes
    "factus_400", "factus_402", "factus_405", "factus_413",  # errors.error_from_response
    "http_500", "http_404", "http_301",  # webhooks._record: http_<status> of the receiver
    "secret_missing",  # webhooks._send: no secret to sign with
)


def _python_sources() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        if "sandbox" in path.relative_to(PACKAGE).parts:
            continue  # the simulator is the other side of the wire: its codes are Factus's
        yield str(path.relative_to(ROOT)), ast.parse(path.read_text(encoding="utf-8"))


def _name(call: ast.Call) -> str | None:
    func = call.func
    return func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)


def _strings(node: ast.AST) -> set[str] | None:
    """The string constants an expression can be: a literal, either side of ``a if c else b``,
    the literals of ``x or "retry"``; None when it is not made of literals."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        body, orelse = _strings(node.body), _strings(node.orelse)
        return None if body is None or orelse is None else body | orelse
    if isinstance(node, ast.BoolOp):
        return set().union(*(_strings(value) or set() for value in node.values))
    return None


def _payload_helpers(sources: list[tuple[str, ast.Module]]) -> dict[str, int]:
    """``PayloadError`` and every function that passes one of its parameters on as the code,
    with the position of that parameter (payload._line's ``fail``)."""
    helpers = {"PayloadError": 0}
    changed = True
    while changed:
        changed = False
        for _, tree in sources:
            for function in ast.walk(tree):
                if not isinstance(function, ast.FunctionDef) or function.name in helpers:
                    continue
                params = [arg.arg for arg in function.args.args]
                for call in ast.walk(function):
                    if not isinstance(call, ast.Call) or _name(call) not in helpers:
                        continue
                    position = helpers[_name(call) or ""]
                    if (len(call.args) > position and isinstance(call.args[position], ast.Name)
                            and call.args[position].id in params):
                        helpers[function.name] = params.index(call.args[position].id)
                        changed = True
                        break
    return helpers


def written_codes() -> tuple[dict[str, str], list[str]]:
    """Every error code the product can write: ``{code: first file}``, and the non-literal
    ``PayloadError`` codes not in :data:`DYNAMIC_PAYLOAD_CODES` (each a failure)."""
    sources = list(_python_sources())
    helpers = _payload_helpers(sources)
    codes: dict[str, str] = {}
    unknown_dynamic: list[str] = []

    def add(found: set[str] | None, where: str) -> None:
        for code in found or ():
            codes.setdefault(code, where)

    for where, tree in sources:
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):  # reason = "..." / reason: str = "..."
                for stmt in node.body:
                    targets = (stmt.targets if isinstance(stmt, ast.Assign) else
                               [stmt.target] if isinstance(stmt, ast.AnnAssign) else [])
                    if any(isinstance(t, ast.Name) and t.id == "reason" for t in targets):
                        add(_strings(stmt.value) if stmt.value else None, where)
            elif isinstance(node, ast.Tuple) and len(node.elts) >= 2:
                first = node.elts[0]  # documents: (FollowupStatus.FAILED, "code", message)
                if isinstance(first, ast.Attribute) and first.attr == "FAILED":
                    add(_strings(node.elts[1]), where)
            elif isinstance(node, ast.Call):
                name = _name(node)
                if name in helpers and len(node.args) > helpers[name]:
                    argument = node.args[helpers[name]]
                    found = _strings(argument)
                    if found is None:
                        text = ast.unparse(argument)
                        if text in DYNAMIC_PAYLOAD_CODES:
                            found = set(DYNAMIC_PAYLOAD_CODES[text])
                        else:
                            unknown_dynamic.append(f"{where}:{node.lineno}: {text}")
                    add(found, where)
                if name in POSITIONAL_CODE_CALLS and len(node.args) > POSITIONAL_CODE_CALLS[name]:
                    add(_strings(node.args[POSITIONAL_CODE_CALLS[name]]), where)
                for keyword in node.keywords:
                    if keyword.arg in ("reason", "error_code") or (
                            keyword.arg == "code" and name in ERROR_CODE_CALLS):
                        add(_strings(keyword.value), where)
    return codes, unknown_dynamic


def _webhook_sender_codes() -> set[str]:
    """The error prefixes of the webhook sender (``"timeout"``, ``f"connect_error: ..."``),
    which ``webhooks._record`` keeps as the follow-up's code."""
    tree = ast.parse((PACKAGE / "webhooks" / "sender.py").read_text(encoding="utf-8"))
    codes = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _name(node) == "_result" and len(node.args) > 2:
            text = node.args[2]
            if isinstance(text, ast.JoinedStr) and isinstance(text.values[0], ast.Constant):
                text = text.values[0]
            if isinstance(text, ast.Constant) and isinstance(text.value, str):
                code = text.value.split(":", 1)[0]
                # f"http_{status}: ...": a status-numbered code, checked by an example
                codes.add(code + "502" if code.endswith("_") else code)
    return codes


def _trigger_codes() -> set[str]:
    """``error_code := '...'`` in the migrations' triggers (``already_accepted``)."""
    found: set[str] = set()
    for path in (ROOT / "migrations" / "versions").glob("*.py"):
        found |= set(re.findall(r"error_code\s*:=\s*'(\w+)'", path.read_text(encoding="utf-8")))
    return found


def test_every_code_the_code_base_can_write_has_a_catalogue_row() -> None:
    # Given every code the source writes, the triggers write and run time builds
    codes, unknown_dynamic = written_codes()
    assert len(codes) > 150, "the collector has stopped finding codes"
    assert {"invalid_dv", "dian_rejected", "server_error", "attempts_exhausted",
            "no_factus_account", "email_daily_limit", "job_not_found"} <= set(codes)
    everything = (set(codes) | _trigger_codes() | _webhook_sender_codes() | set(RUN_TIME_CODES)
                  | {f"factus_{error}" for error in _TOKEN_CREDENTIAL_ERRORS})
    # Then a new code built from a variable is listed with what it produces,
    assert unknown_dynamic == []
    # and the catalogue explains each of them.
    missing = sorted(code for code in everything if explain(code) is None)
    assert missing == [], "add a row to einvoice/data/rule_catalogue.csv for each"


def test_every_row_has_spanish_and_english_a_fix_and_a_source() -> None:
    rows = entries()
    assert len(rows) > 150
    for row in rows:
        for column in ("message_es", "fix_es", "message_en", "fix_en", "source"):
            assert len(getattr(row, column)) >= 4, (row.code, column)
        assert row.message_es != row.message_en, row.code
        assert row.retryable in ("yes", "no", "after_fix"), row.code
        assert explain(row.code, "es") == row.explanation("es")
        assert explain(row.code, "en") == row.explanation("en")


def test_every_erp_field_is_a_real_column() -> None:
    # Given the ERP tables as the models declare them
    tables = Base.metadata.tables
    wrong = []
    for row in entries():
        if not row.erp_field:
            continue
        table, _, column = row.erp_field.partition(".")
        if table not in tables or column not in tables[table].columns:
            wrong.append(f"{row.code}: {row.erp_field}")
    # Then every ERP field of the catalogue names one of their columns
    assert wrong == []


def test_dian_rows_say_rejection_or_notification_and_name_where_they_were_read() -> None:
    dian = [row for row in entries() if row.kind == "dian"]
    assert len(dian) >= 20
    for row in dian:
        assert re.fullmatch(r"\d{2,3}|[A-Z]{2,4}\d{2,3}[a-z]?", row.code), row.code
        assert row.message_es.startswith(f"Regla {row.code}"), row.code
        assert "Anexo" in row.source or "DIAN" in row.source, row.code
        assert re.search(r"FACTUS_API\.md|\w\.\w+/|code|docs", row.source), row.code


@pytest.mark.parametrize("message", [
    simulator_dian.FAK24, simulator_dian.FAD06, simulator_dian.FAJ43B, simulator_dian.CAK55,
    simulator_dian.CBF02,
])
def test_every_rule_the_simulator_sends_is_found_and_explained(message: str) -> None:
    # Given a DIAN rule text exactly as the simulator relays it ("Regla: FAK24, Rechazo: ...")
    code = message.split(",", maxsplit=1)[0].removeprefix("Regla: ")
    # When the catalogue reads it
    found = find_dian_rules(message)
    # Then it finds the rule and explains it in both languages
    assert found == [code]
    spanish, english = explain(code), explain(code, "en")
    assert spanish is not None
    assert english is not None
    assert spanish.kind == "dian"
    assert spanish.message != english.message


def test_a_simulated_rejection_is_explained_as_the_worker_stores_it() -> None:
    # Given the 422 the simulator answers for a wrong check digit (FACTUS_API.md §5.4)
    body = simulator_dian.dian_rejection_body([simulator_dian.FAK24])
    answer = httpx.Response(422, json=body, request=httpx.Request(
        "POST", "http://sandbox.test/v1/bills/validate"))
    error = error_from_response(answer)
    assert isinstance(error, DianRejectionError)
    # and the job's code and message as submit_job writes them,
    error_code = "dian_rejected:" + ",".join(error.rule_codes)
    error_message = "; ".join(f"{r.code}: {r.text}" for r in error.rejections)
    # When the job is explained
    explained = explain_job(error_code, error_message)
    # Then our code comes first, then DIAN's rule, in Spanish: what it means and what to fix
    assert [e.code for e in explained] == ["dian_rejected", "FAK24"]
    assert explained[1].erp_field == "customers.dv"
    assert "dígito de verificación" in explained[1].message
    assert explained[1].retryable == "after_fix"
    assert [e.code for e in explain_job(error_code, error_message, "en")] == [
        "dian_rejected", "FAK24"]
    assert "check digit" in explain_job(error_code, error_message, "en")[1].message


def test_rules_are_found_in_every_form_a_job_keeps_them() -> None:
    assert find_dian_rules("dian_rejected:FAK24,FAD06") == ["FAK24", "FAD06"]
    assert find_dian_rules("FAK24: DV no corresponde; FAJ43b: Nombre informado") == [
        "FAK24", "FAJ43b"]
    assert find_dian_rules('["Regla: 90, Rechazo: Documento procesado anteriormente."]') == ["90"]
    assert find_dian_rules("DIAN rule 90 (document processed before): 90: Documento "
                           "procesado anteriormente.") == ["90"]
    # a known rule named in our own message (invalid_dv says which DIAN rule it prevents)
    assert find_dian_rules("customers.dv = 5: NIT 900123456 has check digit 8, not 5; DIAN "
                           "would reject it (FAK24)") == ["FAK24"]
    # document numbers, ids and prose numbers are not rules
    assert find_dian_rules("El documento NC82 no ha sido validado") == []
    assert find_dian_rules("number SETP990000001, rule 500 of the house") == []
    assert find_dian_rules(None) == []
    assert find_dian_rules("dian_rejected:?") == []


def test_codes_with_a_variable_part_are_explained_by_their_family() -> None:
    family = {code: getattr(explain(code), "code", None)
              for code in ("dian_rejected:FAK24", "factus_402", "http_503", "faj43b")}
    assert family == {"dian_rejected:FAK24": "dian_rejected", "factus_402": "factus_4xx",
                      "http_503": "http_xxx", "faj43b": "FAJ43b"}
    assert explain("no_such_code") is None
    assert explain("factus_999") is None
    assert explain_job(None, None) == []
    assert explain_job("no_such_code", "nothing to see") == []
    with pytest.raises(ValueError, match="language"):
        explain("invalid_dv", "fr")


def test_the_http_language_is_spanish_unless_english_is_preferred() -> None:
    assert language_of(None) == "es"
    assert language_of("es-CO,es;q=0.9") == "es"
    assert language_of("en-US,en;q=0.9") == "en"
    assert language_of("fr-FR, en;q=0.5") == "en"
    assert language_of("es;q=0.4, en;q=0.8") == "en"
    assert language_of("es;q=0, en") == "en"
    assert language_of("de, fr") == "es"


def test_terminal_lines_carry_the_fix_field_and_retry_in_the_chosen_language() -> None:
    explained = explain_job("invalid_dv", "customers.dv = 5: ... (FAK24)")
    lines = render_lines(explained)
    assert lines[0] == "Explicación:"
    assert any(line.strip() == "Campo del ERP: customers.dv" for line in lines)
    assert any("Reintentar: después de corregir" in line for line in lines)
    english = render_lines(explain_job("invalid_dv", None, "en"), "en")
    assert english[0] == "Explanation:"
    assert any("What to do:" in line for line in english)
    assert render_lines([]) == []


def test_a_malformed_catalogue_is_refused() -> None:
    header = ",".join(COLUMNS)
    good = "x_code,einvoice,mensaje,arreglo,message,fix,,no,somewhere"
    assert [e.code for e in parse_catalogue(f"{header}\n{good}\n")] == ["x_code"]
    for bad, why in ((f"{good}\n{good}", "twice"),
                     ("x_code,einvoice,mensaje,,message,fix,,no,somewhere", "no fix_es"),
                     ("x_code,einvoice,mensaje,arreglo,message,fix,,maybe,somewhere", "retryable"),
                     ("x_code,other,mensaje,arreglo,message,fix,,no,somewhere", "kind")):
        with pytest.raises(ValueError, match=why):
            parse_catalogue(f"{header}\n{bad}\n")
    with pytest.raises(ValueError, match="header"):
        parse_catalogue("code,kind\nx,einvoice\n")


def test_the_documentation_lists_exactly_the_catalogue() -> None:
    # Given docs/dian-errors.md, whose tables are generated from the data file
    page = (ROOT / "docs" / "dian-errors.md").read_text(encoding="utf-8")
    # Then both tables are there as markdown_table renders them today
    for kind in ("einvoice", "dian"):
        assert markdown_table(kind) in page, (
            f"regenerate the {kind} table of docs/dian-errors.md (see 'Adding a code')")
