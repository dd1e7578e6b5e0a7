"""Code blocks and tables that scroll sideways can be scrolled by keyboard.

A ``<pre>`` or a furo table wrapper wider than the column scrolls, and a
reader without a mouse can only scroll what can take focus (WCAG 2.1.1; axe
rule ``scrollable-region-focusable``). The HTML visitors of literal blocks and
containers are wrapped to add ``tabindex="0"`` to each highlighted ``<pre>``
and each ``table-wrapper`` or ``math-wrapper`` container; essays-theme.css
shows their focus.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from docutils import nodes
from sphinx.writers.html5 import HTML5Translator

if TYPE_CHECKING:
    from sphinx.application import Sphinx

#: Furo's wrappers (``WrapTableAndMathInAContainerTransform``) scroll.
SCROLLING = {"table-wrapper", "math-wrapper"}


def visit_literal_block(self: HTML5Translator, node: nodes.literal_block) -> None:
    length = len(self.body)
    try:
        HTML5Translator.visit_literal_block(self, node)
    except nodes.SkipNode:
        if len(self.body) > length:
            self.body[-1] = self.body[-1].replace("<pre>", '<pre tabindex="0">', 1)
        raise


def depart_literal_block(self: HTML5Translator, node: nodes.literal_block) -> None:
    HTML5Translator.depart_literal_block(self, node)


def visit_container(self: HTML5Translator, node: nodes.container) -> None:
    length = len(self.body)
    HTML5Translator.visit_container(self, node)
    if SCROLLING & set(node["classes"]) and len(self.body) > length:
        tag = self.body[-1]
        self.body[-1] = tag.replace(">", ' tabindex="0">', 1)


def depart_container(self: HTML5Translator, node: nodes.container) -> None:
    HTML5Translator.depart_container(self, node)


def setup(app: Sphinx) -> None:
    app.add_node(
        nodes.literal_block,
        override=True,
        html=(visit_literal_block, depart_literal_block),
    )
    app.add_node(
        nodes.container, override=True, html=(visit_container, depart_container)
    )
