"""The ``essay-list`` directive: a generated list of essays.

    ```{essay-list}
    :topic: observability
    :sort: date
    :limit: 4
    ```

It filters by ``:topic:`` or ``:tag:``, sorts by ``date`` (newest first) or
``title``, and can stop after ``:limit:`` essays. On the website a list
without a limit stops after ``essays_list_limit`` and links the rest
(:mod:`.overflow`). The essays are only known
once every document has been read, so the directive leaves an
:class:`essay_list` node behind, which is replaced when the page is written:
by sphinx-design cards in HTML (:class:`RenderEssayCards`), by a plain list
elsewhere (:class:`RenderEssayLists`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx_design.shared import create_component

from sphinx_essays import config as essays_config
from sphinx_essays import overflow
from sphinx_essays.domain import get_domain
from sphinx_essays.header import doc_link

if TYPE_CHECKING:
    from collections.abc import Callable

    from sphinx.application import Sphinx
    from sphinx.builders import Builder
    from sphinx.environment import BuildEnvironment

logger = logging.getLogger(__name__)

#: Columns per row at each sphinx-design breakpoint: one on phones, two above.
BREAKPOINTS = (("xs", 1), ("sm", 1), ("md", 2), ("lg", 2))


class essay_list(nodes.General, nodes.Element):
    """Where an essay list goes; replaced when the page is written."""


def _sort(argument: str) -> str:
    return str(directives.choice(argument, ("date", "title")))


class EssayListDirective(SphinxDirective):
    """List the essays that match a topic or a tag."""

    has_content = False
    option_spec: ClassVar[dict[str, Any]] = {
        "topic": directives.unchanged_required,
        "tag": directives.unchanged_required,
        "sort": _sort,
        "limit": directives.positive_int,
    }

    def run(self) -> list[nodes.Node]:
        settings = essays_config.from_sphinx(self.config)
        topic = self.options.get("topic")
        if topic is not None and topic not in settings.topics:
            logger.warning(
                "essay-list: %r is not a topic; use one of: %s",
                topic,
                ", ".join(settings.topics),
                location=self.get_location(),
                type="essays",
                subtype="listing",
            )
        get_domain(self.env).note_listing(self.env.docname)
        node = essay_list(
            topic=topic,
            tag=self.options.get("tag"),
            sort=self.options.get("sort", "date"),
            limit=self.options.get("limit", 0),
            docname=self.env.docname,
        )
        self.set_source_info(node)
        return [node]


def _tags_text(record: dict[str, Any]) -> str:
    return f"{record['minutes']} min read · " + ", ".join(record["tags"])


def render_cards(fromdoc: str, essays: list[tuple[str, dict[str, Any]]]) -> nodes.Node:
    """sphinx-design cards, as its ``grid`` and ``grid-item-card`` make them: the
    title links the essay and stretches over the card, then summary and facts."""
    columns = [f"sd-row-cols-{size}-{n}" for size, n in BREAKPOINTS]
    gutters = ["sd-g-3", *(f"sd-g-{size}-3" for size, _n in BREAKPOINTS)]
    row = create_component("grid-row", ["sd-row", "sd-row-cols-1", *columns, *gutters])
    for docname, record in essays:
        link = doc_link(fromdoc, docname, record["title"])
        link["classes"] = ["sd-stretched-link"]
        title = nodes.paragraph(
            "", "", link, classes=["sd-card-title", "sd-font-weight-bold"]
        )
        body = create_component(
            "card-body",
            ["sd-card-body"],
            children=[
                title,
                nodes.paragraph("", record["summary"], classes=["sd-card-text"]),
                nodes.paragraph(
                    "", _tags_text(record), classes=["sd-card-text", "essay-card-facts"]
                ),
            ],
        )
        card = create_component(
            "card",
            [
                "sd-card",
                "sd-sphinx-override",
                "sd-w-100",
                "sd-shadow-sm",
                "sd-card-hover",
                "essay-card",
            ],
            children=[body],
        )
        row += create_component(
            "grid-item", ["sd-col", "sd-d-flex-row"], children=[card]
        )
    return create_component(
        "grid-container",
        ["sd-container-fluid", "sd-sphinx-override", "sd-mb-4", "essay-list"],
        children=[row],
    )


def render_list(fromdoc: str, essays: list[tuple[str, dict[str, Any]]]) -> nodes.Node:
    """A plain bullet list: title, then summary and facts."""
    items = nodes.bullet_list(classes=["essay-list"])
    for docname, record in essays:
        paragraph = nodes.paragraph()
        paragraph += nodes.strong("", "", doc_link(fromdoc, docname, record["title"]))
        paragraph += nodes.Text(f". {record['summary']} ({_tags_text(record)})")
        items += nodes.list_item("", paragraph)
    return items


class RenderEssayCards(SphinxPostTransform):
    """In HTML, replace each :class:`essay_list` with sphinx-design cards."""

    default_priority = 5  # before references are resolved
    formats = ("html",)

    def run(self, **kwargs: Any) -> None:
        builder = self.env._app.builder  # as Sphinx's own post-transforms get it
        cut = overflow.limit(builder) if overflow.applies(builder) else 0
        render(self.env, self.document, render_cards, cut, builder)


class RenderEssayLists(SphinxPostTransform):
    """Everywhere else, replace what is left with a plain list."""

    default_priority = 6

    def run(self, **kwargs: Any) -> None:
        render(self.env, self.document, render_list)


def render(
    env: BuildEnvironment,
    document: nodes.document,
    renderer: Callable[[str, list[tuple[str, dict[str, Any]]]], nodes.Node],
    cut: int = 0,
    builder: Builder | None = None,
) -> None:
    """Replace each :class:`essay_list` in *document*. A list without a
    ``:limit:`` that is longer than *cut* (when not 0) stops there, and a
    link to the rest follows it (:mod:`.overflow`)."""
    domain = get_domain(env)
    for node in list(document.findall(essay_list)):
        essays = domain.select(node["topic"], node["tag"], node["sort"])
        hidden = 0
        if node["limit"]:
            essays = essays[: node["limit"]]
        elif cut and len(essays) > cut:
            if node["sort"] != "date":
                essays = sorted(essays, key=lambda e: e[1]["date"], reverse=True)
            hidden, essays = len(essays) - cut, essays[:cut]
        if essays:
            replacement = [renderer(node["docname"], essays)]
            if hidden and builder is not None:
                replacement.append(_rest(builder, node, hidden))
            node.replace_self(replacement)
        else:
            node.replace_self(
                nodes.paragraph("", "No essays yet.", classes=["essay-list"])
            )


def _rest(builder: Builder, node: essay_list, hidden: int) -> nodes.Node:
    """ "And N more essays", linking the search page's list of all of them (the
    date index, for a list of every essay)."""
    query = {name: node[name] for name in ("topic", "tag") if node[name] is not None}
    if query:
        href = overflow.search_href(builder, node["docname"], **query)
    else:
        href = builder.get_relative_uri(node["docname"], "essay-archive")
    link = nodes.reference("", overflow.more_text(hidden), refuri=href, internal=True)
    return nodes.paragraph("", "", link, classes=["essays-more"])


def setup(app: Sphinx) -> None:
    app.setup_extension("sphinx_design")
    app.add_node(essay_list)
    app.add_directive("essay-list", EssayListDirective)
    app.add_post_transform(RenderEssayCards)
    app.add_post_transform(RenderEssayLists)
