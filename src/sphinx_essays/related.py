""" "Related essays" at the end of every essay.

The ranking lives in :meth:`EssayDomain.related`: shared tags, shared glossary
terms and links in either direction, with ties broken by title, so it is the
same on every build. The list is added when the page is written, because it
depends on other essays; :mod:`sphinx_essays.invalidation` rewrites the page
when its list changes, so incremental builds stay correct.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from docutils import nodes
from sphinx.transforms.post_transforms import SphinxPostTransform

from sphinx_essays import config as essays_config
from sphinx_essays.domain import get_domain
from sphinx_essays.header import append_to_essay, doc_link, essay_headers

if TYPE_CHECKING:
    from sphinx.application import Sphinx


class AddRelatedEssays(SphinxPostTransform):
    """Append the related essays to each essay's section."""

    default_priority = 7  # after backlinks and maps, before references resolve

    def run(self, **kwargs: Any) -> None:
        domain = get_domain(self.env)
        count = essays_config.from_sphinx(self.config).related_count
        for header in essay_headers(self.document):
            docname = header["essay"]
            related = domain.related(docname, count)
            if not related:
                continue
            box = nodes.container(classes=["essay-related"])
            box += nodes.rubric("", "Related essays")
            items = nodes.bullet_list()
            for other, reasons in related:
                paragraph = nodes.paragraph()
                title = domain.essays[other]["title"]
                paragraph += doc_link(docname, other, title)
                paragraph += nodes.Text(f" ({'; '.join(reasons)})")
                items += nodes.list_item("", paragraph)
            box += items
            append_to_essay(header, box)


def setup(app: Sphinx) -> None:
    app.add_post_transform(AddRelatedEssays)
