"""Related essays: ranked by links, shared tags and shared terms."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from bs4 import BeautifulSoup

if TYPE_CHECKING:
    from sphinx.testing.util import SphinxTestApp


def related(app: SphinxTestApp, page: str) -> list[str]:
    html = BeautifulSoup((app.outdir / page).read_text(), "html.parser")
    return [" ".join(li.get_text().split()) for li in html.select(".essay-related li")]


@pytest.mark.sphinx("html", testroot="essays-site", freshenv=True)
def test_ranking_and_reasons(app: SphinxTestApp) -> None:
    app.build()
    assert related(app, "essays/observability/one.html") == [
        "Essay Four (linked; tags: cost)",
        "Essay Two (tags: tracing; 1 shared term)",
    ]
    assert related(app, "essays/security/five.html") == ["Essay Four (tags: security)"]
    assert related(app, "essays/security/six.html") == []


@pytest.mark.sphinx("html", testroot="essays-site", freshenv=True)
def test_ties_are_broken_by_title(app: SphinxTestApp) -> None:
    app.build()
    domain = app.env.domains["essay"]
    # Two and One share "tracing" with each other only; Four shares "cost" with
    # One only: each list is fully determined, whatever the dict order.
    assert domain.related("essays/observability/two", 3) == [
        ("essays/observability/one", ["tags: tracing", "1 shared term"])
    ]
