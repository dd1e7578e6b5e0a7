"""Site navigation that works for every builder.

The HTML navigation lists the generated pages (``genindex``, ``search``) in a
toctree so a reader can reach them from the sidebar. Other builders have no
such pages: the LaTeX builder prints its own index and has no search, and it
would warn that the toctree "contains ref to nonexisting file". For those
builders the generated entries are dropped from each toctree when it is read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sphinx import addnodes

if TYPE_CHECKING:
    from docutils import nodes
    from sphinx.application import Sphinx

#: Pages that only HTML builders generate.
HTML_ONLY_PAGES = frozenset({"genindex", "modindex", "py-modindex", "search"})


def _drop_html_only_entries(app: Sphinx, doctree: nodes.document) -> None:
    if app.builder.format == "html":
        return
    for toctree in doctree.findall(addnodes.toctree):
        toctree["entries"] = [
            (title, ref)
            for title, ref in toctree["entries"]
            if ref not in HTML_ONLY_PAGES
        ]
        toctree["includefiles"] = [
            ref for ref in toctree["includefiles"] if ref not in HTML_ONLY_PAGES
        ]


def setup(app: Sphinx) -> None:
    app.connect("doctree-read", _drop_html_only_entries)
