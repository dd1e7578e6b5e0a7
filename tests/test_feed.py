"""The Atom feed: valid, absolute, deterministic and advertised."""

from __future__ import annotations

from typing import TYPE_CHECKING

import feedparser
import pytest

if TYPE_CHECKING:
    from sphinx.testing.util import SphinxTestApp


@pytest.mark.sphinx("html", testroot="essays-site", freshenv=True)
def test_feed_parses_with_every_essay(app: SphinxTestApp) -> None:
    app.build()
    feed = feedparser.parse((app.outdir / "atom.xml").read_bytes())
    assert not feed.bozo, feed.get("bozo_exception")
    assert feed.version == "atom10"
    assert feed.feed.title == "Test Essays"
    titles = [entry.title for entry in feed.entries]
    assert titles == [
        "Essay Four",
        "Essay Six",
        "Essay Two",
        "Essay Three",
        "Essay One",
        "Essay Five",
    ]
    four = feed.entries[0]
    assert four.link == "https://essays.example.org/essays/security/four.html"
    assert four.summary == "The summary of Essay Four."
    assert [tag.term for tag in four.tags] == ["cost", "security"]
    assert feed.feed.updated == "2026-03-01T00:00:00+00:00"


@pytest.mark.sphinx("html", testroot="essays-site", freshenv=True)
def test_feed_is_deterministic(app: SphinxTestApp) -> None:
    app.build()
    first = (app.outdir / "atom.xml").read_bytes()
    app.build(force_all=True)
    assert (app.outdir / "atom.xml").read_bytes() == first


@pytest.mark.sphinx("html", testroot="essays-site", freshenv=True)
def test_every_page_advertises_the_feed(app: SphinxTestApp) -> None:
    app.build()
    pages = sorted(app.outdir.rglob("*.html"))
    assert len(pages) >= 10
    for page in pages:
        depth = len(page.relative_to(app.outdir).parts) - 1
        href = "../" * depth + "atom.xml"
        assert (
            f'<link rel="alternate" type="application/atom+xml" '
            f'title="Test Essays (Atom)" href="{href}" />'
        ) in page.read_text(), page
