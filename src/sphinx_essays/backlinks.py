""" "Referenced by": every essay lists the essays that link to it, in context.

When an essay is read, each link to another essay gets an invisible anchor,
and the sentence that holds the link is stored with the essay's record in the
domain (``mentions``). When the linked essay is written, its "Referenced by"
section lists each mention: the linking essay's title, which jumps to the exact
spot, and the sentence. In the PDF each entry also gives the page number.

Nothing is kept by hand: the list is rebuilt from the doctrees, and
:mod:`sphinx_essays.invalidation` rewrites an essay when its mentions change.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any

from docutils import nodes
from sphinx import addnodes
from sphinx.transforms.post_transforms import SphinxPostTransform

from sphinx_essays import config as essays_config
from sphinx_essays.domain import get_domain
from sphinx_essays.header import append_to_essay, essay_headers
from sphinx_essays.metadata import is_essay
from sphinx_essays.relations import link_target, sentence_around

if TYPE_CHECKING:
    from sphinx.application import Sphinx
    from sphinx.writers.html5 import HTML5Translator
    from sphinx.writers.latex import LaTeXTranslator


class backlink(nodes.Inline, nodes.TextElement):
    """A link to an anchor in another essay, with its page number in LaTeX."""


def _note_mentions(app: Sphinx, doctree: nodes.document) -> None:
    """Anchor each link to another essay and store its sentence."""
    docname = app.env.docname
    record = get_domain(app.env).essays.get(docname)
    if record is None or "title" not in record:
        return
    root = essays_config.from_sphinx(app.config).root
    mentions: list[dict[str, Any]] = []
    for xref in list(doctree.findall(addnodes.pending_xref)):
        if xref.get("reftype") != "doc":
            continue
        target = link_target(xref, docname)
        if target == docname or not is_essay(target, root):
            continue
        paragraph = xref.parent
        while paragraph is not None and not isinstance(paragraph, nodes.paragraph):
            paragraph = paragraph.parent
        if paragraph is None:
            continue
        anchor = f"essay-mention-{len(mentions) + 1}"
        xref.parent.insert(xref.parent.index(xref), nodes.target("", "", ids=[anchor]))
        mentions.append(
            {
                "target": target,
                "anchor": anchor,
                "sentence": sentence_around(paragraph, xref),
            }
        )
    record["mentions"] = mentions


class AddBacklinks(SphinxPostTransform):
    """Append "Referenced by" to each essay that other essays link to."""

    default_priority = 4  # before related essays, so it comes first

    def run(self, **kwargs: Any) -> None:
        domain = get_domain(self.env)
        for header in essay_headers(self.document):
            docname = header["essay"]
            mentions = domain.relations().referenced_by(docname)
            if not mentions:
                continue
            box = nodes.container(classes=["essay-backlinks"])
            box += nodes.rubric("", "Referenced by")
            items = nodes.bullet_list()
            for source, mention in mentions:
                title = domain.essays[source]["title"]
                paragraph = nodes.paragraph()
                paragraph += backlink("", title, todoc=source, anchor=mention["anchor"])
                paragraph += nodes.Text(": ")
                paragraph += nodes.inline(
                    "", mention["sentence"], classes=["essay-backlink-context"]
                )
                items += nodes.list_item("", paragraph)
            box += items
            append_to_essay(header, box)


def visit_backlink_html(self: HTML5Translator, node: backlink) -> None:
    builder = self.builder
    uri = builder.get_relative_uri(builder.current_docname, node["todoc"])
    href = f"{uri}#{node['anchor']}"
    self.body.append(f'<a class="reference internal" href="{escape(href)}">')


def depart_backlink_html(self: HTML5Translator, node: backlink) -> None:
    self.body.append("</a>")


def visit_backlink_latex(self: LaTeXTranslator, node: backlink) -> None:
    label = self.idescape(f"{node['todoc']}:{node['anchor']}")
    self.body.append(r"\hyperref[" + label + "]{")


def depart_backlink_latex(self: LaTeXTranslator, node: backlink) -> None:
    label = self.idescape(f"{node['todoc']}:{node['anchor']}")
    self.body.append(r"} (page~\pageref{" + label + "})")


def _plain(self: object, node: backlink) -> None:
    """Other formats show the title as plain text."""


def setup(app: Sphinx) -> None:
    app.add_node(
        backlink,
        html=(visit_backlink_html, depart_backlink_html),
        latex=(visit_backlink_latex, depart_backlink_latex),
        text=(_plain, _plain),
        man=(_plain, _plain),
        texinfo=(_plain, _plain),
    )
    app.connect("doctree-read", _note_mentions, priority=450)
    app.add_post_transform(AddBacklinks)
