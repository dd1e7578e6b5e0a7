"""A build holds one page's doctree at a time, not the whole site's."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from sphinx.testing.util import SphinxTestApp


@pytest.mark.sphinx("html", testroot="essays-site", freshenv=True, parallel=2)
def test_a_parallel_build_keeps_no_essay_doctree(app: SphinxTestApp) -> None:
    app.build()
    # The main process loaded and resolved every page; workers wrote them.
    assert app.builder.parallel_ok
    essays = set(app.env.domains["essay"].essays)
    assert len(essays) >= 4
    assert all((app.outdir / f"{name}.html").is_file() for name in essays)
    assert not essays & set(app.env._pickled_doctree_cache)
