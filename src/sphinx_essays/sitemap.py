"""``sitemap.xml`` that lists every page, after an incremental build too.

sphinx-sitemap (2.9) collects a page's address when the page is written
(``html-page-context``), through a ``multiprocessing.Manager`` queue that
writer processes share. So an incremental build's sitemap lists only the
pages that build rewrote (after one title change in a 24-page site: 19
addresses instead of 36), the order depends on which writer finished first,
and every build forks a manager process (which, forked from a process with
threads, can deadlock at exit).

This module replaces the manager queue with an in-process one before any
page is written, and, just before sphinx-sitemap writes the file, fills it
with every document's address, computed from the environment the way
sphinx-sitemap computes it, plus the pages the main process generated
(the indexes, search, 404), in one sorted order. So incremental equals
fresh, and ``-j 2`` equals serial.
"""

from __future__ import annotations

import queue
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sphinx.application import Sphinx


def page_link(app: Sphinx, docname: str) -> str:
    """The address sphinx-sitemap gives *docname* (its ``add_html_link``)."""
    if app.builder.name == "dirhtml":
        if docname == "index":
            return ""
        if docname.endswith("/index"):
            return docname[: -len("index")]
        return docname + "/"
    return docname + (app.config.html_file_suffix or ".html")


def last_modified(app: Sphinx, docname: str) -> str | None:
    """The page's ``lastmod``, as sphinx-sitemap writes it, or None."""
    dates = getattr(app.env, "git_last_updated", {})
    if not app.config.sitemap_show_lastmod or docname not in dates:
        return None
    timestamp = (dates[docname] or (None,))[0]
    if not timestamp:
        return None
    when = datetime.fromtimestamp(int(timestamp), UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _in_process_queue(app: Sphinx) -> None:
    """After sphinx-sitemap's ``builder-inited`` (priority 500): no manager
    process; documents' addresses come from the environment instead."""
    if hasattr(app, "sitemap_links"):
        app.sitemap_links = queue.Queue()


def _complete(app: Sphinx, exception: BaseException | None) -> None:
    links = getattr(app, "sitemap_links", None)
    if exception is not None or links is None:
        return
    from sphinx_sitemap import is_excluded  # type: ignore[import-untyped]

    found: dict[str, str | None] = {}
    while True:
        try:
            link, lastmod = links.get_nowait()
        except queue.Empty:
            break
        found[link] = lastmod
    excludes = app.config.sitemap_excludes
    for docname in app.env.found_docs:
        link = page_link(app, docname)
        if not is_excluded(link, excludes):
            found[link] = last_modified(app, docname)
    for link in sorted(found):
        links.put((link, found[link]))


def setup(app: Sphinx) -> None:
    app.connect("builder-inited", _in_process_queue, priority=600)
    # Before sphinx-sitemap's create_sitemap (priority 500).
    app.connect("build-finished", _complete, priority=400)
