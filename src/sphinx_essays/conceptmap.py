"""The concept map: every essay as a node, coloured by topic, linked as they link.

``{concept-map}`` places the whole map; each essay also gets its own
neighbourhood (the essays it links and the essays that link it) after its
"Referenced by" list. Both are Graphviz diagrams generated from the domain
when the page is written: a clickable SVG in HTML (with the summary as each
node's tooltip) and a vector figure in the PDF, where the nodes carry no URLs.
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING, Any

from docutils import nodes
from sphinx.ext.graphviz import graphviz
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util.docutils import SphinxDirective

from sphinx_essays.diagrams import ESSAY_SCHEME
from sphinx_essays.domain import get_domain
from sphinx_essays.header import append_to_essay, essay_headers

if TYPE_CHECKING:
    from sphinx.application import Sphinx

#: Fill colours per topic, in the order of ``essays_topics``; they cycle.
PALETTE = ("#cfe2f3", "#d9ead3", "#f4cccc", "#fff2cc", "#e6d7f2", "#d0e0e3")


class concept_map(nodes.General, nodes.Element):
    """Where the whole concept map goes; replaced when the page is written."""


class ConceptMapDirective(SphinxDirective):
    """Place the concept map of every essay."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        get_domain(self.env).note_listing(self.env.docname)
        node = concept_map(docname=self.env.docname)
        self.set_source_info(node)
        return [node]


def quote(text: str) -> str:
    """*text* as a DOT double-quoted string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def dot_source(
    name: str,
    essays: dict[str, dict[str, Any]],
    edges: list[tuple[str, str]],
    topics: tuple[str, ...],
    urls: dict[str, str] | None,
    focus: str | None = None,
) -> str:
    """A DOT graph of *essays* and *edges*; *urls* make nodes clickable."""
    colours = {topic: PALETTE[i % len(PALETTE)] for i, topic in enumerate(topics)}
    lines = [
        f"digraph {name} {{",
        '  graph [rankdir=LR, fontname="Helvetica", nodesep=0.3, ranksep=0.6];',
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", '
        'fontsize=11, color="#555555"];',
        '  edge [color="#777777", arrowsize=0.7];',
    ]
    for topic in topics:
        members = sorted(d for d, r in essays.items() if r["topic"] == topic)
        if not members:
            continue
        lines.append(f"  subgraph cluster_{topic.replace('-', '_')} {{")
        lines.append(
            f'    label={quote(topic.capitalize())}; style="rounded,dashed"; '
            'color="#999999"; fontname="Helvetica"; fontsize=12;'
        )
        for docname in members:
            record = essays[docname]
            label = "\\n".join(textwrap.wrap(record["title"], 28)).replace('"', '\\"')
            attrs = [
                f'label="{label}"',
                f"fillcolor={quote(colours[topic])}",
                f"tooltip={quote(record['summary'])}",
            ]
            if docname == focus:
                attrs.append("penwidth=2.5")
            if urls is not None and docname in urls:
                attrs.append(f"URL={quote(urls[docname])}")
                attrs.append('target="_top"')
            lines.append(f"    {quote(docname)} [{', '.join(attrs)}];")
        lines.append("  }")
    for source, target in edges:
        lines.append(f"  {quote(source)} -> {quote(target)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def diagram(
    code: str, docname: str, alt: str, caption: str, figure_id: str
) -> nodes.figure:
    """A figure holding a graphviz node, as sphinx.ext.graphviz makes them."""
    node = graphviz()
    node["code"] = code
    node["options"] = {"docname": docname}
    node["alt"] = alt
    figure = nodes.figure("", node, classes=["essay-map"], ids=[figure_id])
    figure += nodes.caption("", caption)
    return figure


class RenderConceptMaps(SphinxPostTransform):
    """Draw the whole map and each essay's neighbourhood, without links (PDF)."""

    default_priority = 6
    with_urls = False

    def run(self, **kwargs: Any) -> None:
        domain = get_domain(self.env)
        relations = domain.relations()
        essays = relations.essays
        topics = tuple(self.config.essays_topics)
        edges = relations.edges
        with_urls = self.with_urls
        for node in list(self.document.findall(concept_map)):
            docname = node["docname"]
            urls = self._urls(essays) if with_urls else None
            code = dot_source("concept_map", essays, edges, topics, urls)
            alt = (
                f"Concept map of {len(essays)} essays grouped by topic, with an "
                f"arrow for each of the {len(edges)} links between them."
            )
            node.replace_self(
                diagram(
                    code,
                    docname,
                    alt,
                    "Every essay, coloured by topic; an arrow points from an "
                    "essay to one it links.",
                    "concept-map-figure",
                )
            )
        for header in essay_headers(self.document):
            if header.get("mapped"):
                continue
            header["mapped"] = True
            focus = header["essay"]
            near = {focus} | relations.neighbours(focus)
            if len(near) == 1:
                continue
            local_edges = relations.local_edges(focus)
            local = {d: essays[d] for d in near}
            urls = self._urls(local) if with_urls else None
            code = dot_source("neighbourhood", local, local_edges, topics, urls, focus)
            box = nodes.container(classes=["essay-neighbourhood"])
            box += nodes.rubric("", "Neighbourhood")
            box += diagram(
                code,
                focus,
                f"This essay and the {len(near) - 1} "
                f"essay{'s' if len(near) != 2 else ''} it links or that link it.",
                "The essays this one links, and the essays that link it.",
                "essay-neighbourhood",
            )
            append_to_essay(header, box)

    @staticmethod
    def _urls(essays: dict[str, Any]) -> dict[str, str]:
        """Each node links ``essay:<docname>``; the HTML writer turns that
        into a URL relative to the page (:func:`diagrams.resolve_links`), so
        one drawing serves every page and every HTML builder."""
        return {d: ESSAY_SCHEME + d for d in essays}


class RenderClickableConceptMaps(RenderConceptMaps):
    """In HTML, the same diagrams with each node linking its essay."""

    default_priority = 5
    formats = ("html",)
    with_urls = True


def setup(app: Sphinx) -> None:
    app.setup_extension("sphinx.ext.graphviz")
    app.add_node(concept_map)
    app.add_directive("concept-map", ConceptMapDirective)
    app.add_post_transform(RenderClickableConceptMaps)
    app.add_post_transform(RenderConceptMaps)
