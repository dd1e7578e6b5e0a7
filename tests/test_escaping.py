"""Hostile input is escaped wherever it appears, or rejected.

``test-essays-hostile`` has an essay whose title is ``<script>`` markup (written
escaped, so Markdown keeps it as text), a summary with ``&`` and quotes, and a
glossary term made of an ``onmouseover`` tag. Tags must be slugs, summaries
may not contain ``<`` or ``>``, and raw HTML in a title or a glossary term is
an error: ``test_metadata`` and ``test_glossary`` prove those rejections.

Here the site is built and every place the text reaches is parsed as its
reader would parse it: the pages (including ``<meta>``, previews and the inline
concept maps), the search index and the Atom feed. Nothing may become markup,
and a browser must run no script of the author's.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

import pytest
from bs4 import BeautifulSoup

from conftest import serve, sphinx_build

if TYPE_CHECKING:
    from pathlib import Path

    from playwright.sync_api import Browser

TITLE = 'The <script>alert("title")</script> & "Quoted" Essay'
SUMMARY = 'Tom & Jerry\'s "quoted" summary, with &amp; an entity'
TERM = "<b onmouseover=\"alert('term')\">Bold</b> Term"
ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture(scope="module")
def hostile(rootdir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The hostile site, built with ``-nW``: it is valid, only unkind."""
    out = tmp_path_factory.mktemp("hostile")
    result = sphinx_build(
        "-nW",
        "-b",
        "html",
        "-d",
        str(out / "doctrees"),
        str(rootdir / "test-essays-hostile"),
        str(out / "html"),
    )
    assert result.returncode == 0, result.stderr
    return out / "html"


def pages(outdir: Path) -> dict[str, BeautifulSoup]:
    return {
        p.relative_to(outdir).as_posix(): BeautifulSoup(p.read_text(), "html.parser")
        for p in outdir.rglob("*.html")
    }


def test_no_page_gains_a_script_an_element_or_a_handler(hostile: Path) -> None:
    found = pages(hostile)
    assert len(found) >= 8
    for path, html in found.items():
        for script in html.find_all("script"):
            assert script.get("src"), f"{path}: an inline script"
        for tag in html.find_all(True):
            handlers = [a for a in tag.attrs if a.lower().startswith("on")]
            assert handlers == [], f"{path}: {tag.name} has {handlers}"
            assert tag.name not in ("b", "img") or not tag.get("onmouseover"), path
        assert html.find("b", string="Bold") is None, f"{path}: the term became markup"


def test_the_title_is_text_everywhere_on_the_pages(hostile: Path) -> None:
    found = pages(hostile)
    essay = found["essays/security/attack.html"]
    assert essay.h1 is not None
    assert essay.h1.get_text().rstrip("¶#") == TITLE
    assert essay.title is not None and essay.title.get_text().startswith(TITLE)
    # <meta> tags (ours and sphinxext-opengraph's) decode back to the text.
    meta = {
        str(m.get("property") or m.get("name")): str(m.get("content"))
        for m in essay.find_all("meta")
    }
    assert meta["og:title"] == TITLE
    assert meta["og:description"] == SUMMARY
    assert meta["description"] == SUMMARY
    # Listings, indexes, previews and the sidebar show the same text.
    for path in ("index.html", "essays/security/index.html", "essay-topics.html"):
        assert TITLE in found[path].get_text(), path
    defence = found["essays/security/defence.html"]
    previews = " ".join(p.get_text() for p in defence.select(".kb-preview"))
    assert TITLE in previews and SUMMARY in previews
    glossary = found["glossary.html"]
    assert TERM in glossary.select_one("dl.glossary dt").get_text()


def test_the_concept_maps_draw_the_title_as_text(hostile: Path) -> None:
    for path in ("concept-map.html", "essays/security/defence.html"):
        html = BeautifulSoup((hostile / path).read_text(), "html.parser")
        svg = html.select_one("figure.essay-map svg")
        assert svg is not None, path
        root = ET.fromstring(str(svg))
        texts = " ".join(
            t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text")
        )
        assert 'alert("title")' in texts, texts
        assert not list(root.iter("{http://www.w3.org/2000/svg}script"))


def test_the_search_index_holds_the_title_as_data(hostile: Path) -> None:
    titles = [
        item[1]
        for block in sorted((hostile / "_search" / "i").glob("*.json"))
        for item in json.loads(block.read_text())
    ]
    assert TITLE in titles
    assert TERM in titles


def test_the_feed_holds_the_title_and_summary_as_text(hostile: Path) -> None:
    feed = ET.parse(hostile / "atom.xml").getroot()
    entries = {
        e.findtext(f"{ATOM}title"): e.findtext(f"{ATOM}summary")
        for e in feed.iter(f"{ATOM}entry")
    }
    assert entries[TITLE] == SUMMARY


def test_a_browser_runs_none_of_it(browser: Browser, hostile: Path) -> None:
    dialogs: list[str] = []
    errors: list[str] = []
    with serve(hostile) as base_url:
        page = browser.new_page()
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on(
            "console",
            lambda m: (
                errors.append(f"{m.text} ({m.location.get('url')})")
                # This small site has no favicon; Chromium asks for one anyway.
                if m.type == "error"
                and not str(m.location.get("url")).endswith("/favicon.ico")
                else None
            ),
        )
        for path in (
            "essays/security/defence.html",
            "essays/security/attack.html",
            "glossary.html",
        ):
            page.goto(base_url + path)
            for link in page.locator("article span.kb-ref a").all():
                link.hover()
        # The hostile title and term come back as search results: as text.
        for query in ("script alert", "Bold Term"):
            box = page.locator("form.essays-search-form input[name=q]")
            box.fill("")
            box.type(query, delay=20)
            page.locator("#essays-search-results [role=option]").first.wait_for()
            assert (
                page.locator(
                    "#essays-search-results script, #essays-search-results b"
                ).count()
                == 0
            )
        page.close()
    assert dialogs == []
    assert errors == []
