"""Backlinks with context: "Referenced by" with the sentence that links."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from bs4 import BeautifulSoup
from docutils import nodes
from sphinx import addnodes

from sphinx_essays.relations import sentence_around

if TYPE_CHECKING:
    from sphinx.testing.util import SphinxTestApp


def test_sentence_around_picks_the_sentence_with_the_link() -> None:
    paragraph = nodes.paragraph()
    paragraph += nodes.Text("First sentence here. The second one links ")
    xref = addnodes.pending_xref("", nodes.inline("", "the other essay"))
    paragraph += xref
    paragraph += nodes.Text(" in its middle! A third follows.")
    assert sentence_around(paragraph, xref) == (
        "The second one links the other essay in its middle!"
    )


def test_sentence_around_a_link_that_ends_the_paragraph() -> None:
    paragraph = nodes.paragraph()
    paragraph += nodes.Text("One. Two points at ")
    xref = addnodes.pending_xref("", nodes.inline("", "it"))
    paragraph += xref
    assert sentence_around(paragraph, xref) == "Two points at it"


@pytest.mark.sphinx("html", testroot="essays-site", freshenv=True)
def test_referenced_by_shows_sentence_and_jumps_to_it(app: SphinxTestApp) -> None:
    app.build()
    four = BeautifulSoup(
        (app.outdir / "essays/security/four.html").read_text(), "html.parser"
    )
    entries = four.select(".essay-backlinks li")
    assert [" ".join(li.get_text().split()) for li in entries] == [
        "Essay One: It links four and uses Alpha and Beta."
    ]
    link = entries[0].select_one("a")
    assert link is not None
    assert link["href"] == "../observability/one.html#essay-mention-1"
    one = BeautifulSoup(
        (app.outdir / "essays/observability/one.html").read_text(), "html.parser"
    )
    anchor = one.find(id="essay-mention-1")
    assert anchor is not None
    assert anchor.find_next("a").get_text() == "four"


@pytest.mark.sphinx("html", testroot="essays-site", freshenv=True)
def test_essays_nobody_links_have_no_backlinks(app: SphinxTestApp) -> None:
    app.build()
    three = (app.outdir / "essays/observability/three.html").read_text()
    assert "essay-backlinks" not in three


@pytest.mark.sphinx("latex", testroot="essays-site", freshenv=True)
def test_pdf_backlinks_give_the_page(app: SphinxTestApp) -> None:
    app.build()
    tex = (app.outdir / "testessays.tex").read_text()
    label = r"\detokenize{essays/observability/one:essay-mention-1}"
    assert rf"\label{{{label}}}" in tex
    assert rf"\hyperref[{label}]{{Essay One}} (page~\pageref{{{label}}})" in tex
