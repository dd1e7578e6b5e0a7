"""Graphviz diagrams drawn inline in HTML pages, as ``<svg>`` elements.

``sphinx.ext.graphviz`` shows an SVG diagram with ``<object data=...>``. Under
the site's Content Security Policy (``default-src 'none'``, no ``object-src``)
the browser refuses to load it, and a PNG would lose the links of the concept
map. So for SVG output the HTML visitor is replaced: the drawing is put in the
page itself, with

* its ids prefixed per diagram, so two diagrams on a page never share an id;
* its links relative to the page, since the SVG now lives in it: a node that
  links ``essay:<docname>`` gets the URL of that document for this builder
  (``.html`` on the site, ``.xhtml`` in the EPUB);
* an accessible name from the diagram's ``alt`` text: ``role="img"`` for a
  picture, ``role="group"`` for a diagram whose nodes are links, so the links
  stay reachable.

``dot`` runs once per distinct diagram: drawings are cached in the doctree
folder under a hash of the DOT source and the ``dot`` command line. LaTeX and
other builders keep Sphinx's own visitors.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from docutils import nodes
from sphinx.ext.graphviz import GraphvizError, graphviz, html_visit_graphviz
from sphinx.util import logging

if TYPE_CHECKING:
    from collections.abc import Callable

    from sphinx.application import Sphinx
    from sphinx.builders import Builder
    from sphinx.writers.html5 import HTML5Translator

logger = logging.getLogger(__name__)

#: The cache of drawings, inside the doctree folder.
CACHE = "essays-graphviz"

PROLOGUE = re.compile(r"\A.*?(?=<svg\b)", re.DOTALL)
COMMENT = re.compile(r"<!--.*?-->\n?", re.DOTALL)
ID = re.compile(r'\bid="([^"]*)"')
LOCAL_REF = re.compile(r'(href="#|url\(#)')
#: Diagram nodes may link ``essay:<docname>``: resolved per page and builder.
ESSAY_SCHEME = "essay:"
ESSAY_LINK = re.compile(r'(xlink:href|href)="essay:([^"]+)"')


def dot_command(builder: Builder, options: dict[str, Any]) -> list[str]:
    dot = options.get("graphviz_dot", builder.config.graphviz_dot)
    return [dot, *builder.config.graphviz_dot_args, "-Tsvg"]


def draw(builder: Builder, code: str, options: dict[str, Any]) -> str:
    """The SVG document ``dot`` draws for *code*, from the cache if drawn before."""
    command = dot_command(builder, options)
    key = hashlib.sha256("\0".join([*command, code]).encode()).hexdigest()
    cached = Path(builder.doctreedir) / CACHE / f"{key}.svg"
    if cached.is_file():
        return cached.read_text(encoding="utf-8")
    docname = options.get("docname", "index")
    try:
        done = subprocess.run(
            command,
            input=code.encode(),
            capture_output=True,
            cwd=(builder.srcdir / docname).parent,
            check=False,
        )
    except OSError as error:
        msg = (
            f"cannot run {command[0]!r} ({error.strerror}); install Graphviz "
            "(Debian: apt-get install graphviz) or set graphviz_dot"
        )
        raise GraphvizError(msg) from error
    if done.returncode != 0:
        msg = f"dot exited with status {done.returncode}: {done.stderr.decode()}"
        raise GraphvizError(msg)
    svg = done.stdout.decode("utf-8")
    cached.parent.mkdir(parents=True, exist_ok=True)
    # Parallel writers may draw the same diagram: each replaces the file whole.
    partial = cached.with_name(f"{key}.{os.getpid()}.tmp")
    partial.write_text(svg, encoding="utf-8")
    partial.replace(cached)
    return svg


def inline(
    svg: str, prefix: str, alt: str, resolve: Callable[[str], str] | None = None
) -> str:
    """*svg* made fit to sit inside an HTML page; see the module docstring.
    *resolve* turns the docname of an ``essay:`` link into a URL."""
    svg = COMMENT.sub("", PROLOGUE.sub("", svg, count=1)).strip()
    if resolve is not None:
        svg = ESSAY_LINK.sub(
            lambda m: f'{m.group(1)}="{escape(resolve(m.group(2)))}"', svg
        )
    svg = ID.sub(lambda m: f'id="{prefix}{m.group(1)}"', svg)
    svg = LOCAL_REF.sub(lambda m: m.group(1) + prefix, svg)
    role = "group" if "<a " in svg else "img"
    return svg.replace("<svg ", f'<svg role="{role}" aria-label="{escape(alt)}" ', 1)


def visit_graphviz_html(self: HTML5Translator, node: graphviz) -> None:
    if self.builder.config.graphviz_output_format != "svg":
        html_visit_graphviz(self, node)  # raises SkipNode
    code = node["code"]
    try:
        svg = draw(self.builder, code, node["options"])
    except GraphvizError as error:
        logger.warning("dot code %r: %s", code, error, location=node)
        raise nodes.SkipNode from error
    # One translator writes one page: count the page's diagrams on it.
    number = getattr(self, "_essays_diagrams", 0) + 1
    self._essays_diagrams = number  # type: ignore[attr-defined]
    alt = node.get("alt") or "Diagram"
    classes = " ".join(["graphviz", *node.get("classes", [])])
    if "align" in node:
        self.body.append(f'<div class="align-{escape(node["align"])}">')
    builder = self.builder
    here = builder.current_docname
    if builder.name == "epub":
        self.body.append(_epub_image(self, svg, alt, classes))
        raise nodes.SkipNode

    def resolve(docname: str) -> str:
        return builder.get_relative_uri(here, docname)

    drawing = inline(svg, f"g{number}-", alt, resolve)
    self.body.append(f'<div class="{escape(classes)}">{drawing}</div>\n')
    if "align" in node:
        self.body.append("</div>\n")
    raise nodes.SkipNode


ANCHOR_TAGS = re.compile(r"</?a\b[^>]*>")


def _epub_image(self: HTML5Translator, svg: str, alt: str, classes: str) -> str:
    """An EPUB gets the drawing as an image file: EPUB readers support SVG
    links poorly, and inline SVG needs manifest properties Sphinx does not
    write. Links are dropped; the prologue's external DTD is not allowed."""
    drawing = ANCHOR_TAGS.sub("", COMMENT.sub("", PROLOGUE.sub("", svg, count=1)))
    drawing = '<?xml version="1.0" encoding="UTF-8"?>\n' + drawing.strip() + "\n"
    name = f"graphviz-{hashlib.sha256(drawing.encode()).hexdigest()[:40]}.svg"
    folder = Path(self.builder.outdir) / self.builder.imagedir
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(drawing, encoding="utf-8")
    src = f"{self.builder.imgpath}/{name}"
    return (
        f'<div class="{escape(classes)}"><img src="{escape(src)}" '
        f'alt="{escape(alt)}" /></div>\n'
    )


def setup(app: Sphinx) -> None:
    app.setup_extension("sphinx.ext.graphviz")
    app.add_node(graphviz, override=True, html=(visit_graphviz_html, None))
