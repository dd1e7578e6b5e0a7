"""The block under each essay's title: its summary, topic and date.

It is inserted into the doctree when the essay is read, so the HTML, the
LaTeX/PDF and the search index all carry it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from docutils import nodes
from sphinx import addnodes

from sphinx_essays import config as essays_config
from sphinx_essays.domain import EssayDomain

if TYPE_CHECKING:
    from sphinx.application import Sphinx


def build_header(
    docname: str, record: dict[str, object], topic_page: str | None
) -> nodes.container:
    """Return the header container for one essay's *record*.

    *topic_page* is the docname of the topic's page, or ``None`` when the site
    has no such page, in which case the topic is shown without a link.
    """
    topic = str(record["topic"])
    summary = nodes.paragraph(classes=["essay-summary"])
    summary += nodes.Text(str(record["summary"]))

    topic_label: nodes.Node = nodes.inline("", topic.capitalize())
    if topic_page is not None:
        topic_label = addnodes.pending_xref(
            "",
            topic_label,
            refdomain="std",
            reftype="doc",
            reftarget=f"/{topic_page}",
            refexplicit=True,
            refdoc=docname,
        )
    facts = nodes.paragraph(classes=["essay-facts"])
    facts += nodes.Text("Topic: ")
    facts += topic_label
    facts += nodes.Text(f" · Added {record['date']}")

    header = nodes.container(classes=["essay-header"])
    header += summary
    header += facts
    return header


def _insert_header(app: Sphinx, doctree: nodes.document) -> None:
    domain = app.env.domains[EssayDomain.name]
    assert isinstance(domain, EssayDomain)
    docname = app.env.docname
    record = domain.essays.get(docname)
    if record is None or "title" not in record:
        return
    section = next(iter(doctree.findall(nodes.section)))
    root = essays_config.from_sphinx(app.config).root
    topic_page: str | None = f"{root}/{record['topic']}/index"
    if topic_page not in app.env.found_docs:
        topic_page = None
    section.insert(1, build_header(docname, record, topic_page))


def setup(app: Sphinx) -> None:
    app.connect("doctree-read", _insert_header, priority=600)
