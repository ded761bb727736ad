"""Screenshots of the operator console, page by page, in a real browser (Debian's chromium).

:func:`capture` signs in to a running console with the given account and writes one PNG per
page into a folder: sign-in, overview, job table, rejected jobs, a rejected job's page (the
first listed), its retry confirmation, and, for an admin, the configuration pages. It changes
nothing (no form is submitted but the sign-in). ``make demo`` calls it on the demo's console;
``tests/integration/console/test_console_browser.py`` uses its helpers.

Playwright drives the system's chromium (``apt-get install chromium``): no browser is
downloaded (``executable_path``), so ``playwright install`` is never needed.

Usage::

    CONSOLE_PASSWORD=... .venv/bin/python scripts/console_screenshots.py \\
        --base-url http://127.0.0.1:8000 --username admin --out docs/img/console [--lang en]

Prints the written files, one a line; exit status 0, or 1 when chromium or Playwright is
missing or sign-in failed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: The browser window: a laptop screen.
VIEWPORT = {"width": 1366, "height": 900}
#: Pages every role sees: (file stem, path under the base URL).
PAGES = (
    ("01-overview", "/console/overview"),
    ("02-jobs", "/console/jobs"),
    ("03-jobs-rejected", "/console/jobs?status=rejected"),
)
#: Pages only an admin sees.
ADMIN_PAGES = (
    ("20-config-accounts", "/console/config/accounts"),
    ("21-config-ranges", "/console/config/ranges"),
    ("22-config-webhooks", "/console/config/webhooks"),
    ("23-config-api-keys", "/console/config/api-keys"),
)


def find_chromium() -> str | None:
    """The system's chromium (Debian's ``chromium``), or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@contextmanager
def chromium_browser() -> Iterator[Any]:
    """A headless chromium driven by Playwright (the system's binary, no download).

    Raises:
        RuntimeError: no chromium on this machine.
        ModuleNotFoundError: Playwright not installed (the ``dev`` extra).
    """
    from playwright.sync_api import sync_playwright

    executable = find_chromium()
    if executable is None:
        raise RuntimeError("chromium is not installed (apt-get install chromium)")
    with sync_playwright() as playwright:
        # --no-sandbox: the tests and the demo run as root in a container.
        browser = playwright.chromium.launch(executable_path=executable, headless=True,
                                             args=["--no-sandbox", "--disable-gpu"])
        try:
            yield browser
        finally:
            browser.close()


def sign_in(page: Any, base_url: str, username: str, password: str) -> None:
    """Sign in through the form; raises ``RuntimeError`` when the console refuses."""
    page.goto(f"{base_url}/console/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")
    if "/console/login" in page.url:
        raise RuntimeError(f"sign-in refused for {username!r}")


def _shot(page: Any, out_dir: Path, stem: str) -> Path:
    path = out_dir / f"{stem}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def capture(base_url: str, username: str, password: str, out_dir: Path, *,
            lang: str = "es", browser: Any = None) -> list[Path]:
    """Write a PNG of each console page into ``out_dir`` (created when missing).

    Args:
        base_url: the API's root (``http://127.0.0.1:8000``); the console is under ``/console``.
        username / password: a console account (an admin gets the configuration pages too).
        lang: ``es`` or ``en``.
        browser: a Playwright browser to use (default: a new headless chromium).
    Returns:
        The files written, in page order.
    Raises:
        RuntimeError: no chromium, or sign-in refused.
    """
    if browser is None:
        with chromium_browser() as own:
            return capture(base_url, username, password, out_dir, lang=lang, browser=own)
    out_dir.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport=VIEWPORT, locale="es-CO" if lang == "es" else "en-US")
    page = context.new_page()
    written: list[Path] = []
    try:
        page.goto(f"{base_url}/console/login?lang={lang}")
        written.append(_shot(page, out_dir, "00-sign-in"))
        sign_in(page, base_url, username, password)
        for stem, path in PAGES:
            page.goto(base_url + path)
            written.append(_shot(page, out_dir, stem))
        link = page.query_selector("#jobs tbody tr[data-job] a")
        if link is not None:
            link.click()
            page.wait_for_load_state("networkidle")
            written.append(_shot(page, out_dir, "04-job"))
            retry = page.query_selector("#action-retry")
            if retry is not None:
                retry.click()
                page.wait_for_load_state("networkidle")
                written.append(_shot(page, out_dir, "05-confirm-retry"))
        if page.query_selector("a[href$='/console/config/accounts']") is not None:
            for stem, path in ADMIN_PAGES:
                page.goto(base_url + path)
                written.append(_shot(page, out_dir, stem))
    finally:
        context.close()
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--username", required=True)
    parser.add_argument("--out", type=Path, default=Path(".einvoice/console-screenshots"))
    parser.add_argument("--lang", choices=("es", "en"), default="es")
    args = parser.parse_args(argv)
    password = os.environ.get("CONSOLE_PASSWORD") or sys.stdin.readline().rstrip("\r\n")
    try:
        files = capture(re.sub(r"/+$", "", args.base_url), args.username, password, args.out,
                        lang=args.lang)
    except (RuntimeError, ModuleNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in files:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
