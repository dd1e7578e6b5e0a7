"""Sphinx configuration for Infrastructure Essays.

Importing this file never touches the network: every theme asset, script and
font is served from the build itself.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

# -- Project -----------------------------------------------------------------

project = "Infrastructure Essays"
author = "The Infrastructure Essays authors"
copyright = "2026, The Infrastructure Essays authors"
language = "en"
# EPUB 3 needs a version; essays are dated, the collection is versioned by year.
version = release = "2026"

# -- Extensions --------------------------------------------------------------

extensions = [
    "myst_parser",
    "sphinx_design",
    "sphinx.ext.graphviz",
    "sphinxcontrib.bibtex",
    "sphinx_essays",
    "sphinx_copybutton",
    "sphinx_last_updated_by_git",
    "sphinx_sitemap",
    "sphinxext.opengraph",
    "notfound.extension",
]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# Titles must match the archive character for character, so straight quotes
# stay straight.
smartquotes = False

exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
nitpicky = True

# -- Essays ------------------------------------------------------------------

essays_topics = ("observability", "infrastructure", "security", "teams")
essays_root = "essays"
# Pages for the website only: the PDF and the EPUB are for readers, so they
# leave out the authors' section and the web's own ways in.
essays_web_only = ("about/*", "browse", "concept-map")

# -- The book (PDF and EPUB) ---------------------------------------------------

essays_book_subtitle = "Observability, platforms, security and the teams that run them"
essays_book_edition = "First edition, December 2026"
essays_licence = "CC-BY-4.0"

# -- Sources -----------------------------------------------------------------

# Every source any essay cites, one BibTeX entry each (sphinxcontrib-bibtex).
# Essays cite with {cite:p}`key`; the "essays" styles print (Author, Year)
# and say when each web source was last checked.
bibtex_bibfiles = ["references.bib"]
bibtex_default_style = "essays"
bibtex_reference_style = "essays"
# Our previews show the full reference; the library's title tooltips would
# repeat it.
bibtex_tooltips = False

# -- Diagrams ----------------------------------------------------------------

graphviz_output_format = "svg"
graphviz_dot_args = [
    "-Gfontname=Helvetica",
    "-Nfontname=Helvetica",
    "-Efontname=Helvetica",
]

# -- HTML --------------------------------------------------------------------

html_theme = "furo"
# Absolute URLs (the Atom feed) use the hosted site's address; Read the Docs
# sets READTHEDOCS_CANONICAL_URL for each version it builds.
html_baseurl = os.environ.get(
    "READTHEDOCS_CANONICAL_URL",
    "https://infrastructure-essays.readthedocs.io/en/latest/",
)
html_title = "Infrastructure Essays"
html_static_path = ["_static"]
html_favicon = "_static/favicon.svg"
html_css_files = ["essays.css"]
# "Last updated" comes from git (sphinx-last-updated-by-git). In a shallow
# clone the last commit may be missing, so the date is left out rather than
# guessed; that case is not an error.
html_last_updated_fmt = "%Y-%m-%d"
suppress_warnings = ["git.too_shallow"]
html_copy_source = False
html_show_sourcelink = False
html_theme_options = {
    "navigation_with_keys": True,
}

# -- Discovery ---------------------------------------------------------------

# sitemap.xml lists every page under html_baseurl (sphinx-sitemap).
sitemap_url_scheme = "{link}"
sitemap_excludes = ["search.html", "genindex.html", "404.html"]

# Open Graph and Twitter Card tags (sphinxext-opengraph). Each essay's
# description is its summary (sphinx_essays.metadata sets og:description).
ogp_site_url = html_baseurl
ogp_site_name = project
ogp_type = "article"
ogp_enable_meta_description = True
ogp_social_cards = {"enable": False}

# The 404 page links with absolute paths, so it works at any depth
# (sphinx-notfound-page). Read the Docs serves it under /<lang>/<version>/.
notfound_urls_prefix = (
    urlsplit(html_baseurl).path if os.environ.get("READTHEDOCS") else "/"
)

# Code blocks get a copy button that skips prompts (sphinx-copybutton).
copybutton_prompt_text = r"\$ |>>> "
copybutton_prompt_is_regexp = True

# The book's downloads in the sidebar (sphinx_essays.downloads): on Read the
# Docs, the PDF and the EPUB it built next to the site; elsewhere, the files
# `nox -s pdf` and `nox -s epub` built, copied into the site, or a note saying
# how to build them.
_downloads = html_baseurl.replace(
    urlsplit(html_baseurl).path, "/_/downloads" + urlsplit(html_baseurl).path
)
essays_downloads = (
    (
        ("PDF", _downloads + "pdf/", ""),
        ("EPUB", _downloads + "epub/", ""),
    )
    if os.environ.get("READTHEDOCS")
    else (
        ("PDF", "_build/pdf/infrastructure-essays.pdf", "nox -s pdf"),
        ("EPUB", "_build/epub/InfrastructureEssays.epub", "nox -s epub"),
    )
)

# -- EPUB --------------------------------------------------------------------

epub_title = project
epub_author = author
epub_publisher = author
epub_copyright = copyright
epub_show_urls = "no"
# The landing page's toctrees are hidden on the site (the sidebar shows
# them); the EPUB's table of contents must include them.
epub_tocscope = "includehidden"
epub_exclude_files = ["_static/benchmarks.pdf", "sitemap.xml"]

# -- LaTeX / PDF -------------------------------------------------------------

latex_engine = "xelatex"
latex_documents = [
    (
        "index",
        "infrastructure-essays.tex",
        "Infrastructure Essays",
        author,
        "manual",
    ),
]
latex_toplevel_sectioning = "part"
latex_show_urls = "no"
latex_elements = {
    "papersize": "a4paper",
    "pointsize": "11pt",
    # Diagrams float to the nearest place they fit, so the text runs on
    # rather than leaving the rest of a page blank.
    "figure_align": "htbp",
    "fontpkg": r"""
\setmainfont{FreeSerif}[Scale=1.0]
\setsansfont{FreeSans}
\setmonofont{FreeMono}
""",
    # The first toctree caption would otherwise name the table of contents.
    "preamble": r"""
\addto\captionsenglish{\renewcommand{\contentsname}{Contents}}
""",
}
