"""``llms.txt`` and ``llms-full.txt``: the knowledge base for machine readers.

``llms.txt`` follows the llms.txt proposal (https://llmstxt.org/): the site's
name as a heading, its description as a quote, then one section per topic
listing each essay as a Markdown link with its summary, and a section for
the reference pages. ``llms-full.txt`` adds the text of every essay, in the
MyST Markdown it was written in, without its front matter.

Both are written from the essay domain at the end of a website build, in a
fixed order (topic, then title), so the same sources give the same bytes.
sphinx-llms-txt was considered: it copies whole pages without summaries and
needs ``_sources``, which this site does not publish.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sphinx_essays import config as essays_config
from sphinx_essays.book import on_the_web
from sphinx_essays.domain import get_domain
from sphinx_essays.social import topic_label

if TYPE_CHECKING:
    from sphinx.application import Sphinx

#: Written pages listed under "Reference" after the essays, if the site has them.
REFERENCE_PAGES = ("glossary", "references")


def _url(app: Sphinx, docname: str) -> str:
    base = str(app.config.html_baseurl).rstrip("/") + "/"
    return base + app.builder.get_target_uri(docname)


def _essays_by_topic(app: Sphinx) -> list[tuple[str, list[tuple[str, dict[str, Any]]]]]:
    essays = get_domain(app.env).essays
    topics = essays_config.from_sphinx(app.config).topics
    grouped = []
    for topic in topics:
        members = sorted(
            # An essay without a title has already failed the build's checks.
            (
                (d, r)
                for d, r in essays.items()
                if r["topic"] == topic and r.get("title")
            ),
            key=lambda item: (item[1]["title"].casefold(), item[0]),
        )
        if members:
            grouped.append((topic, members))
    return grouped


def index_text(app: Sphinx) -> str:
    """The text of ``llms.txt``."""
    essays = essays_config.from_sphinx(app.config)
    description = essays.book_subtitle or app.config.project
    lines = [f"# {app.config.project}", "", f"> {description}", ""]
    for topic, members in _essays_by_topic(app):
        lines.append(f"## {topic_label(app, topic)}")
        lines.append("")
        for docname, record in members:
            lines.append(
                f"- [{record['title']}]({_url(app, docname)}): {record['summary']}"
            )
        lines.append("")
    reference = [
        (app.env.titles[page].astext(), page)
        for page in REFERENCE_PAGES
        if page in app.env.titles
    ]
    domain = get_domain(app.env)
    reference += [
        (str(index.localname), f"{domain.name}-{index.name}")
        for index in domain.indices
    ]
    if reference:
        lines += ["## Reference", ""]
        for title, page in reference:
            lines.append(f"- [{title}]({_url(app, page)})")
        lines.append("")
    return "\n".join(lines)


def essay_body(source: str) -> str:
    """An essay's source without its front matter."""
    if source.startswith("---\n"):
        closing = source.find("\n---\n", 4)
        if closing != -1:
            return source[closing + 5 :].strip()
    return source.strip()


def full_text(app: Sphinx) -> str:
    """The text of ``llms-full.txt``: the index, then every essay."""
    parts = [index_text(app)]
    for _topic, members in _essays_by_topic(app):
        for docname, record in members:
            source = Path(app.env.doc2path(docname)).read_text(encoding="utf-8")
            body = essay_body(source)
            parts.append(
                f"\n---\n\nSource: {_url(app, docname)}\n"
                f"Summary: {record['summary']}\n\n{body.strip()}\n"
            )
    return "\n".join(parts)


def _write(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or not on_the_web(app):
        return
    out = Path(app.builder.outdir)
    (out / "llms.txt").write_text(index_text(app), encoding="utf-8")
    (out / "llms-full.txt").write_text(full_text(app), encoding="utf-8")


def setup(app: Sphinx) -> None:
    app.connect("build-finished", _write)
