"""The essay-list directive: cards in HTML, filtered, sorted and limited."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from bs4 import BeautifulSoup

if TYPE_CHECKING:
    from sphinx.testing.util import SphinxTestApp


def card_titles(app: SphinxTestApp, page: str) -> list[str]:
    html = BeautifulSoup((app.outdir / page).read_text(), "html.parser")
    return [t.get_text() for t in html.select(".essay-list .sd-card .sd-card-title")]


@pytest.mark.sphinx("html", testroot="essays-site", freshenv=True)
def test_topic_page_lists_its_essays_by_title(app: SphinxTestApp) -> None:
    app.build()
    assert card_titles(app, "essays/observability/index.html") == [
        "Essay One",
        "Essay Three",
        "Essay Two",
    ]


@pytest.mark.sphinx("html", testroot="essays-site", freshenv=True)
def test_landing_page_lists_the_newest_two(app: SphinxTestApp) -> None:
    app.build()
    assert card_titles(app, "index.html") == ["Essay Four", "Essay Six"]


@pytest.mark.sphinx("html", testroot="essays-site", freshenv=True)
def test_card_shows_link_summary_reading_time_and_tags(app: SphinxTestApp) -> None:
    app.build()
    html = BeautifulSoup(
        (app.outdir / "essays/security/index.html").read_text(), "html.parser"
    )
    card = html.select(".essay-list .sd-card")[1]
    link = card.select_one("a.sd-stretched-link")
    assert link is not None and link["href"] == "four.html"
    texts = [p.get_text() for p in card.select("p.sd-card-text")]
    assert texts == ["The summary of Essay Four.", "1 min read · cost, security"]
