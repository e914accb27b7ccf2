"""The README and docs/ stay inside the repository: no link points to another host (loopback addresses, where a
running stack answers, excepted), no text spells out such an address for a reader to follow, and every
relative link resolves to a file of this repository (a heading anchor, to a heading of that file).

The Markdown is parsed (markdown-it, CommonMark), so code blocks and code spans are not links: a command or an
example URL in backticks is shown, not followed. A code span that is a path up and out of the repository
(`../shared/...`) is a pointer a reader would follow, and is checked like a link."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LOOPBACK = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}
URL_IN_TEXT = re.compile(r"\b(?:https?|ftp)://[^\s)>\]]+|\bwww\.[a-z0-9-]+\.[a-z]", re.IGNORECASE)
HTML_LINK = re.compile(r"""\b(?:href|src)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)
MARKDOWN = MarkdownIt("commonmark")


def _tokens(tokens: list[Token]) -> Iterator[Token]:
    for token in tokens:
        yield token
        yield from _tokens(token.children or [])


def targets(text: str) -> Iterator[tuple[str, int]]:
    """Every link and image target, and every URL written out in prose, with its line number (1-based)."""
    line = 0
    for token in _tokens(MARKDOWN.parse(text)):
        line = token.map[0] + 1 if token.map else line
        if token.type in ("link_open", "image"):
            yield str(token.attrs.get("href") or token.attrs.get("src") or ""), line
        elif token.type in ("html_inline", "html_block"):
            for found in HTML_LINK.finditer(token.content):
                yield found.group(1), line
        elif token.type == "text":
            for found in URL_IN_TEXT.finditer(token.content):
                yield found.group(0), line
        elif token.type == "code_inline" and token.content.startswith("../"):
            yield token.content, line  # a path for the reader to open, written as code: it must be ours too


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    tokens = MARKDOWN.parse(text)
    return {_slug(tokens[i + 1].content) for i, t in enumerate(tokens) if t.type == "heading_open"}


def problem(doc: Path, target: str) -> str | None:
    """Why `target`, linked from `doc`, is not allowed, or None."""
    parts = urlsplit(target)
    if parts.scheme or target.startswith("//") or target.lower().startswith("www."):
        if parts.scheme in ("http", "https") and parts.hostname in LOOPBACK:
            return None
        return "points outside the repository"
    path, fragment = unquote(parts.path), unquote(parts.fragment)
    file = (doc.parent / path).resolve() if path else doc
    if not file.is_relative_to(ROOT):
        return "points outside the repository"
    if not file.exists():
        return f"{file.relative_to(ROOT)} does not exist"
    if fragment and file.suffix == ".md" and fragment not in anchors(file.read_text()):
        return f"{file.relative_to(ROOT)} has no heading #{fragment}"
    return None


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(ROOT)) for d in DOCS])
def test_links_stay_inside_the_repository_and_resolve(doc: Path) -> None:
    found = [
        f"{doc.relative_to(ROOT)}:{line}: {target}: {why}"
        for target, line in targets(doc.read_text())
        if (why := problem(doc, target))
    ]
    assert found == []


def test_the_docs_are_found() -> None:
    assert {"README.md", "api.md", "cli.md"} <= {d.name for d in DOCS}


@pytest.mark.parametrize(
    ("markdown", "bad"),
    [
        ("see [the site](https://example.com/x)", "https://example.com/x"),
        ("see <https://example.com>", "https://example.com"),
        ("go to https://example.com now", "https://example.com"),
        ("or www.example.com", "www.e"),
        ('<a href="http://example.org">x</a>', "http://example.org"),
        ("![logo](https://cdn.example.com/logo.png)", "https://cdn.example.com/logo.png"),
        ("[contract](../../shared/CONTRACT.md)", "../../shared/CONTRACT.md"),
        ("[missing](docs/nope.md)", "docs/nope.md"),
        ("[anchor](docs/cli.md#no-such-heading)", "docs/cli.md#no-such-heading"),
        ("[mail](mailto:someone@example.com)", "mailto:someone@example.com"),
        ("described in `../shared/CONTRACT.md`", "../shared/CONTRACT.md"),
    ],
)
def test_the_check_catches(markdown: str, bad: str) -> None:
    doc = ROOT / "README.md"
    caught = [target for target, _ in targets(markdown) if problem(doc, target)]
    assert caught and caught[0].startswith(bad)


@pytest.mark.parametrize(
    "markdown",
    [
        "[cli](docs/cli.md)",
        "[exit codes](docs/cli.md#exit-codes)",
        "[top](#asora)",
        "the API at http://127.0.0.1:8000/docs",
        "[local](http://localhost:5555)",
        "`https://example.com` in code",
        "```\ncurl https://example.com\n```",
    ],
)
def test_the_check_allows(markdown: str) -> None:
    doc = ROOT / "README.md"
    assert [target for target, _ in targets(markdown) if problem(doc, target)] == []
