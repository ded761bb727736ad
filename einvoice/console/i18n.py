"""Languages of the console: Spanish by default, English available, one gettext catalogue each.

The catalogues are ``locale/<lang>/LC_MESSAGES/messages.po`` beside this module; they are
compiled in memory (Babel) the first time a language is used in the process, so no compiled
``.mo`` file is shipped or can go stale. Message ids are English; ``en``'s catalogue repeats
them. Every text a page shows is a ``_()`` call in a template (Jinja2's i18n extension,
"newstyle" gettext: ``_("%(n)s jobs", n=5)``, arguments escaped).

The language of a request: ``?lang=xx`` (which also sets the ``einvoice_console_lang`` cookie),
else that cookie, else :data:`DEFAULT_LANGUAGE`. Times are shown in Bogotá time, amounts in COP.
"""

from __future__ import annotations

import gettext
import io
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal

#: Languages offered, the default first.
LANGUAGES = ("es", "en")
DEFAULT_LANGUAGE = "es"
#: Babel locale per language (amounts and numbers as a Colombian reads them in Spanish).
LOCALES = {"es": "es_CO", "en": "en_US"}
LANGUAGE_COOKIE = "einvoice_console_lang"
HERE = Path(__file__).resolve().parent
LOCALE_DIR = HERE / "locale"
TEMPLATE_DIR = HERE / "templates"
BOGOTA = ZoneInfo("America/Bogota")


def catalogue_path(lang: str) -> Path:
    """The ``.po`` file of ``lang``."""
    return LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"


@cache
def translations(lang: str) -> gettext.GNUTranslations:
    """The compiled catalogue of ``lang`` (one of :data:`LANGUAGES`), built once per process.

    Raises:
        KeyError: ``lang`` is not offered.
    """
    if lang not in LANGUAGES:
        raise KeyError(lang)
    with catalogue_path(lang).open("rb") as source:
        catalog = read_po(source, locale=LOCALES[lang])
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def pick_language(query_value: str | None, cookie_value: str | None) -> str:
    """The request's language: the query's, else the cookie's, else the default."""
    for value in (query_value, cookie_value):
        if value in LANGUAGES:
            return value
    return DEFAULT_LANGUAGE


def _when(value: datetime | None, with_seconds: bool = False) -> str:
    if value is None:
        return ""
    local = value.astimezone(BOGOTA)
    return local.strftime("%Y-%m-%d %H:%M:%S" if with_seconds else "%Y-%m-%d %H:%M")


def _day(value: date | None) -> str:
    return value.isoformat() if value is not None else ""


def _age(seconds: float | None) -> str:
    """A duration for people: ``45 s``, ``12 min``, ``3 h 05 min``, ``2 d 4 h``."""
    if seconds is None:
        return "—"
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
    return f"{whole // 86400} d {whole % 86400 // 3600} h"


@cache
def environment(lang: str) -> jinja2.Environment:
    """The templates in ``lang``: autoescaped, strict about undefined names, with the
    catalogue installed and the filters ``money`` (COP), ``number``, ``when`` (Bogotá time),
    ``day`` and ``age``."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True, lstrip_blocks=True,
    )
    env.install_gettext_translations(translations(lang), newstyle=True)  # type: ignore[attr-defined]
    locale = LOCALES[lang]

    def money(value: Decimal | None, currency: str | None = "COP") -> str:
        if value is None:
            return "—"
        return format_currency(value, (currency or "COP").strip() or "COP", locale=locale)

    def number(value: Any) -> str:
        return "—" if value is None else format_decimal(value, locale=locale)

    env.filters.update(money=money, number=number, when=_when, day=_day, age=_age)
    env.globals.update(lang=lang, languages=LANGUAGES)
    return env


def render(lang: str, template: str, **context: Any) -> str:
    """Render ``template`` in ``lang`` with ``context``."""
    return environment(lang).get_template(template).render(**context)
