"""Long index pages on the website, cut into pages a phone can load.

The sources index lists every source with the sentences that cite it, and
the tag index every tag with its essays; on one page they outgrow what a
reader should download (the real site's sources index alone was 574 KB).
On the website (the builders :mod:`.overflow` applies to) a generated index
whose rows would weigh more than ``essays_index_page_kb`` is written as
several pages: the first under the index's own name (``essay-sources``),
the rest as ``essay-sources-2``, ``essay-sources-3``, ... Each page says
which page it is, links every other page by the first and last name it
holds, and its jump box links each group (a kind, a tag) on the page where
the group starts. A group cut across pages repeats its heading, marked
"continued". A row is never parted from the rows under it: a source stays
with its citing sentences.

Rows are weighed before they are written, by their text and the markup
:file:`domainindex.html` puts around each (:data:`ROW_MARKUP`), so the cut is
the same in every build: serial, parallel, incremental or fresh. The PDF
and the EPUB keep each index whole.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sphinx.domains import IndexEntry

from sphinx_essays import overflow

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sphinx.application import Sphinx
    from sphinx.builders import Builder

    Content = list[tuple[str, list[IndexEntry]]]

#: The indexes that may be cut into pages, by page name.
PAGED = ("essay-sources", "essay-tags", "essay-topics", "essay-archive")
#: What :file:`domainindex.html` writes around a row besides its text, in
#: bytes: the row, its cells, the link and its class, with a relative URL.
ROW_MARKUP = 120


def weight(entry: IndexEntry) -> int:
    """About how many bytes *entry* adds to the page."""
    return (
        ROW_MARKUP
        + len(entry.name)
        + len(entry.docname) * 2
        + len(entry.anchor)
        + len(entry.extra)
        + len(entry.qualifier)
        + len(entry.descr)
    )


def _units(entries: list[IndexEntry]) -> Iterator[list[IndexEntry]]:
    """*entries* as units that stay on one page: a row with the sub-rows
    (subtype 2) under it."""
    unit: list[IndexEntry] = []
    for entry in entries:
        if entry.subtype != 2 and unit:
            yield unit
            unit = []
        unit.append(entry)
    if unit:
        yield unit


@dataclass(frozen=True)
class Page:
    """One page of an index: its page name and its groups."""

    pagename: str
    content: Content

    def label(self) -> str:
        """Which groups the page holds and the name it starts at, such as
        ``Specifications to Papers, from "KEP-3015: PreferSameZone and…"``."""
        groups = [group for group, _entries in self.content]
        span = groups[0] if len(groups) == 1 else f"{groups[0]} to {groups[-1]}"
        first = self.content[0][1][0].name.split()
        start = " ".join(first[:5]) + ("…" if len(first) > 5 else "")
        return f"{span}, from “{start}”"


def cut(content: Content, name: str, budget: int) -> list[Page]:
    """*content* of the index page *name* as pages of at most *budget* bytes
    of rows each; a unit heavier than the budget has a page of its own."""
    pages: list[Content] = [[]]
    used = 0
    for group, entries in content:
        for unit in _units(entries):
            size = sum(weight(entry) for entry in unit)
            if used and used + size > budget:
                pages.append([])
                used = 0
            current = pages[-1]
            if not current or current[-1][0] != group:
                current.append((group, []))
            current[-1][1].extend(unit)
            used += size
    return [
        Page(name if number == 0 else f"{name}-{number + 1}", groups)
        for number, groups in enumerate(pages)
    ]


def context(pages: list[Page], number: int, title: str) -> dict[str, Any]:
    """What :file:`domainindex.html` needs for page *number* (from 0)."""
    starts: dict[str, str] = {}
    for page in pages:
        for group, _entries in page.content:
            starts.setdefault(group, page.pagename)
    page = pages[number]
    continued = {
        group for group, _entries in page.content if starts[group] != page.pagename
    }
    return {
        "indextitle": title,
        "content": page.content,
        "collapse_index": False,
        "index_pages": [
            (other.pagename, other.label(), other is page) for other in pages
        ],
        "index_groups": list(starts.items()),
        "index_continued": continued,
    }


def budget(builder: Builder) -> int:
    return int(builder.config.essays_index_page_kb) * 1000


def applies(builder: Builder) -> bool:
    """Whether *builder* writes our :file:`domainindex.html`: a website's,
    with furo (see :mod:`.overflow`)."""
    theme = getattr(builder, "theme", None)
    return overflow.applies(builder) and theme is not None and theme.name == "furo"


def _first_page(
    app: Sphinx,
    pagename: str,
    templatename: str,
    ctx: dict[str, Any],
    doctree: object,
) -> None:
    """The index's own page: its first page, and the links to the others."""
    if templatename != "domainindex.html" or pagename not in PAGED:
        return
    if not applies(app.builder) or "content" not in ctx:
        return
    pages = cut(ctx["content"], pagename, budget(app.builder))
    if len(pages) > 1:
        ctx.update(context(pages, 0, ctx["indextitle"]))


def _other_pages(app: Sphinx) -> Iterator[tuple[str, dict[str, Any], str]]:
    """The pages after the first of each index that needs more than one."""
    builder = app.builder
    if not applies(builder):
        return
    # What the builder wrote as each index's first page, before overflow
    # cut its lists (as it does here) for the page.
    for name, index_cls, content, _collapse in getattr(builder, "domain_indices", []):
        if name not in PAGED:
            continue
        shown = overflow.cut_groups(content, overflow.limit(builder), name)
        pages = cut(shown, name, budget(builder))
        for number in range(1, len(pages)):
            title = f"{index_cls.localname}, page {number + 1} of {len(pages)}"
            ctx = context(pages, number, title)
            yield pages[number].pagename, ctx, "domainindex.html"
        _remove_pages_after(builder, name, len(pages))


def _remove_pages_after(builder: Builder, name: str, count: int) -> None:
    """Delete the pages an earlier build wrote past the *count* this one
    writes, so an incremental build leaves what a fresh one does."""
    number = count + 1
    while True:
        page = Path(builder.get_outfilename(f"{name}-{number}"))  # type: ignore[attr-defined]
        if not page.exists():
            return
        page.unlink()
        if page.name == "index.html":  # dirhtml: essay-sources-3/index.html
            with contextlib.suppress(OSError):
                page.parent.rmdir()
        number += 1


def setup(app: Sphinx) -> None:
    # After overflow cut each list (priority 500): weigh what is shown.
    app.connect("html-page-context", _first_page, priority=600)
    app.connect("html-collect-pages", _other_pages)
