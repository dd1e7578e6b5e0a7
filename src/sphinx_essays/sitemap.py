"""``sitemap.xml`` that lists every page after an incremental build too.

sphinx-sitemap (2.9) collects a page's address when the page is written, so
after an incremental build the sitemap lists only the pages that build
rewrote (after one title change in a 24-page site: 19 addresses instead of
36). This module keeps the addresses of the last build in the doctree folder
and, just before sphinx-sitemap writes the file, gives it back those of the
pages that still exist and were not rewritten, in one sorted order, so that
``-j 2`` and serial builds list them alike.
"""

from __future__ import annotations

import json
import queue
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sphinx.application import Sphinx

#: The addresses of the last build, beside the doctrees they belong to.
STORE = "essays-sitemap.json"


def page_link(app: Sphinx, docname: str) -> str:
    """The address sphinx-sitemap gives *docname* (its ``add_html_link``)."""
    if app.builder.name == "dirhtml":
        if docname == "index":
            return ""
        if docname.endswith("/index"):
            return docname[: -len("index")]
        return docname + "/"
    return docname + (app.config.html_file_suffix or ".html")


def _complete(app: Sphinx, exception: BaseException | None) -> None:
    links = getattr(app, "sitemap_links", None)
    if exception is not None or links is None:
        return
    from sphinx_sitemap import is_excluded  # type: ignore[import-untyped]

    written: dict[str, str | None] = {}
    while True:
        try:
            link, lastmod = links.get_nowait()
        except queue.Empty:
            break
        written[link] = lastmod
    store = Path(app.doctreedir, STORE)
    previous: dict[str, str | None] = (
        json.loads(store.read_text(encoding="utf-8")) if store.exists() else {}
    )
    pages = {page_link(app, docname) for docname in app.env.found_docs}
    excludes = app.config.sitemap_excludes
    kept = {
        link: lastmod
        for link, lastmod in previous.items()
        if link in pages and not is_excluded(link, excludes)
    }
    kept.update(written)
    partial = store.with_suffix(".tmp")
    partial.write_text(json.dumps(kept, sort_keys=True), encoding="utf-8")
    partial.replace(store)
    for link in sorted(kept):
        links.put((link, kept[link]))


def setup(app: Sphinx) -> None:
    # Before sphinx-sitemap's create_sitemap (priority 500).
    app.connect("build-finished", _complete, priority=400)
