"""Long lists on web pages stop at ``essays_list_limit`` and link the rest."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from bs4 import BeautifulSoup

from sphinx_essays.overflow import cut_general_index, cut_groups
from sphinx_essays.search import INDEX_DIR

if TYPE_CHECKING:
    from sphinx.testing.util import SphinxTestApp

LIMIT_ONE = {"essays_list_limit": 1, "html_theme": "furo"}


def soup(app: SphinxTestApp, page: str) -> BeautifulSoup:
    return BeautifulSoup((app.outdir / page).read_text(), "html.parser")


def rows(app: SphinxTestApp, name: str) -> list[tuple[str, str]]:
    """Each row of an index page: its text, and the address of its link."""
    table = soup(app, f"essay-{name}.html").select_one(
        "table.domainindex-table, table.indextable"
    )
    assert table is not None
    found = []
    for row in table.select("tr"):
        text = " ".join(row.get_text().split())
        if text:
            link = row.find("a")
            found.append((text, str(link["href"]) if link else ""))
    return found


@pytest.mark.sphinx(
    "html", testroot="essays-site", freshenv=True, confoverrides=LIMIT_ONE
)
def test_indexes_show_the_newest_and_link_the_rest(app: SphinxTestApp) -> None:
    app.build()
    topics = rows(app, "topics")
    assert topics[:3] == [
        ("observability", ""),
        ("Essay Two (2026-02-20)", "essays/observability/two.html#essay-two"),
        ("and 2 more essays", "search.html?topic=observability"),
    ]
    tags = rows(app, "tags")
    tracing = tags.index(("tracing", ""))
    assert tags[tracing + 1 : tracing + 4] == [
        ("2 essays", ""),
        ("Essay Two (2026-02-20)", "essays/observability/two.html#essay-two"),
        ("and 1 more essay", "search.html?tag=tracing"),
    ]
    # A group at the limit is whole, with no "more" row.
    identity = tags.index(("identity", ""))
    assert tags[identity + 2][1] == "essays/security/six.html#essay-six"
    assert not tags[identity + 3][0].startswith("and ")
    archive = rows(app, "archive")
    assert archive[:3] == [
        ("2026-03", ""),
        ("Essay Four (2026-03-01)", "essays/security/four.html#essay-four"),
        ("and 1 more essay", "search.html?month=2026-03"),
    ]


@pytest.mark.sphinx(
    "html", testroot="essays-site", freshenv=True, confoverrides=LIMIT_ONE
)
def test_used_in_and_essay_lists_link_the_rest(app: SphinxTestApp) -> None:
    app.build()
    glossary = soup(app, "glossary.html")
    used = [
        " ".join(p.get_text().split()) for p in glossary.select(".glossary-used-in")
    ]
    assert used == [
        "Used in, newest first: Essay Two, and 1 more essay",
        "Used in: Essay One",
    ]
    more = glossary.select_one(".glossary-used-in a.essays-more")
    assert more is not None and more["href"] == "search.html?q=Alpha"
    topic = soup(app, "essays/observability/index.html")
    cards = [a.get_text() for a in topic.select(".essay-list .sd-card-title a")]
    assert cards == ["Essay Two"]  # the newest, though the list sorts by title
    rest = topic.select_one("p.essays-more a")
    assert rest is not None
    assert rest.get_text() == "and 2 more essays"
    assert rest["href"] == "../../search.html?topic=observability"


@pytest.mark.sphinx(
    "html", testroot="essays-site", freshenv=True, confoverrides={"html_theme": "furo"}
)
def test_under_the_limit_nothing_is_cut(app: SphinxTestApp) -> None:
    for name in ("one", "two"):
        essay = app.srcdir / "essays" / "observability" / f"{name}.md"
        essay.write_text(essay.read_text() + "\nIt is about {index}`Gamma`.\n")
    app.build()
    gamma = next(
        li for li in soup(app, "genindex.html").select("li") if "Gamma" in li.text
    )
    assert [a.get_text() for a in gamma.select("a")] == ["Gamma", "[1]"]
    for name in ("topics", "tags", "archive"):
        assert not [text for text, _ in rows(app, name) if text.startswith("and ")]
    for page in ("glossary.html", "genindex.html"):
        assert not soup(app, page).select(".essays-more")
    topic = soup(app, "essays/observability/index.html")
    assert len(topic.select(".essay-list .sd-card-title a")) == 3
    assert not topic.select(".essays-more")


@pytest.mark.sphinx(
    "latex", testroot="essays-site", freshenv=True, confoverrides=LIMIT_ONE
)
def test_the_book_keeps_every_list_whole(app: SphinxTestApp) -> None:
    app.build()
    tex = (app.outdir / "testessays.tex").read_text()
    assert "more essay" not in tex
    for title in ("Essay One", "Essay Two", "Essay Three"):
        assert rf"{{\DUrole{{doc}}{{{title}}}}}" in tex


@pytest.mark.sphinx(
    "epub", testroot="essays-site", freshenv=True, confoverrides=LIMIT_ONE
)
def test_the_epub_keeps_every_list_whole(app: SphinxTestApp) -> None:
    app.build()
    text = " ".join(
        (app.outdir / page).read_text()
        for page in ("glossary.xhtml", "essay-tags.xhtml")
    )
    assert "more essay" not in text
    assert "Essay One" in text and "Essay Two" in text


@pytest.mark.sphinx("html", testroot="essays-site", freshenv=True)
def test_the_search_page_can_list_a_month_newest_first(app: SphinxTestApp) -> None:
    app.build()
    facets = json.loads((app.outdir / INDEX_DIR / "facets.json").read_text())
    blocks = json.loads((app.outdir / INDEX_DIR / "i" / "0.json").read_text())
    titles = [blocks[item][1] for item in facets["newest"]]
    assert titles == [
        "Essay Four",
        "Essay Six",
        "Essay Two",
        "Essay Three",
        "Essay One",
        "Essay Five",
    ]
    march = facets["month_names"].index("2026-03")
    assert [blocks[i][1] for i, m in enumerate(facets["months"]) if m == march] == [
        "Essay Four",
        "Essay Six",
    ]
    # Glossary terms are items too, from no month.
    assert facets["months"][-1] == -1 and len(facets["months"]) == len(blocks)


def test_sentences_under_a_source_are_cut_per_source() -> None:
    from sphinx.domains import IndexEntry

    def row(name: str, subtype: int) -> IndexEntry:
        return IndexEntry(name, subtype, "doc", "", "", "", "")

    content = [
        (
            "Papers",
            [
                row("Source A", 1),
                *(row(f"A{n}", 2) for n in range(4)),
                row("Source B", 1),
                row("B0", 2),
                row("Source C", 0),
            ],
        )
    ]
    [(kind, cut)] = cut_groups(content, 2, "essay-sources")
    assert kind == "Papers"
    assert [(e.name, e.subtype, e.docname, e.anchor) for e in cut] == [
        ("Source A", 1, "doc", ""),
        ("A0", 2, "doc", ""),
        ("A1", 2, "doc", ""),
        ("and 2 more citing sentences", 2, "", "?"),
        ("Source B", 1, "doc", ""),
        ("B0", 2, "doc", ""),
        ("Source C", 0, "doc", ""),
    ]


@pytest.mark.sphinx(
    "html", testroot="essays-site", freshenv=True, confoverrides=LIMIT_ONE
)
def test_the_general_index_links_a_search_for_a_long_entry(
    app: SphinxTestApp,
) -> None:
    for name in ("one", "two"):
        essay = app.srcdir / "essays" / "observability" / f"{name}.md"
        essay.write_text(essay.read_text() + "\nIt is about {index}`Gamma`.\n")
    app.build()
    page = soup(app, "genindex.html")
    entry = next(li for li in page.select("li") if li.get_text().startswith("Gamma"))
    links = [(a.get_text(), a["href"]) for a in entry.select("a")]
    assert links[0][1].startswith("essays/observability/one.html#index-")
    assert links[1:] == [("and 1 more place", "search.html?q=Gamma")]


def test_general_index_entries_are_cut_with_their_subentries() -> None:
    entries = [
        (
            "G",
            [
                (
                    "Gamma",
                    [
                        [("", "a.html#1"), ("main", "b.html#2"), ("", "c.html#3")],
                        [("delta", [("", "a.html#4"), ("", "b.html#5")])],
                        None,
                    ],
                )
            ],
        )
    ]
    [(key, [(name, (links, subitems, _))])] = cut_general_index(
        entries, 1, lambda name: f"search.html?q={name}"
    )
    assert (key, name) == ("G", "Gamma")
    assert links == [
        ("", "a.html#1"),
        ({"more": "and 2 more places"}, "search.html?q=Gamma"),
    ]
    assert subitems == [
        (
            "delta",
            [("", "a.html#4"), ({"more": "and 1 more place"}, "search.html?q=delta")],
        )
    ]
    # The input is left as it was: the builder may write it again.
    assert len(entries[0][1][0][1][0]) == 3
