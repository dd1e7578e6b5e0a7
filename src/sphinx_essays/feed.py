"""An Atom feed of every essay at ``atom.xml``, made with feedgen.

Entries are newest first (then by title) and carry absolute URLs built from
``html_baseurl``, so the file is the same on every build of the same sources.
Every HTML page advertises the feed in its ``<head>``.
"""

from __future__ import annotations

import datetime as dt
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from feedgen.feed import FeedGenerator
from sphinx.errors import ConfigError
from sphinx.util import logging

from sphinx_essays import config as essays_config
from sphinx_essays.book import on_the_web
from sphinx_essays.domain import get_domain

if TYPE_CHECKING:
    from sphinx.application import Sphinx

logger = logging.getLogger(__name__)


def _midnight(day: str) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)


def build_feed(app: Sphinx) -> FeedGenerator:
    """The feed for the essays read in this build."""
    base = app.config.html_baseurl.rstrip("/") + "/"
    filename = essays_config.from_sphinx(app.config).feed_filename
    essays = get_domain(app.env).select(sort="date")
    feed = FeedGenerator()
    feed.id(base)
    feed.title(app.config.project)
    feed.subtitle(f"New essays in {app.config.project}")
    feed.author({"name": app.config.author})
    feed.link(href=base, rel="alternate")
    feed.link(href=base + filename, rel="self")
    feed.language(app.config.language or "en")
    feed.generator("sphinx-essays")
    if essays:
        feed.updated(_midnight(max(record["date"] for _d, record in essays)))
    else:
        feed.updated(dt.datetime(1970, 1, 1, tzinfo=dt.UTC))
    for docname, record in essays:
        url = base + app.builder.get_target_uri(docname)
        entry = feed.add_entry(order="append")
        entry.id(url)
        entry.title(record["title"])
        entry.link(href=url, rel="alternate")
        entry.summary(record["summary"])
        entry.published(_midnight(record["date"]))
        entry.updated(_midnight(record["date"]))
        for tag in record["tags"]:
            entry.category(term=tag)
    return feed


def _check_baseurl(app: Sphinx) -> None:
    if on_the_web(app) and not app.config.html_baseurl:
        msg = "the essays feed needs html_baseurl, the site's absolute URL, in conf.py"
        raise ConfigError(msg)


def _write_feed(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or not on_the_web(app):
        return
    filename = essays_config.from_sphinx(app.config).feed_filename
    path = Path(app.builder.outdir, filename)
    path.write_bytes(build_feed(app).atom_str(pretty=True))


def _advertise_feed(
    app: Sphinx,
    pagename: str,
    templatename: str,
    context: dict[str, Any],
    doctree: object,
) -> None:
    if not on_the_web(app):
        return
    filename = essays_config.from_sphinx(app.config).feed_filename
    href = escape(context["pathto"](filename, 1))
    title = escape(f"{app.config.project} (Atom)")
    link = (
        f'<link rel="alternate" type="application/atom+xml" title="{title}" '
        f'href="{href}" />'
    )
    context["metatags"] = context.get("metatags", "") + "\n    " + link


def setup(app: Sphinx) -> None:
    app.connect("builder-inited", _check_baseurl)
    app.connect("html-page-context", _advertise_feed)
    app.connect("build-finished", _write_feed)
