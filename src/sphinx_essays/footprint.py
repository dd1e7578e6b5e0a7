"""Memory that stays in proportion to one page, not to the whole site.

Sphinx keeps the pickled bytes of every doctree it loads for the write phase
(``BuildEnvironment._pickled_doctree_cache``) until the build ends, so that a
second :meth:`~sphinx.environment.BuildEnvironment.get_doctree` of the same
page need not read the file again. In a parallel build the main process loads
every page this way, so the cache ends up holding the whole site's doctrees:
about 100 KB a page, or a gigabyte at 10,000 essays. Nothing reads a page's
doctree again once the page is resolved, so this module drops its bytes then.
A later read of the same page, if any, loads the file from disk again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from docutils import nodes
    from sphinx.application import Sphinx


def _release(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    # A private attribute of Sphinx (since 7.2); getattr keeps this a no-op
    # should a later Sphinx drop it.
    cache = getattr(app.env, "_pickled_doctree_cache", None)
    if cache is not None:
        cache.pop(docname, None)


def setup(app: Sphinx) -> None:
    # Last, after every other handler has used the resolved page.
    app.connect("doctree-resolved", _release, priority=900)
