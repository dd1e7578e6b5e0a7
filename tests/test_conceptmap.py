"""The concept map: every essay, coloured by topic, linked as they link."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from bs4 import BeautifulSoup

if TYPE_CHECKING:
    from pathlib import Path

    from sphinx.testing.util import SphinxTestApp

TITLES = [f"Essay {n}" for n in ("One", "Two", "Three", "Four", "Five", "Six")]


SVG = "{http://www.w3.org/2000/svg}"
XLINK = "{http://www.w3.org/1999/xlink}"


@dataclass
class Diagram:
    texts: list[str]
    hrefs: list[str]
    titles: list[str]
    edges: int


def svg_of(page: Path) -> Diagram:
    """The diagram drawn inline in *page*'s ``figure.essay-map``."""
    html = BeautifulSoup(page.read_text(), "html.parser")
    svg = html.select_one("figure.essay-map div.graphviz > svg")
    assert svg is not None
    root = ET.fromstring(str(svg))
    return Diagram(
        texts=[t.text or "" for t in root.iter(f"{SVG}text")],
        hrefs=[a.get(f"{XLINK}href", "") for a in root.iter(f"{SVG}a")],
        titles=[a.get(f"{XLINK}title", "") for a in root.iter(f"{SVG}a")],
        edges=sum(1 for g in root.iter(f"{SVG}g") if g.get("class") == "edge"),
    )


@pytest.mark.sphinx("html", testroot="essays-site", freshenv=True)
def test_map_has_every_essay_and_link(app: SphinxTestApp) -> None:
    app.build()
    svg = svg_of(app.outdir / "concept-map.html")
    for title in TITLES:
        assert title in svg.texts
    assert "essays/security/four.html" in svg.hrefs  # relative to the page
    assert svg.edges == 2  # one -> four, four -> one
    assert "The summary of Essay Six." in svg.titles  # tooltips


@pytest.mark.sphinx("html", testroot="essays-site", freshenv=True)
def test_each_linked_essay_shows_its_neighbourhood(app: SphinxTestApp) -> None:
    app.build()
    svg = svg_of(app.outdir / "essays/observability/one.html")
    assert sorted(svg.texts) == ["Essay Four", "Essay One", "Observability", "Security"]
    three = (app.outdir / "essays/observability/three.html").read_text()
    assert "essay-neighbourhood" not in three


@pytest.mark.sphinx("latex", testroot="essays-site", freshenv=True)
def test_map_is_a_figure_in_the_pdf(app: SphinxTestApp) -> None:
    app.build()
    tex = (app.outdir / "testessays.tex").read_text()
    assert r"\sphinxincludegraphics[]{graphviz-" in tex
    assert "Every essay, coloured by topic" in tex
    figures = list(app.outdir.glob("graphviz-*.pdf"))
    assert figures


@pytest.mark.sphinx("html", testroot="essays-site", freshenv=True)
def test_diagrams_are_inline_svg_with_names_and_unique_ids(app: SphinxTestApp) -> None:
    """No ``<object>``: a strict CSP (no object-src) would block it."""
    app.build()
    html = BeautifulSoup(
        (app.outdir / "essays/observability/one.html").read_text(), "html.parser"
    )
    assert html.select("object") == []
    svgs = html.select("div.graphviz > svg")
    assert [svg["role"] for svg in svgs] == ["img", "group"]  # picture, then map
    assert svgs[0]["aria-label"] == (
        "A request that calls a service that queries a database."
    )
    assert svgs[1]["aria-label"].startswith("This essay and the 1 essay ")
    ids = [str(tag["id"]) for tag in html.select("[id]")]
    assert len(ids) == len(set(ids))
    assert "g1-node1" in ids and "g2-node1" in ids
