"""The console's languages, parsed from its files: every text a template shows is a ``_()``
call, every such message is translated in each catalogue with the same placeholders, and the
catalogues hold nothing stale. Also the vendored htmx: the file its notes describe."""

from __future__ import annotations

import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po

from einvoice.console import STATIC_FILES, i18n

CONSOLE = Path(i18n.__file__).resolve().parent
TEMPLATES = CONSOLE / "templates"
#: Placeholders of newstyle gettext: %(name)s.
PLACEHOLDER = re.compile(r"%\((\w+)\)s")
#: Text a page may show outside ``_()``: punctuation, arrows, numbers, and names that are the
#: same in every language (codes, products, protocols).
UNTRANSLATED = re.compile(
    r"^(?:[\s·→←—…:/().,%@\-|0-9]|CUFE|CUDE|URL|sha256|B|sandbox|production|v1|v2)*$")


def _extracted() -> dict[str, list[str]]:
    """msgid -> where it is used, as the catalogue tooling extracts them."""
    keywords = dict(DEFAULT_KEYWORDS)
    keywords["_gettext"] = (2,)
    found: dict[str, list[str]] = {}
    for file, line, message, _comments, _context in extract_from_dir(
            str(CONSOLE), method_map=[("templates/**.html", "jinja2"), ("**.py", "python")],
            keywords=keywords, options_map={"templates/**.html": {
                "extensions": "jinja2.ext.i18n", "trim_blocks": "true",
                "lstrip_blocks": "true"}}):
        if isinstance(message, str):
            found.setdefault(message, []).append(f"{file}:{line}")
    return found


def _catalogue(lang: str) -> dict[str, str]:
    with i18n.catalogue_path(lang).open("rb") as source:
        return {m.id: m.string for m in read_po(source) if m.id and isinstance(m.id, str)}


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
def test_every_message_of_the_pages_is_translated_with_its_placeholders(lang: str) -> None:
    # Given the messages the templates and the console's code ask for, and a catalogue
    wanted = _extracted()
    catalogue = _catalogue(lang)

    # Then each has a translation that keeps its placeholders, and none is left over
    missing = sorted(set(wanted) - {k for k, v in catalogue.items() if v})
    stale = sorted(set(catalogue) - set(wanted))
    wrong = sorted(k for k, v in catalogue.items() if v and
                   sorted(PLACEHOLDER.findall(k)) != sorted(PLACEHOLDER.findall(v)))
    assert not missing, f"{lang}: untranslated: {missing[:10]}"
    assert not stale, f"{lang}: no longer used: {stale[:10]}"
    assert not wrong, f"{lang}: placeholders differ: {wrong[:10]}"
    assert len(wanted) > 200


def test_spanish_is_the_default_and_really_spanish() -> None:
    spanish = i18n.translations("es")

    assert i18n.DEFAULT_LANGUAGE == "es"
    assert i18n.pick_language(None, None) == "es"
    assert i18n.pick_language("en", "es") == "en"
    assert i18n.pick_language("fr", "en") == "en"
    assert spanish.gettext("Jobs") == "Trabajos"
    assert spanish.gettext("Retry") == "Reintentar"


class _Text(HTMLParser):
    """Collects the text nodes of a template with its Jinja parts removed."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.texts.append(data.strip())


def test_templates_show_no_text_outside_the_catalogue() -> None:
    # Given every template with its Jinja expressions, statements and comments taken out
    literal: list[str] = []
    for template in sorted(TEMPLATES.glob("*.html")):
        source = re.sub(r"\{#.*?#\}", "", template.read_text(), flags=re.S)
        source = re.sub(r"\{\{.*?\}\}|\{%.*?%\}", " ", source, flags=re.S)
        parser = _Text()
        parser.feed(source)
        literal += [f"{template.name}: {text!r}" for text in parser.texts
                    if not UNTRANSLATED.match(text)]
    # Then no text node is left that a translation would miss
    assert not literal, literal


def test_the_vendored_htmx_is_the_file_its_notes_describe() -> None:
    notes = (CONSOLE / "static" / "htmx.SOURCE.md").read_text()
    script = (CONSOLE / "static" / "htmx.min.js").read_bytes()

    assert hashlib.sha256(script).hexdigest() in notes
    assert re.search(rb'version:"2\.\d+\.\d+"', script)
    assert "Zero-Clause BSD" in (CONSOLE / "static" / "htmx.LICENSE.txt").read_text()
    assert all((CONSOLE / "static" / name).is_file() for name in STATIC_FILES)
