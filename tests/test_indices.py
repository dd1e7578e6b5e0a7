"""Topic, tag and archive indexes, in HTML and in LaTeX."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from bs4 import BeautifulSoup

if TYPE_CHECKING:
    from sphinx.testing.util import SphinxTestApp


def index_rows(app: SphinxTestApp, name: str) -> list[str]:
    page = BeautifulSoup((app.outdir / f"essay-{name}.html").read_text(), "html.parser")
    table = page.select_one("table.indextable")
    assert table is not None
    return [" ".join(row.get_text().split()) for row in table.select("tr")]


@pytest.mark.sphinx("html", testroot="essays-site", freshenv=True)
def test_html_indexes(app: SphinxTestApp) -> None:
    app.build()
    assert index_rows(app, "topics") == [
        "",
        "observability",
        "Essay One (2026-01-10)",
        "Essay Three (2026-02-05)",
        "Essay Two (2026-02-20)",
        "",
        "security",
        "Essay Five (2025-12-24)",
        "Essay Four (2026-03-01)",
        "Essay Six (2026-03-01)",
    ]
    tags = index_rows(app, "tags")
    cost = tags.index("cost")
    assert tags[cost : cost + 4] == [
        "cost",
        "2 essays",
        "Essay Four (2026-03-01)",
        "Essay One (2026-01-10)",
    ]
    assert tags[tags.index("identity") + 1] == "1 essay"
    archive = [row for row in index_rows(app, "archive") if row]
    assert archive == [
        "2026-03",
        "Essay Four (2026-03-01)",
        "Essay Six (2026-03-01)",
        "2026-02",
        "Essay Two (2026-02-20)",
        "Essay Three (2026-02-05)",
        "2026-01",
        "Essay One (2026-01-10)",
        "2025-12",
        "Essay Five (2025-12-24)",
    ]


@pytest.mark.sphinx("html", testroot="essays-site", freshenv=True)
def test_tag_index_anchors_exist_for_header_links(app: SphinxTestApp) -> None:
    app.build()
    tags = BeautifulSoup((app.outdir / "essay-tags.html").read_text(), "html.parser")
    essay = BeautifulSoup(
        (app.outdir / "essays/observability/one.html").read_text(), "html.parser"
    )
    links = [a["href"] for a in essay.select(".essay-facts a.essay-tag")]
    assert links == [
        "../../essay-tags.html#cap-tracing",
        "../../essay-tags.html#cap-cost",
    ]
    for link in links:
        assert tags.find(id=str(link).split("#")[1]) is not None


@pytest.mark.sphinx("latex", testroot="essays-site", freshenv=True)
def test_latex_indexes_and_lists(app: SphinxTestApp) -> None:
    app.build()
    tex = (app.outdir / "testessays.tex").read_text()
    for title in ("Essays by topic", "Essays by tag", "Essays by date"):
        assert rf"\renewcommand{{\indexname}}{{{title}}}" in tex
    # essay-list is a plain list of linked titles, summaries and facts.
    assert "sd-card" not in tex
    assert (
        r"\sphinxstylestrong{{\hyperref[\detokenize{essays/observability/two::doc}]"
        r"{\sphinxcrossref{\DUrole{doc}{Essay Two}}}}}. The summary of Essay Two. "
        "(1 min read · tracing)"
    ) in tex
