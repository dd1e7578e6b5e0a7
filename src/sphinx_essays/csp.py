"""A site that works under a strict Content Security Policy.

The site is tested under ``default-src 'none'; script-src 'self'; style-src
'self'; ...``: no inline script, no ``<style>`` block and no ``style``
attribute may reach a page. Furo and Sphinx's index templates use all three,
so ``templates/`` overrides them (``base.html``, ``partials/icons.html``,
``genindex.html``, ``domainindex.html``), and this module supplies what the
overrides link instead:

* ``essays-theme.js``: sets the reader's colour scheme, as furo's inline
  script did;
* ``essays-theme.css``: hides the icon sprite and lays out the general
  index, as the style attributes did;
* ``essays-theme-variables.css``: furo's CSS variables (its theme options
  and Pygments colours), which furo writes into a ``<style>`` block of every
  page. They are rendered from furo's own template once a page's context is
  known, and written when the build finishes.

Diagrams are inline SVG for the same reason (:mod:`sphinx_essays.diagrams`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from sphinx_essays.domain import get_domain

if TYPE_CHECKING:
    from docutils import nodes
    from sphinx.application import Sphinx

#: Furo's template that writes the ``<style>`` block.
VARIABLES_TEMPLATE = "partials/_head_css_variables.html"
VARIABLES_CSS = "essays-theme-variables.css"
STYLE_TAGS = re.compile(r"</?style>")


def _capture_variables(
    app: Sphinx,
    pagename: str,
    templatename: str,
    context: dict[str, Any],
    doctree: nodes.document | None,
) -> None:
    """Render furo's CSS variables with the first page context of the build."""
    if "furo_pygments" not in context:
        return
    domain = get_domain(app.env)

    def render() -> str:
        html = app.builder.templates.render(VARIABLES_TEMPLATE, context)
        lines = STYLE_TAGS.sub("", html).splitlines()
        return "".join(f"{line.rstrip()}\n" for line in lines if line.strip())

    domain.derived("theme-variables", render)


def _write_variables(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    css = get_domain(app.env).derived("theme-variables", lambda: None)
    if css is None:
        return  # nothing was written: the file of the last build still holds
    target = app.builder.outdir / "_static" / VARIABLES_CSS
    if not target.is_file() or target.read_text(encoding="utf-8") != css:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(css, encoding="utf-8")


def setup(app: Sphinx) -> None:
    app.add_css_file("essays-theme.css")
    app.add_css_file("essays-print.css", media="print")
    app.connect("html-page-context", _capture_variables, priority=900)
    app.connect("build-finished", _write_variables)
