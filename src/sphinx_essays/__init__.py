"""Sphinx extension that turns a folder of MyST essays into a knowledge base.

Each module registers one concept:

* :mod:`.config` -- the ``essays_*`` configuration values;
* :mod:`.metadata` -- the front-matter schema and its validation;
* :mod:`.drafts` -- essays marked ``status: draft``, built only in live preview;
* :mod:`.domain` -- the ``essay`` domain, which stores what was validated;
* :mod:`.indices` -- the topic, tag and archive indexes;
* :mod:`.header` -- the block under each essay's title;
* :mod:`.listing` -- the ``essay-list`` directive;
* :mod:`.overflow` -- long lists on web pages: the first few, then the rest;
* :mod:`.paging` -- long index pages on the website, cut into several;
* :mod:`.relations` -- links, tags, terms and mentions between essays, indexed
  once per build;
* :mod:`.related` -- "Related essays" at the end of each essay;
* :mod:`.backlinks` -- "Referenced by", with the sentence that links;
* :mod:`.glossary` -- "Used in" lists and the glossary checks;
* :mod:`.sources` -- the bibliography: citations, each essay's references,
  the sources index and the checks of ``references.bib``;
* :mod:`.cite_this` -- "Cite this essay": a BibTeX entry for each essay;
* :mod:`.previews` -- hover and focus previews of terms and essays;
* :mod:`.conceptmap` -- the map of essays and each essay's neighbourhood;
* :mod:`.diagrams` -- Graphviz drawn inline as ``<svg>`` in HTML pages;
* :mod:`.csp` -- what furo's templates need to run under a strict CSP;
* :mod:`.scrollable` -- code blocks and tables the keyboard can scroll;
* :mod:`.feed` -- the Atom feed;
* :mod:`.llms` -- ``llms.txt`` and ``llms-full.txt`` for machine readers;
* :mod:`.social` -- each essay's social preview image (drawn by
  :mod:`.drawing`);
* :mod:`.search` -- a small sharded index of what each essay says, and the
  search box and page;
* :mod:`.navigation` -- a sidebar that costs O(page);
* :mod:`.book` -- what the PDF and the EPUB hold, and their front matter;
* :mod:`.downloads` -- the book's PDF and EPUB, linked from the sidebar;
* :mod:`.last_updated` -- builds from a source export, without git dates;
* :mod:`.sitemap` -- ``sitemap.xml`` complete after incremental builds;
* :mod:`.suggestions` -- broken term and essay links that say the fix;
* :mod:`.live` -- build problems shown in the browser during live preview;
* :mod:`.quiet` -- no log line the author did not cause and cannot act on;
* :mod:`.invalidation` -- which pages to rewrite after a change elsewhere;
* :mod:`.footprint` -- a build's memory in proportion to one page;
* :mod:`.pagetext` -- what each essay says, kept beside its doctree.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sphinx_essays import (
    backlinks,
    book,
    cite_this,
    conceptmap,
    config,
    csp,
    diagrams,
    domain,
    downloads,
    drafts,
    feed,
    footprint,
    glossary,
    header,
    invalidation,
    last_updated,
    listing,
    live,
    llms,
    metadata,
    navigation,
    overflow,
    pagetext,
    paging,
    previews,
    quiet,
    related,
    scrollable,
    search,
    sitemap,
    social,
    sources,
    suggestions,
)

if TYPE_CHECKING:
    from sphinx.application import Sphinx
    from sphinx.config import Config
    from sphinx.util.typing import ExtensionMetadata

__version__ = "0.1.0"

#: Scripts and stylesheets (``static/``), and furo template overrides
#: (``templates/``): the sidebar and the strict-CSP versions of furo's pages.
PACKAGE = Path(__file__).parent


def _add_static(app: Sphinx, config: Config) -> None:
    # New lists: conf.py's own must not grow across builds in one process
    # (live preview), or the config hash would change every time.
    config.html_static_path = [*config.html_static_path, str(PACKAGE / "static")]


def _add_templates(app: Sphinx) -> None:
    """Our furo overrides, for builders whose theme is furo: the EPUB
    builder's theme has no page.html of furo's to extend."""
    builder = app.builder
    theme = getattr(builder, "theme", None)
    if theme is None or theme.name != "furo":
        return
    app.config.templates_path = [*app.config.templates_path, str(PACKAGE / "templates")]
    builder.templates.init(builder, theme)


def setup(app: Sphinx) -> ExtensionMetadata:
    app.connect("config-inited", _add_static)
    app.connect("builder-inited", _add_templates)
    quiet.setup(app)
    live.setup(app)
    config.setup(app)
    domain.setup(app)
    metadata.setup(app)
    drafts.setup(app)
    header.setup(app)
    listing.setup(app)
    overflow.setup(app)
    paging.setup(app)
    related.setup(app)
    backlinks.setup(app)
    glossary.setup(app)
    sources.setup(app)
    cite_this.setup(app)
    previews.setup(app)
    conceptmap.setup(app)
    diagrams.setup(app)
    csp.setup(app)
    scrollable.setup(app)
    feed.setup(app)
    llms.setup(app)
    social.setup(app)
    search.setup(app)
    navigation.setup(app)
    book.setup(app)
    downloads.setup(app)
    last_updated.setup(app)
    sitemap.setup(app)
    suggestions.setup(app)
    invalidation.setup(app)
    footprint.setup(app)
    pagetext.setup(app)
    return {
        "version": __version__,
        "env_version": domain.EssayDomain.data_version,
        "parallel_read_safe": True,
        "parallel_write_safe": True,
    }
