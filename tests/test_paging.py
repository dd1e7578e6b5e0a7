"""Long index pages on the website are cut into pages under a weight budget."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

from bs4 import BeautifulSoup
from sphinx.domains import IndexEntry

from conftest import file_bytes, sphinx_build
from sphinx_essays.paging import cut, weight

if TYPE_CHECKING:
    from pathlib import Path

    from conftest import Site


def row(name: str, subtype: int = 0, descr: str = "") -> IndexEntry:
    return IndexEntry(name, subtype, "essays/x", "", "", "", descr)


def test_rows_are_cut_by_weight_and_kept_with_their_sub_rows() -> None:
    source = [row(f"Source {n}", 1) for n in range(6)]
    content = [
        ("Papers", [source[0], row("s", 2, "x" * 300), source[1]]),
        ("Books", [source[2], source[3], row("s", 2, "y" * 300), source[4]]),
        ("Reports", [source[5]]),
    ]
    budget = 900
    pages = cut(content, "essay-sources", budget)
    assert [page.pagename for page in pages] == ["essay-sources", "essay-sources-2"]
    # Every row once, in order, and no page over the budget unless one unit
    # (a row and its sub-rows) weighs more on its own.
    every = [
        entry for page in pages for _, entries in page.content for entry in entries
    ]
    assert every == [entry for _, entries in content for entry in entries]
    for page in pages:
        rows = [entry for _, entries in page.content for entry in entries]
        assert sum(weight(entry) for entry in rows) <= budget
        assert rows[0].subtype != 2, "a sub-row was parted from its row"
    # A group cut across pages appears on both, once on each.
    groups = [[group for group, _ in page.content] for page in pages]
    assert groups == [["Papers", "Books"], ["Books", "Reports"]]
    assert pages[0].label() == "Papers to Books, from “Source 0”"
    assert pages[1].label() == "Books to Reports, from “Source 3”"
    # The budget is what cuts: one page when everything fits.
    assert len(cut(content, "essay-sources", 10_000)) == 1


def test_an_index_under_the_budget_is_one_page() -> None:
    content = [("Papers", [row("Only source", 0)])]
    assert [page.pagename for page in cut(content, "essay-sources", 10_000)] == [
        "essay-sources"
    ]


def tag_rows(html: Path) -> tuple[list[str], dict[str, BeautifulSoup]]:
    """The rows of every page of the tag index, in page order, and each page."""
    pages = {}
    found = []
    name = "essay-tags.html"
    number = 1
    while (html / name).exists():
        page = BeautifulSoup((html / name).read_text(), "html.parser")
        pages[name] = page
        table = page.select_one("table.domainindex-table")
        assert table is not None
        for tr in table.select("tr:not(.cap):not(.pcap)"):
            text = " ".join(tr.get_text().split())
            if text:
                found.append(text)
        number += 1
        name = f"essay-tags-{number}.html"
    return found, pages


def test_a_heavy_index_becomes_linked_pages_with_every_row_once(
    rootdir: Path, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    shutil.copytree(rootdir / "test-essays-site", source)
    furo = ("-D", "html_theme=furo")
    whole, paged = tmp_path / "whole", tmp_path / "paged"
    for out, budget in ((whole, "64"), (paged, "1")):
        done = sphinx_build(
            "-q", "-b", "html", *furo, "-D", f"essays_index_page_kb={budget}",
            "-d", str(out / "doctrees"), str(source), str(out / "html"),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr

    rows_whole, pages_whole = tag_rows(whole / "html")
    rows_paged, pages = tag_rows(paged / "html")
    assert list(pages_whole) == ["essay-tags.html"]
    assert len(pages) >= 3
    assert rows_paged == rows_whole

    names = list(pages)
    for number, (name, page) in enumerate(pages.items(), start=1):
        nav = page.select_one("nav.essays-index-pages")
        assert nav is not None, name
        assert nav.get("aria-label") == "Pages of this index"
        current = nav.select("[aria-current=page]")
        assert len(current) == 1
        links = [str(a["href"]) for a in nav.select("a")]
        assert links == [other for other in names if other != name]
        title = page.select_one("h1")
        assert title is not None
        if number > 1:
            assert title.get_text() == f"Essays by tag, page {number} of {len(names)}"
            description = page.select_one('meta[name="description"]')
            assert description is not None
            assert f"(page {number})" in str(description["content"])
        # The jump box links every tag on the page where its group starts.
        for jump in page.select(".domainindex-jumpbox a"):
            target, _, anchor = str(jump["href"]).partition("#")
            holder = pages[target] if target else page
            assert holder.find(id=anchor) is not None, (name, jump["href"])

    # Fewer pages after a change: the pages past the last are gone, as a fresh
    # build has none.
    again = sphinx_build(
        "-q", "-b", "html", *furo, "-D", "essays_index_page_kb=64",
        "-d", str(paged / "doctrees"), str(source), str(paged / "html"),
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert not list((paged / "html").glob("essay-tags-*.html"))
    built = {k: v for k, v in file_bytes(paged / "html").items() if k.endswith(".html")}
    fresh = {k: v for k, v in file_bytes(whole / "html").items() if k.endswith(".html")}
    assert built.keys() == fresh.keys()


def test_no_index_page_of_the_site_weighs_over_100_kb(site: Site) -> None:
    pages = sorted(site.html.glob("essay-*.html"))
    heavy = {p.name: p.stat().st_size for p in pages if p.stat().st_size > 100_000}
    assert heavy == {}
    # The sources index is cut into pages that, together, list every source
    # of the bibliography once.
    sources = [p for p in pages if p.name.startswith("essay-sources")]
    assert len(sources) > 1
    listed = []
    for page in sources:
        soup = BeautifulSoup(page.read_text(), "html.parser")
        for link in soup.select("table.domainindex-table tr:not([class]) a"):
            listed.append(str(link["href"]).partition("#")[2])
    bibliography = BeautifulSoup(
        (site.html / "references.html").read_text(), "html.parser"
    )
    entries = [str(c["id"]) for c in bibliography.select("div.citation[id]")]
    assert sorted(listed) == sorted(entries)
