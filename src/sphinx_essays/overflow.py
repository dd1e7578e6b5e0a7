"""Long lists on web pages: the first few, then a link to all of them.

At ten thousand essays a tag holds hundreds of essays and a glossary term is
used in thousands, so a page that lists them all weighs megabytes. On the
website (the ``html`` and ``dirhtml`` builders, which have a search page) a
generated list longer than ``essays_list_limit`` shows that many of its
newest items and ends with a row that says how many more there are:

* the topic, tag and date indexes (with furo, whose ``domainindex.html`` we
  override), and each ``essay-list``, link the rest on
  the search page, which lists every essay of a topic, a tag or a month
  without a query (``search.html?tag=...``, newest first);
* a glossary entry's "Used in" links a search for the term;
* the sources index says how many more sentences cite the source (each
  essay's own reference list names them all);
* the general index links a search for an entry with more places than that.

The PDF and the EPUB keep every list whole. A site under the limit is not
changed at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from sphinx.domains import IndexEntry

from sphinx_essays.search import builds_search

if TYPE_CHECKING:
    from sphinx.application import Sphinx
    from sphinx.builders import Builder

#: The generated indexes (their page names) and the search filter each
#: group's "more" row uses: the group's name is the filter's value.
FILTERS = {"essay-topics": "topic", "essay-tags": "tag", "essay-archive": "month"}
#: The sources index: its rows under each source are sentences, not essays.
SOURCES = "essay-sources"


def applies(builder: Builder) -> bool:
    """Whether *builder* writes web pages with a search page to link."""
    return builds_search(builder)


def limit(builder: Builder) -> int:
    return int(builder.config.essays_list_limit)


def search_href(builder: Builder, fromdoc: str, **query: str) -> str:
    """The search page's address from *fromdoc*, with *query* in it."""
    return builder.get_relative_uri(fromdoc, "search") + "?" + urlencode(query)


def more_text(count: int, noun: str = "essay") -> str:
    return f"and {count:,} more {noun}{'' if count == 1 else 's'}"


def _more_row(count: int, subtype: int, query: dict[str, str], noun: str) -> IndexEntry:
    """A row for our domainindex.html: an anchor that starts with ``?`` marks
    the rest of a list; with a page, it is the query of a link to it."""
    anchor = "?" + urlencode(query)
    return IndexEntry(
        more_text(count, noun), subtype, "search" if query else "", anchor, "", "", ""
    )


def cut_groups(
    content: list[tuple[str, list[IndexEntry]]], shown: int, name: str
) -> list[tuple[str, list[IndexEntry]]]:
    """*content* of the index page *name* with each list longer than *shown*
    cut to its newest *shown*, and a last row for the rest (see the module
    docstring for what it links)."""
    cut = []
    for group, entries in content:
        if name == SOURCES:
            cut.append((group, _cut_sentences(entries, shown)))
            continue
        heads = [e for e in entries if e.subtype == 1]
        items = [e for e in entries if e.subtype != 1]
        if len(items) > shown:
            # The newest (each row's extra is the essay's date), as the
            # search page lists the rest.
            subtype = items[0].subtype
            query = {FILTERS[name]: group}
            items = sorted(items, key=lambda e: e.extra, reverse=True)
            rest = _more_row(len(items) - shown, subtype, query, "essay")
            items = [*items[:shown], rest]
        cut.append((group, heads + items))
    return cut


def _cut_sentences(entries: list[IndexEntry], shown: int) -> list[IndexEntry]:
    """Each source's citing sentences (subtype 2 rows) cut after *shown*."""
    out: list[IndexEntry] = []
    under = 0
    hidden = 0

    def flush() -> None:
        if hidden:
            out.append(_more_row(hidden, 2, {}, "citing sentence"))

    for entry in entries:
        if entry.subtype != 2:
            flush()
            under = hidden = 0
            out.append(entry)
        elif under < shown:
            under += 1
            out.append(entry)
        else:
            hidden += 1
    flush()
    return out


def cut_general_index(
    entries: list[tuple[str, list[Any]]], shown: int, href: Any
) -> list[tuple[str, list[Any]]]:
    """Sphinx's ``genindexentries`` with each entry's links cut after *shown*.
    The last link left is ``({"more": text}, address)``: where Sphinx puts
    its "main" flag (``"main"`` or ``""``), a mapping, which our genindex.html
    shows as *text* linking ``href(entryname)``."""

    def cut(name: str, links: list[tuple[Any, str]]) -> list[tuple[Any, str]]:
        if len(links) <= shown:
            return links
        more = {"more": more_text(len(links) - shown, "place")}
        return [*links[:shown], (more, href(name))]

    out = []
    for key, group in entries:
        rows = []
        for name, (links, subitems, sort_key) in group:
            subitems = [(sub, cut(sub, sublinks)) for sub, sublinks in subitems]
            rows.append((name, [cut(name, links), subitems, sort_key]))
        out.append((key, rows))
    return out


def _cut_index_page(
    app: Sphinx,
    pagename: str,
    templatename: str,
    context: dict[str, Any],
    doctree: object,
) -> None:
    builder = app.builder
    theme = getattr(builder, "theme", None)
    if not applies(builder) or theme is None or theme.name != "furo":
        return  # only our templates know the "more" rows
    if templatename == "genindex.html" and "genindexentries" in context:
        context["genindexentries"] = cut_general_index(
            context["genindexentries"],
            limit(builder),
            lambda name: search_href(builder, pagename, q=name),
        )
    elif templatename == "domainindex.html" and (
        pagename in FILTERS or pagename == SOURCES
    ):
        context["content"] = cut_groups(context["content"], limit(builder), pagename)


def setup(app: Sphinx) -> None:
    app.connect("html-page-context", _cut_index_page)
