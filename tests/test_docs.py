"""The documentation: README.md stays short, links every docs/ page, and no relative link or image in README.md
and docs/**/*.md is broken (the file exists, and an #anchor into a .md file names one of its headings)."""

import re
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MARKDOWN = [README, *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")  # the target of [text](target) and ![alt](target)
EXTERNAL = ("http://", "https://", "mailto:")


def prose_lines(path: Path) -> list[str]:
    """The file's lines outside fenced code blocks (where '#' starts a comment, not a heading)."""
    lines, fenced = [], False
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def github_anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lowercase, punctuation dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading's anchor in a markdown file; a repeated heading gets -1, -2, ... as on GitHub."""
    found, seen = set(), {}
    for line in prose_lines(path):
        if match := re.match(r"#{1,6} +(.*?) *#* *$", line):
            anchor = github_anchor(match.group(1))
            found.add(f"{anchor}-{seen[anchor]}" if anchor in seen else anchor)
            seen[anchor] = seen.get(anchor, 0) + 1
    return found


def relative_links(path: Path) -> list[str]:
    return [t for line in prose_lines(path) for t in LINK.findall(line) if not t.startswith(EXTERNAL)]


def test_readme_is_at_most_250_lines():
    assert len(README.read_text().splitlines()) <= 250


def test_readme_links_every_docs_page():
    linked = {(README.parent / target.split("#")[0]).resolve() for target in relative_links(README)}
    pages = sorted((ROOT / "docs").glob("*.md"))
    assert pages, "no docs/*.md page"
    assert [p.name for p in pages if p.resolve() not in linked] == []


def test_no_broken_relative_link():
    broken = []
    for path in MARKDOWN:
        for target in relative_links(path):
            file, _, anchor = unquote(target).partition("#")
            dest = (path.parent / file).resolve() if file else path
            where = f"{path.relative_to(ROOT)}: {target}"
            if not dest.exists():
                broken.append(f"{where} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{where} (no heading with that anchor)")
    assert broken == []
