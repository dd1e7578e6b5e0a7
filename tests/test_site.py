"""The real site, built once with -nW: every essay, its summary, its links."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import urldefrag

import pytest
from bs4 import BeautifulSoup

from conftest import ESSAYS, Site, archive_titles

if TYPE_CHECKING:
    from conftest import Essay


def soup(path: object) -> BeautifulSoup:
    from pathlib import Path

    assert isinstance(path, Path)
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def test_archive_has_eight_titles() -> None:
    assert len(archive_titles()) == 8


@pytest.mark.parametrize("essay", ESSAYS, ids=lambda e: e.docname)
def test_essay_page_shows_title_and_summary(site: Site, essay: Essay) -> None:
    page = soup(site.html / f"{essay.docname}.html")
    h1 = page.find("h1")
    assert h1 is not None
    assert h1.get_text().rstrip("#¶ ").strip() == essay.title
    summary = page.select_one(".essay-header .essay-summary")
    assert summary is not None
    expected = " ".join(str(essay.front.values["summary"]).split())
    assert summary.get_text() == expected


@pytest.mark.parametrize("essay", ESSAYS, ids=lambda e: e.docname)
def test_glossary_links_resolve(site: Site, essay: Essay) -> None:
    page = soup(site.html / f"{essay.docname}.html")
    glossary = soup(site.html / "glossary.html")
    term_ids = {dt["id"] for dt in glossary.select("dl.glossary dt[id]")}
    links = [
        a["href"]
        for a in page.select("article a.reference.internal[href]")
        if urldefrag(str(a["href"])).url.endswith("glossary.html")
    ]
    assert len(links) >= 10, f"only {len(links)} glossary links"
    missing = {h for h in links if urldefrag(str(h)).fragment not in term_ids}
    assert not missing


def index_terms(source: str) -> list[str]:
    """The main word of each {index} role and directive entry in *source*."""
    terms = []
    for role in re.findall(r"\{index\}`([^`]+)`", source):
        explicit = re.match(r"^.*<(.+)>$", role, flags=re.S)
        terms.append(explicit.group(1) if explicit else role)
    for block in re.findall(r"^```\{index\}(.*?)^```", source, flags=re.M | re.S):
        for entry in block.strip().splitlines():
            entry = re.sub(r"^(single|pair|triple|see|seealso):\s*", "", entry.strip())
            terms.append(entry.split(";")[0].strip().lstrip("!"))
    return [t.strip() for t in terms if t.strip()]


@pytest.mark.parametrize("essay", ESSAYS, ids=lambda e: e.docname)
def test_genindex_lists_the_essays_index_entries(site: Site, essay: Essay) -> None:
    terms = index_terms(essay.source)
    genindex = soup(site.html / "genindex.html")
    entries = {
        " ".join(li.get_text().split()) for li in genindex.select("table.indextable li")
    }
    page = f"{essay.docname.rsplit('/', 1)[-1]}.html"
    linked = {
        " ".join(a.get_text().split())
        for a in genindex.select("table.indextable a")
        if page in str(a.get("href", ""))
    }
    for term in terms:
        assert any(e.lower().startswith(term.lower()) for e in entries | linked), term


def test_navigation_reaches_index_search_and_glossary(site: Site) -> None:
    nav = soup(site.html / "index.html").select_one(".sidebar-tree")
    assert nav is not None
    hrefs = {str(a["href"]) for a in nav.select("a[href]")}
    assert {"genindex.html", "search.html", "glossary.html"} <= hrefs


def test_landing_page_shows_four_topic_cards(site: Site) -> None:
    cards = soup(site.html / "index.html").select(".sd-card")
    titles = [" ".join(c.get_text().split()) for c in cards]
    for topic in ("Observability", "Infrastructure", "Security", "Teams"):
        assert any(t.startswith(topic) for t in titles), titles


@pytest.mark.parametrize("essay", ESSAYS, ids=lambda e: e.docname)
def test_topic_page_lists_the_essay(site: Site, essay: Essay) -> None:
    topic = essay.front.values["topic"]
    page = soup(site.html / f"essays/{topic}/index.html")
    listed = {str(a["href"]) for a in page.select("article a.reference.internal")}
    assert f"{essay.docname.rsplit('/', 1)[-1]}.html" in listed


@pytest.mark.parametrize("essay", ESSAYS, ids=lambda e: e.docname)
def test_diagrams_are_svg(site: Site, essay: Essay) -> None:
    page = soup(site.html / f"{essay.docname}.html")
    diagrams = page.select("article div.graphviz")
    # A diagram is the author's choice, not a rule of the essay standard; each
    # one the essay draws is on its page (beside the neighbourhood map, if any).
    assert len(diagrams) >= essay.source.count("```{graphviz}")
    for diagram in diagrams:
        svg = diagram.select_one("svg")
        assert svg is not None, diagram
        assert svg.get("aria-label"), "each diagram needs its alt text"
        assert svg.select("text"), "a drawing with words in it"


@pytest.mark.parametrize("index", ["topics", "tags", "archive"])
def test_generated_indexes_list_every_essay(site: Site, index: str) -> None:
    page = soup(site.html / f"essay-{index}.html")
    links = page.select("table.domainindex-table a, table.indextable a")
    listed = {" ".join(a.get_text().split()) for a in links}
    assert {essay.title for essay in ESSAYS} <= listed


def test_every_linked_essay_shows_who_links_it(site: Site) -> None:
    for essay in ESSAYS:
        page = soup(site.html / f"{essay.docname}.html")
        for link in page.select("article a.reference.internal[href]"):
            href = urldefrag(str(link["href"])).url
            target = next(
                (
                    e
                    for e in ESSAYS
                    if href.endswith(e.docname.rsplit("/", 1)[1] + ".html")
                ),
                None,
            )
            if (
                target is None
                or target is essay
                or link.find_parent(
                    class_=[
                        "essay-related",
                        "essay-backlinks",
                        "kb-previews",
                        "essay-list",
                    ]
                )
            ):
                continue
            backlinks = soup(site.html / f"{target.docname}.html").select(
                ".essay-backlinks li"
            )
            entries = [" ".join(li.get_text().split()) for li in backlinks]
            ours = [e for e in entries if e.startswith(essay.title + ": ")]
            assert ours, (essay.docname, target.docname)
            # Each entry quotes the linking sentence after the title.
            assert all(len(e) > len(essay.title) + 20 for e in ours), ours


def test_every_glossary_term_lists_where_it_is_used(site: Site) -> None:
    page = soup(site.html / "glossary.html")
    definitions = page.select("dl.glossary > dd")
    assert len(definitions) > 100
    for definition in definitions:
        used_in = definition.select_one(".glossary-used-in")
        term = definition.find_previous("dt")
        assert used_in is not None and used_in.select("a"), term


def test_concept_map_shows_every_essay(site: Site) -> None:
    page = soup(site.html / "concept-map.html")
    svg = page.select_one("figure.essay-map svg")
    assert svg is not None
    hrefs = {str(a.get("xlink:href")) for a in svg.select("a")}
    assert hrefs == {f"{essay.docname}.html" for essay in ESSAYS}


def test_every_page_has_a_meta_description(site: Site) -> None:
    """Search engines and link previews show it; the generated pages (search,
    404, the index and the essay indexes) have their own."""
    missing = []
    for path in sorted(site.html.rglob("*.html")):
        tag = soup(path).find("meta", attrs={"name": "description"})
        if tag is None or len(str(tag.get("content", ""))) < 40:
            missing.append(path.relative_to(site.html).as_posix())
    assert missing == []
    search = soup(site.html / "search.html").find("meta", attrs={"name": "description"})
    assert search is not None
    assert str(search["content"]).startswith("Infrastructure Essays: Search the essays")
