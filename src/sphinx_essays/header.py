"""The block under each essay's title: summary, topic, tags, date, reading time.

It is inserted into the doctree when the essay is read, so the HTML, the
LaTeX/PDF and the search index all carry it. Tags are :class:`tag_ref` nodes:
the HTML writer links each to its entry in the tag index
(``essay-tags.html#cap-<tag>``); other writers print it as plain text.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any

from docutils import nodes
from sphinx import addnodes

from sphinx_essays import config as essays_config
from sphinx_essays.domain import get_domain

if TYPE_CHECKING:
    from sphinx.application import Sphinx
    from sphinx.writers.html5 import HTML5Translator


class tag_ref(nodes.inline):
    """A tag in an essay header, resolved per output format when written."""


def doc_link(fromdoc: str, todoc: str, text: str) -> addnodes.pending_xref:
    """A link to *todoc* that Sphinx resolves for every builder."""
    return addnodes.pending_xref(
        "",
        nodes.inline("", text),
        refdomain="std",
        reftype="doc",
        reftarget=f"/{todoc}",
        refexplicit=True,
        refdoc=fromdoc,
    )


def build_header(
    docname: str, record: dict[str, Any], topic_page: str | None, minutes: int
) -> nodes.container:
    """Return the header container for one essay's *record*.

    *topic_page* is the docname of the topic's page, or ``None`` when the site
    has no such page, in which case the topic is shown without a link.
    """
    topic = str(record["topic"])
    summary = nodes.paragraph(classes=["essay-summary"])
    summary += nodes.Text(str(record["summary"]))

    facts = nodes.paragraph(classes=["essay-facts"])
    facts += nodes.inline("", "Topic: ", classes=["essay-label"])
    if topic_page is not None:
        facts += doc_link(docname, topic_page, topic.capitalize())
    else:
        facts += nodes.inline("", topic.capitalize())
    facts += nodes.Text(" · ")
    facts += nodes.inline("", "Tags: ", classes=["essay-label"])
    for position, tag in enumerate(record["tags"]):
        if position:
            facts += nodes.Text(", ")
        facts += tag_ref("", tag, tag=tag)
    facts += nodes.Text(f" · Added {record['date']} · {minutes} min read")

    header = nodes.container(classes=["essay-header"], essay=docname)
    if record.get("status") == "draft":
        # Only builds with essays_drafts on have drafts (sphinx_essays.drafts).
        header += nodes.paragraph(
            "",
            "",
            nodes.inline("", "Draft", classes=["essay-draft-badge"]),
            classes=["essay-draft"],
        )
    header += summary
    header += facts
    return header


def essay_headers(document: nodes.Node) -> list[nodes.container]:
    """The header of each essay in *document* (several in the LaTeX book)."""
    return [
        node
        for node in document.findall(nodes.container)
        if "essay-header" in node["classes"]
    ]


def append_to_essay(header: nodes.container, node: nodes.Node) -> None:
    """Add *node* at the end of the essay that *header* opens."""
    section = header.parent
    assert isinstance(section, nodes.Element)
    section += node


def _insert_header(app: Sphinx, doctree: nodes.document) -> None:
    docname = app.env.docname
    record = get_domain(app.env).essays.get(docname)
    if record is None or "title" not in record:
        return
    settings = essays_config.from_sphinx(app.config)
    topic_page: str | None = f"{settings.root}/{record['topic']}/index"
    if topic_page not in app.env.found_docs:
        topic_page = None
    section = next(iter(doctree.findall(nodes.section)))
    section.insert(1, build_header(docname, record, topic_page, record["minutes"]))


def visit_tag_ref_html(self: HTML5Translator, node: tag_ref) -> None:
    """Link the tag to its entry in the tag index, when that index is built."""
    builder = self.builder
    if not builder.config.html_domain_indices:
        return
    uri = builder.get_relative_uri(builder.current_docname, "essay-tags")
    href = f"{uri}#cap-{node['tag']}"
    self.body.append(f'<a class="essay-tag reference internal" href="{escape(href)}">')


def depart_tag_ref_html(self: HTML5Translator, node: tag_ref) -> None:
    if self.builder.config.html_domain_indices:
        self.body.append("</a>")


def visit_tag_ref_text(self: object, node: tag_ref) -> None:
    """Other formats show the tag as plain text."""


def setup(app: Sphinx) -> None:
    plain = (visit_tag_ref_text, visit_tag_ref_text)
    app.add_node(
        tag_ref,
        html=(visit_tag_ref_html, depart_tag_ref_html),
        latex=plain,
        text=plain,
        man=plain,
        texinfo=plain,
    )
    app.connect("doctree-read", _insert_header, priority=600)
