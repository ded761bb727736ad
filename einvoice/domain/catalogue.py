"""The error catalogue: every code a job, a follow-up or a command can carry, explained.

One row per code in ``einvoice/data/rule_catalogue.csv`` (UTF-8, a header line, RFC 4180
quoting), of two kinds:

* ``einvoice``: our own reason codes, the ``error_code`` of a job or follow-up and the ``code`` of
  an API problem (``invalid_dv``, ``dian_rejected``, ``server_error``, ``job_not_found``...);
* ``dian``: validation rules of DIAN's "Anexo técnico de factura electrónica de venta" (v1.9)
  that Factus relays as ``"Regla: FAK24, Rechazo: ..."`` (``FAK24``, ``FAJ43b``, ``90``...).

Each row says what happened (``message_es``/``message_en``) for the accountant, what to fix
(``fix_es``/``fix_en``), in which ERP column (``erp_field``, ``table.column`` or empty), whether a
retry can help (``retryable``: ``yes`` — einvoice retries, or a plain retry may succeed;
``after_fix`` — retry once the data or setting is fixed; ``no`` — a retry does not help) and
where the rule comes from (``source``: the module or document that defines our code; for a DIAN
rule, the Anexo and where its code and text were read). ``docs/dian-errors.md`` lists them all.

Codes that carry a variable part are looked up by their family: ``dian_rejected:FAK24`` by
``dian_rejected``, ``factus_402`` by ``factus_4xx``, a webhook's ``http_503`` by ``http_xxx``.

The data file is read once (``importlib.resources``) and cached; nothing else here does I/O.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

#: Languages of the catalogue; Spanish first (the accountant's), English available.
LANGUAGES = ("es", "en")
#: The ``kind`` column: our own codes, or DIAN's validation rules.
KINDS = ("einvoice", "dian")
#: The ``retryable`` column.
RETRYABLE = ("yes", "no", "after_fix")
#: The columns of the data file, in order.
COLUMNS = ("code", "kind", "message_es", "fix_es", "message_en", "fix_en", "erp_field",
           "retryable", "source")
DATA_FILE = "rule_catalogue.csv"

Language = Literal["es", "en"]

#: Codes with a variable part and the catalogue row that explains them.
_FAMILIES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^factus_4\d\d$"), "factus_4xx"),  # einvoice.factus.errors: factus_<status>
    (re.compile(r"^http_\d{3}$"), "http_xxx"),  # a webhook receiver's answer: http_<status>
)
#: A DIAN rule code as DIAN writes it: two to four capitals, two or three digits, an optional
#: lower-case letter (FAK24, FAJ43b, CBF02, RUT01).
_RULE_SHAPE = r"[A-Z]{2,4}\d{2,3}[a-z]?"
#: "Regla: FAK24, Rechazo: ..." (Factus relays DIAN's text; FACTUS_API.md §5.4).
_REGLA = re.compile(r"Regla\s*:\s*([^\s,;:]+)", re.IGNORECASE)
#: The job's error_code of a DIAN rejection: "dian_rejected:FAK24,FAD06".
_REJECTED = re.compile(r"dian_rejected:([A-Za-z0-9?]+(?:,[A-Za-z0-9?]+)*)")
#: "DIAN rule 90" / "regla 90" (the message of ``dian_already_processed``).
_RULE_WORD = re.compile(r"\b(?:rule|regla)\s+(\d{2,3}|" + _RULE_SHAPE + r")\b", re.IGNORECASE)
#: A rule-shaped token anywhere: kept when followed by ":" (the stored "FAK24: text" form of a
#: rejection) or when the catalogue knows it.
_TOKEN = re.compile(r"(?<![A-Za-z0-9_])(" + _RULE_SHAPE + r")(?![A-Za-z0-9_])(\s*:)?")


@dataclass(frozen=True, slots=True)
class Explanation:
    """One code explained in one language.

    Attributes:
        code: the catalogue's code (``invalid_dv``, ``dian_rejected``, ``factus_4xx``, ``FAK24``).
        kind: ``einvoice`` (our code) or ``dian`` (a DIAN validation rule).
        message: what happened, for the accountant.
        fix: what to do about it.
        erp_field: the ERP column to fix (``customers.dv``), or None when no column applies.
        retryable: ``yes``, ``no`` or ``after_fix`` (see the module docstring).
        source: where the rule is defined (a module, a document, the DIAN Anexo and where its
            text was read).
    """

    code: str
    kind: str
    message: str
    fix: str
    erp_field: str | None
    retryable: str
    source: str

    def as_dict(self) -> dict[str, str | None]:
        """The explanation as a JSON-ready mapping (the API's ``explanation`` member)."""
        return {"code": self.code, "kind": self.kind, "message": self.message, "fix": self.fix,
                "erp_field": self.erp_field, "retryable": self.retryable, "source": self.source}


@dataclass(frozen=True, slots=True)
class Entry:
    """One row of the data file, both languages (see :data:`COLUMNS`)."""

    code: str
    kind: str
    message_es: str
    fix_es: str
    message_en: str
    fix_en: str
    erp_field: str
    retryable: str
    source: str

    def explanation(self, lang: Language = "es") -> Explanation:
        """This row in ``lang`` (``es`` or ``en``)."""
        spanish = lang == "es"
        return Explanation(
            code=self.code, kind=self.kind,
            message=self.message_es if spanish else self.message_en,
            fix=self.fix_es if spanish else self.fix_en,
            erp_field=self.erp_field or None, retryable=self.retryable, source=self.source)


def parse_catalogue(text: str) -> tuple[Entry, ...]:
    """Parse the CSV text of the catalogue.

    Args:
        text: the file's content (header line :data:`COLUMNS`).
    Returns:
        The rows in file order.
    Raises:
        ValueError: a wrong header, an unknown ``kind`` or ``retryable``, an empty code,
            message or fix, or a code listed twice: the file is packaged data, so a bad row is
            a defect to fix, not input to tolerate.
    """
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != COLUMNS:
        raise ValueError(f"{DATA_FILE}: header {reader.fieldnames} is not {list(COLUMNS)}")
    rows: list[Entry] = []
    seen: set[str] = set()
    for line, raw in enumerate(reader, start=2):
        row = {name: (raw.get(name) or "").strip() for name in COLUMNS}
        entry = Entry(**row)
        empty = [name for name in COLUMNS if name != "erp_field" and not row[name]]
        if empty:
            raise ValueError(f"{DATA_FILE}:{line}: {entry.code or '?'} has no {', '.join(empty)}")
        if entry.kind not in KINDS or entry.retryable not in RETRYABLE:
            raise ValueError(f"{DATA_FILE}:{line}: {entry.code}: kind {entry.kind!r} or "
                             f"retryable {entry.retryable!r} is not allowed")
        if entry.code.casefold() in seen:
            raise ValueError(f"{DATA_FILE}:{line}: {entry.code} is listed twice")
        seen.add(entry.code.casefold())
        rows.append(entry)
    return tuple(rows)


@cache
def entries() -> tuple[Entry, ...]:
    """Every row of the packaged ``einvoice/data/rule_catalogue.csv``, read once.

    Raises:
        ValueError: the packaged file is malformed (:func:`parse_catalogue`).
    """
    text = resources.files("einvoice").joinpath("data", DATA_FILE).read_text(encoding="utf-8")
    return parse_catalogue(text)


@cache
def _index() -> dict[str, Entry]:
    """Rows by exact code, and DIAN rules also by case-folded code (``faj43b``)."""
    index: dict[str, Entry] = {}
    for entry in entries():
        index[entry.code] = entry
        if entry.kind == "dian":
            index.setdefault(entry.code.casefold(), entry)
    return index


def _language(lang: str) -> Language:
    if lang == "es":
        return "es"
    if lang == "en":
        return "en"
    raise ValueError(f"language {lang!r} is not one of {', '.join(LANGUAGES)}")


def catalogue_code(code: str) -> str | None:
    """The catalogue row that explains ``code``, or None.

    ``dian_rejected:FAK24`` → ``dian_rejected``, ``factus_402`` → ``factus_4xx``,
    ``http_503`` → ``http_xxx``, ``faj43b`` → ``FAJ43b``; an exact code is itself.
    """
    index = _index()
    candidate = code.strip()
    if candidate in index:
        return index[candidate].code
    base = candidate.split(":", 1)[0]
    if base in index:
        return index[base].code
    for pattern, family in _FAMILIES:
        if pattern.match(base) and family in index:
            return family
    found = index.get(candidate.casefold())
    return found.code if found is not None and found.kind == "dian" else None


def explain(code: str, lang: str = "es") -> Explanation | None:
    """Explain one code.

    Args:
        code: an ``error_code`` (``invalid_dv``, ``dian_rejected:FAK24``, ``factus_402``), an
            API problem's ``code``, or a DIAN rule code (``FAK24``, ``90``).
        lang: ``es`` (default) or ``en``.
    Returns:
        The :class:`Explanation`, or None when the catalogue has no row for the code.
    Raises:
        ValueError: ``lang`` is not ``es`` or ``en``.
    """
    language = _language(lang)
    found = catalogue_code(code) if code else None
    return None if found is None else _index()[found].explanation(language)


def find_dian_rules(message: str | None) -> list[str]:
    """The DIAN rule codes a rejection message or error code names, in order, without repeats.

    Recognised: DIAN's own form ``"Regla: FAJ43b, Notificación: ..."`` (any code), a job's
    ``dian_rejected:FAK24,FAD06`` and the stored ``"FAK24: DV no corresponde..."`` form,
    ``"DIAN rule 90"``, and any rule-shaped token the catalogue knows (``(FAK24)``). Other
    capital-and-digit tokens (a document number such as ``NC82``) are not rules and are left out.

    Args:
        message: an ``error_message``, an ``error_code`` or any text; None gives [].
    Returns:
        Codes as written (``["FAK24", "FAJ43b"]``); ``?`` (a rule without a code) is dropped.
    """
    if not message:
        return []
    found: list[tuple[int, str]] = []
    found += [(m.start(1), m.group(1)) for m in _REGLA.finditer(message)]
    for match in _REJECTED.finditer(message):
        position = match.start(1)
        for code in match.group(1).split(","):
            found.append((position, code))
            position += len(code) + 1
    known = _index()
    # "rule 500" in prose is not a rule: a bare number counts only when the catalogue has it.
    found += [(m.start(1), m.group(1)) for m in _RULE_WORD.finditer(message)
              if not m.group(1).isdigit() or m.group(1) in known]
    found += [(m.start(1), m.group(1)) for m in _TOKEN.finditer(message)
              if m.group(2) or m.group(1) in known]
    codes: list[str] = []
    for _, code in sorted(found):
        if code != "?" and code not in codes:
            codes.append(code)
    return codes


def explain_job(error_code: str | None, error_message: str | None,
                lang: str = "es") -> list[Explanation]:
    """Everything the catalogue says about a job's (or a follow-up's) error.

    Args:
        error_code: the row's ``error_code`` (None when it has none).
        error_message: the row's ``error_message`` (None when it has none).
        lang: ``es`` (default) or ``en``.
    Returns:
        Our code's explanation first (when the catalogue has it), then one per DIAN rule that the
        code or the message names (:func:`find_dian_rules`) and the catalogue knows; [] when
        there is nothing to explain.
    Raises:
        ValueError: ``lang`` is not ``es`` or ``en``.
    """
    language = _language(lang)
    explained: list[Explanation] = []
    own = explain(error_code, language) if error_code else None
    if own is not None:
        explained.append(own)
    rules = find_dian_rules(error_code) + find_dian_rules(error_message)
    for rule in rules:
        found = explain(rule, language)
        if found is not None and found.kind == "dian" and found not in explained:
            explained.append(found)
    return explained


def language_of(accept_language: str | None) -> Language:
    """The catalogue language an HTTP ``Accept-Language`` header asks for.

    Input: the header (``"en-US,en;q=0.9"``) or None. Output: the supported language (``es``,
    ``en``) with the highest weight, Spanish when the header names neither (RFC 9110 §12.5.4;
    a weight of 0 refuses a language).
    """
    best: tuple[float, int, Language] | None = None
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().split("-", 1)[0].casefold()
        if primary not in LANGUAGES:
            continue
        weight = 1.0
        match = re.search(r"q\s*=\s*([0-9.]+)", params)
        if match:
            try:
                weight = float(match.group(1))
            except ValueError:
                weight = 0.0
        if weight <= 0:
            continue
        candidate = (-weight, position, _language(primary))
        if best is None or candidate < best:
            best = candidate
    return best[2] if best is not None else "es"


#: Labels of :func:`render_lines`, per language.
_LABELS: dict[str, dict[str, str]] = {
    "es": {"title": "Explicación", "fix": "Qué hacer", "erp_field": "Campo del ERP",
           "retryable": "Reintentar", "source": "Fuente",
           "yes": "sí (einvoice reintenta, o einvoice jobs retry)",
           "after_fix": "después de corregir (einvoice jobs retry)", "no": "no ayuda"},
    "en": {"title": "Explanation", "fix": "What to do", "erp_field": "ERP field",
           "retryable": "Retry", "source": "Source",
           "yes": "yes (einvoice retries, or einvoice jobs retry)",
           "after_fix": "after the fix (einvoice jobs retry)", "no": "does not help"},
}


def render_lines(explanations: list[Explanation], lang: str = "es") -> list[str]:
    """Plain-text lines for a terminal: a title, then per explanation its code and message,
    what to do, the ERP field, whether to retry and the source.

    Args:
        explanations: from :func:`explain_job` (any language; labels follow ``lang``).
        lang: ``es`` or ``en``.
    Returns:
        The lines (no markup); [] when ``explanations`` is empty.
    Raises:
        ValueError: ``lang`` is not ``es`` or ``en``.
    """
    labels = _LABELS[_language(lang)]
    if not explanations:
        return []
    lines = [f"{labels['title']}:"]
    for item in explanations:
        lines.append(f"  {item.code}: {item.message}")
        lines.append(f"    {labels['fix']}: {item.fix}")
        if item.erp_field:
            lines.append(f"    {labels['erp_field']}: {item.erp_field}")
        lines.append(f"    {labels['retryable']}: {labels[item.retryable]}")
        lines.append(f"    {labels['source']}: {item.source}")
    return lines


def markdown_table(kind: str) -> str:
    """The catalogue's rows of ``kind`` as the Markdown table of ``docs/dian-errors.md``.

    Columns: code, what it means (Spanish), ERP field, retry. ``|`` in a text is escaped.

    Raises:
        ValueError: ``kind`` is not ``einvoice`` or ``dian``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(KINDS)}")

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| code | qué significa | campo del ERP | reintentar |", "|---|---|---|---|"]
    lines += [f"| `{e.code}` | {cell(e.message_es)} | {f'`{e.erp_field}`' if e.erp_field else ''} "
              f"| {e.retryable} |" for e in entries() if e.kind == kind]
    return "\n".join(lines)
