"""Sphinx configuration for Infrastructure Essays.

Importing this file never touches the network: every theme asset, script and
font is served from the build itself.
"""

from __future__ import annotations

import os

# -- Project -----------------------------------------------------------------

project = "Infrastructure Essays"
author = "The Infrastructure Essays authors"
copyright = "2026, The Infrastructure Essays authors"
language = "en"

# -- Extensions --------------------------------------------------------------

extensions = [
    "myst_parser",
    "sphinx_design",
    "sphinx.ext.graphviz",
    "sphinx_essays",
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
html_last_updated_fmt = None
html_copy_source = False
html_show_sourcelink = False
html_theme_options = {
    "navigation_with_keys": True,
}

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
    # Diagrams stay next to the text that discusses them.
    "figure_align": "H",
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
