"""The README is a user's guide: no line over 100 characters, and every docs/ page it links
to exists (the reference material lives there)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_no_readme_line_is_over_100_characters() -> None:
    assert [n for n, line in enumerate(README.splitlines(), 1) if len(line) > 100] == []


def test_every_docs_link_resolves() -> None:
    links = re.findall(r"\]\((docs/[^)#]+)", README)
    assert len(links) >= 6
    assert [link for link in links if not (ROOT / link).is_file()] == []


def test_no_diary_in_the_readme() -> None:
    """Measurements belong in commit messages and the benchmarks' output."""
    assert re.findall(r"On 2026-\d\d-\d\d|(?:first|second|third|fourth) session|earlier "
                      r"sessions", README) == []
