"""The documentation stays a house a newcomer can live in.

README.md is for a newcomer and stays under 10 KB; every relative link in it and in docs/ leads to
a file of the repository; nothing points outside the repository, to work sessions or to issue
numbers; and the mkdocs site builds with ``--strict`` (a broken link or anchor fails it).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README_MAX_BYTES = 10_240

# [text](target) and ![alt](target); the target ends at the first blank or closing parenthesis.
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
# "session" in prose means a work session; a SQLAlchemy (database) session is named as such.
_FORBIDDEN = {
    "a work session": re.compile(r"(?<!sqlalchemy )(?<!database )\bsessions?\b", re.IGNORECASE),
    "an issue number": re.compile(r"\bissues? #?[0-9]+", re.IGNORECASE),
    "a path outside the repository": re.compile(r"\.\./shared\b"),
}


def documentation_files() -> list[Path]:
    """README.md, CHANGELOG.md and every Markdown page under docs/."""
    return [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]


def prose(text: str) -> str:
    """The text without fenced code blocks and inline code (code may name a ``session``)."""
    return _INLINE_CODE.sub("", _FENCE.sub("", text))


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """Relative link targets of ``path`` that are not files or folders inside ``root``."""
    broken = []
    for target in _LINK.findall(_FENCE.sub("", path.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or target.startswith("#"):
            continue  # https:, mailto:, or an anchor in the same page
        resolved = (path.parent / target.split("#", 1)[0]).resolve()
        if not resolved.is_relative_to(root) or not resolved.exists():
            broken.append(target)
    return broken


def test_readme_fits_in_10_kb_and_starts_with_the_two_commands() -> None:
    # Given the README a newcomer opens first
    readme = ROOT / "README.md"
    # Then it is at most 10 KB, and its first lines are the demo and test commands CI relies on
    size = readme.stat().st_size
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; the limit is {README_MAX_BYTES}"
    head = readme.read_text(encoding="utf-8").splitlines()[:8]
    assert any(line.startswith("make demo") for line in head), head
    assert any(line.startswith("make test") for line in head), head


def test_every_relative_link_leads_to_a_file_of_the_repository() -> None:
    # Given the README and every page of docs/
    files = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    assert len(files) > 5, "docs/ has lost its pages"
    # Then no relative link points to a missing file or out of the repository
    broken = {str(f.relative_to(ROOT)): broken_links(f) for f in files}
    assert {name: links for name, links in broken.items() if links} == {}


def test_the_link_checker_catches_a_missing_file_and_one_outside(tmp_path: Path) -> None:
    # Given a small repository whose page links to itself, a missing page and a file outside
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    (tmp_path / "outside.md").write_text("# outside\n", encoding="utf-8")
    page = root / "docs" / "index.md"
    page.write_text("[me](index.md#top) [web](https://example.org) [gone](no-such-page.md) "
                    "[out](../../outside.md)\n```\n[in code](ignored.md)\n```\n",
                    encoding="utf-8")
    # Then the checker reports the missing page and the one outside, nothing else
    assert broken_links(page, root) == ["no-such-page.md", "../../outside.md"]


def test_no_page_mentions_work_sessions_issue_numbers_or_outside_files() -> None:
    # Given the README, the changelog and the docs, read as prose
    found = []
    for path in documentation_files():
        text = prose(path.read_text(encoding="utf-8"))
        for what, pattern in _FORBIDDEN.items():
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{path.relative_to(ROOT)}:{line}: {what}: {match.group(0)!r}")
    # Then none of them refers to a work session, an issue number or ../shared
    assert found == []


def test_the_site_builds_with_strict_mkdocs(tmp_path: Path) -> None:
    # Given mkdocs.yml and docs/ (mkdocs-material comes with the dev extra)
    # When the site is built the way `make docs` builds it
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    # Then it succeeds and every page of the nav is there
    assert result.returncode == 0, result.stderr[-3000:]
    for page in ("architecture", "erp-contract", "operations", "configuration", "factus",
                 "simulator", "reference-data", "benchmarks"):
        assert (tmp_path / "site" / page / "index.html").is_file(), page
