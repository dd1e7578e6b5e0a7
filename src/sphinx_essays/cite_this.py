""" "Cite this essay": a ready BibTeX entry at the end of every essay.

The entry names the essay's title, the knowledge base's authors, the
knowledge base itself, the year the essay entered it and its stable address
(``html_baseurl`` plus the page), so a reader can cite an essay as the essays
cite their own sources. It is a code block, so sphinx-copybutton gives it a
copy button. Web pages only: a reader of the book cites the book.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from docutils import nodes

from sphinx_essays.domain import get_domain
from sphinx_essays.header import append_to_essay, essay_headers

if TYPE_CHECKING:
    from sphinx.application import Sphinx

#: Characters that mean something to BibTeX or LaTeX inside a field.
SPECIAL = re.compile(r"([\\{}%&#$_^~])")


def bibtex_text(value: str) -> str:
    """*value* as literal text inside a braced BibTeX field."""
    return SPECIAL.sub(r"\\\1", " ".join(value.split()))


def entry(
    docname: str, record: dict[str, Any], authors: str, site: str, url: str
) -> str:
    """The BibTeX entry that cites the essay *docname*."""
    slug = docname.rsplit("/", 1)[-1]
    key = f"{re.sub(r'[^a-z0-9]+', '-', site.lower()).strip('-')}-{slug}"
    fields = [
        ("author", "{" + bibtex_text(authors) + "}"),
        ("title", bibtex_text(record["title"])),
        ("howpublished", bibtex_text(site)),
        ("year", record["date"][:4]),
        ("url", url),
        ("note", f"Added {record['date']}"),
    ]
    body = "".join(f"  {name} = {{{value}}},\n" for name, value in fields)
    return f"@misc{{{key},\n{body}}}\n"


def _add_cite_this(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """Append "Cite this essay" to each essay of a web page (after every
    post-transform, so it is the last block of the essay)."""
    if app.builder.format != "html":
        return
    config = app.config
    essays = get_domain(app.env).essays
    base = (config.html_baseurl or "").rstrip("/") + "/"
    for header in essay_headers(doctree):
        essay = header["essay"]
        url = base + app.builder.get_target_uri(essay)
        text = entry(essay, essays[essay], config.author, config.project, url)
        box = nodes.container(classes=["essay-cite-this"])
        box += nodes.rubric("", "Cite this essay")
        box += nodes.literal_block(text, text, language="bibtex")
        append_to_essay(header, box)


def setup(app: Sphinx) -> None:
    app.connect("doctree-resolved", _add_cite_this)
