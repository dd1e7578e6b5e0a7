"""Hover and focus previews: a term's definition, a linked essay's summary,
a cited source's full reference.

When an HTML page is written, every ``{term}`` link, every link to another
essay and every ``{cite}`` is wrapped in ``<span class="kb-ref kb-ref-N">``,
and the page gets a hidden ``kb-preview-N`` block: the term's definition
(copied from the glossary), the essay's title and summary, or each cited
source's full reference, kind, "checked on" date and a link to it.
``essays-previews.js`` points each link's ``aria-describedby`` at its block,
so screen readers announce it, and shows it in a tooltip on hover, on
keyboard focus and on a first tap on touch screens. Everything is in the
page: no request, no external script.

The copied definitions are resolved as part of *this* page, so the links inside
a preview work wherever the page is (the bug in sphinx-tippy#32). A term
defined on the page itself (the glossary's "See also" links) is not copied:
its link is wrapped in ``kb-ref-here``, the term's definition gets an id, and
the script shows that definition. On the real site's glossary the copies
were a quarter of the page.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from docutils import nodes
from sphinx import addnodes
from sphinx.transforms.post_transforms import SphinxPostTransform

from sphinx_essays import config as essays_config
from sphinx_essays import sources
from sphinx_essays.domain import get_domain
from sphinx_essays.metadata import is_essay
from sphinx_essays.relations import is_citation, link_target, normalise
from sphinx_essays.sources import cited_keys

if TYPE_CHECKING:
    from sphinx.application import Sphinx


class AddPreviews(SphinxPostTransform):
    """Wrap term and essay links, and add their hidden preview blocks."""

    default_priority = 5  # before references are resolved, so previews resolve
    formats = ("html",)

    def run(self, **kwargs: Any) -> None:
        env = self.env
        docname = env.docname
        domain = get_domain(env)
        root = essays_config.from_sphinx(self.config).root
        definitions = domain.derived("previews", self._definitions)
        previews: dict[tuple[str, str], int] = {}
        missing: set[tuple[str, str]] = set()
        here = self._defined_here()
        blocks = nodes.container(classes=["kb-previews"])
        for xref in list(self.document.findall(addnodes.pending_xref)):
            key = self._key(xref, docname)
            if key is None or key in missing:
                continue
            if key[0] == "term" and key[1] in here:
                wrapper = nodes.inline(classes=["kb-ref", "kb-ref-here"])
                xref.parent.replace(xref, wrapper)
                wrapper += xref
                continue
            if key not in previews:
                content = self._content(key, definitions, root)
                if content is None:
                    missing.add(key)
                    continue
                number = previews[key] = len(previews) + 1
                block = nodes.container(
                    ids=[f"kb-preview-{number}"], classes=["kb-preview"]
                )
                block.extend(self._prepare(content, docname))
                blocks += block
            wrapper = nodes.inline(classes=["kb-ref", f"kb-ref-{previews[key]}"])
            # Not replace_self(), which would copy the link's ids onto the
            # wrapper: a cited link keeps its id, and ids must stay unique.
            xref.parent.replace(xref, wrapper)
            wrapper += xref
        if previews:
            self.document += blocks

    def _defined_here(self) -> set[str]:
        """The terms this page's own glossary defines, keyed as Sphinx compares
        them. Each definition gets an id (its term's, plus ``-definition``),
        which a link to the term in this page is described by."""
        found: set[str] = set()
        for glossary in self.document.findall(addnodes.glossary):
            for item in glossary.findall(nodes.definition_list_item):
                terms = list(item.findall(nodes.term))
                definition = item.next_node(nodes.definition)
                if not terms or definition is None or not terms[0]["ids"]:
                    continue
                definition["ids"].append(f"{terms[0]['ids'][0]}-definition")
                found.update(normalise(term.astext()) for term in terms)
        return found

    @staticmethod
    def _key(xref: addnodes.pending_xref, docname: str) -> tuple[str, str] | None:
        """What *xref* previews: a term, an essay or the sources it cites."""
        if is_citation(xref):
            return ("cite", ",".join(cited_keys(xref)))
        kind = xref.get("reftype")
        if kind == "term":
            return ("term", normalise(xref["reftarget"]))
        if kind == "doc":
            return ("doc", link_target(xref, xref.get("refdoc", docname)))
        return None

    def _content(
        self,
        key: tuple[str, str],
        definitions: dict[str, list[nodes.Node]],
        root: str,
    ) -> list[nodes.Node] | None:
        kind, target = key
        if kind == "term":
            return definitions.get(target)
        if kind == "cite":
            return sources.preview(self.env, target.split(","))
        record = get_domain(self.env).essays.get(target)
        if is_essay(target, root) and record and "title" in record:
            return [
                self._heading(record["title"]),
                nodes.paragraph("", record["summary"]),
            ]
        return None

    def _definitions(self) -> dict[str, list[nodes.Node]]:
        """Each glossary term's heading and definition body, keyed as Sphinx
        compares terms. The nodes are the glossary's own, read once per
        build: :meth:`_prepare` copies only those a page uses."""
        found: dict[str, list[nodes.Node]] = {}
        for glossary_doc in sorted(get_domain(self.env).glossary):
            doctree = self.env.get_doctree(glossary_doc)
            for xref in doctree.findall(addnodes.pending_xref):
                if xref.get("reftype") == "doc":
                    xref["reftarget"] = "/" + link_target(xref, glossary_doc)
            for item in doctree.findall(nodes.definition_list_item):
                definition = item.next_node(nodes.definition)
                if definition is None:
                    continue
                for term in item.findall(nodes.term):
                    body: list[nodes.Node] = [self._heading(term.astext())]
                    body += definition.children
                    found.setdefault(normalise(term.astext()), body)
        return found

    @staticmethod
    def _heading(text: str) -> nodes.paragraph:
        return nodes.paragraph(
            "", "", nodes.strong("", text), classes=["kb-preview-title"]
        )

    @staticmethod
    def _prepare(content: list[nodes.Node], docname: str) -> list[nodes.Node]:
        """Copies of *content* whose ids are dropped and links belong to *docname*."""
        prepared = []
        for original in content:
            node = original.deepcopy()
            for element in node.findall(nodes.Element):
                element["ids"] = []
                if isinstance(element, addnodes.pending_xref):
                    element["refdoc"] = docname
            prepared.append(node)
        return prepared


def setup(app: Sphinx) -> None:
    app.add_css_file("essays-previews.css")
    app.add_js_file("essays-previews.js", loading_method="defer")
    app.add_post_transform(AddPreviews)
