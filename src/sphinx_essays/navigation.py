"""Site navigation that costs O(page), not O(site), and works for every builder.

Furo renders the whole toctree for every page and parses it again with
BeautifulSoup, so each page costs O(site) and a build O(site²) (furo#128,
furo#674). Here the sidebar is built from a small structure computed once per
build (:func:`collect`): the captions and entries of the root document's
toctrees, and for each topic its newest essays. Each page then renders it with
only its own marks: its topic expanded, itself marked current. Every control is
a plain link, so the sidebar is fully keyboard-operable (unlike furo#940).

The HTML navigation also lists generated pages (``genindex``, ``search``);
the book's builders leave them out (:mod:`.book`).
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any

from sphinx import addnodes

from sphinx_essays import config as essays_config
from sphinx_essays.book import HTML_ONLY_PAGES
from sphinx_essays.domain import get_domain

if TYPE_CHECKING:
    from collections.abc import Callable

    from sphinx.application import Sphinx
    from sphinx.environment import BuildEnvironment

#: How many of the current topic's essays the sidebar lists (newest first).
NEWEST = 10


def collect(app: Sphinx, env: BuildEnvironment) -> dict[str, Any]:
    """The navigation structure, computed once per build.

    ``sections`` are the root document's toctrees as ``[caption, [[title,
    docname], ...]]``; ``topics`` maps each topic page to ``[count, [[docname,
    title], ...]]``, its newest essays."""
    settings = essays_config.from_sphinx(app.config)
    root = app.config.root_doc
    sections = []
    if root in env.all_docs:
        for toctree in env.get_doctree(root).findall(addnodes.toctree):
            entries = []
            for title, ref in toctree["entries"]:
                if ref in HTML_ONLY_PAGES:
                    entries.append([title or HTML_ONLY_PAGES[ref], ref])
                elif ref in env.titles:
                    entries.append([title or env.titles[ref].astext(), ref])
            sections.append([toctree.get("caption") or "", entries])
    domain = get_domain(env)
    topics = {}
    for topic in settings.topics:
        essays = domain.select(topic=topic, sort="date")
        topics[f"{settings.root}/{topic}/index"] = [
            len(essays),
            [[docname, record["title"]] for docname, record in essays[:NEWEST]],
        ]
    return {"sections": sections, "topics": topics}


def _store(app: Sphinx, env: BuildEnvironment) -> None:
    get_domain(env).data["navigation"] = collect(app, env)


def topic_of(pagename: str, navigation: dict[str, Any]) -> str | None:
    """The topic page *pagename* belongs to, if any."""
    folder = pagename.rsplit("/", 1)[0]
    candidate = f"{folder}/index"
    return candidate if candidate in navigation["topics"] else None


def render(
    pagename: str, pathto: Callable[..., str], navigation: dict[str, Any]
) -> str:
    """The sidebar for *pagename*: O(number of entries shown)."""
    current_topic = topic_of(pagename, navigation)
    parts = []
    for caption, entries in navigation["sections"]:
        if caption:
            parts.append(
                f'<p class="caption" role="heading" aria-level="2">'
                f'<span class="caption-text">'
                f"{escape(caption)}</span></p>"
            )
        parts.append("<ul>")
        for title, ref in entries:
            classes = ["toctree-l1"]
            if ref == current_topic:
                classes.append("current")
            if ref == pagename:
                classes.append("current-page")
            parts.append(
                f'<li class="{" ".join(classes)}"><a class="reference internal" '
                f'href="{escape(pathto(ref))}">{escape(title)}</a>'
            )
            if ref == current_topic:
                parts.append(_topic_list(pagename, pathto, ref, navigation))
            parts.append("</li>")
        parts.append("</ul>")
    return "\n".join(parts)


def _topic_list(
    pagename: str,
    pathto: Callable[..., str],
    topic_page: str,
    navigation: dict[str, Any],
) -> str:
    count, newest = navigation["topics"][topic_page]
    items = ["<ul>"]
    for docname, title in newest:
        classes = "toctree-l2" + (
            " current current-page" if docname == pagename else ""
        )
        items.append(
            f'<li class="{classes}"><a class="reference internal" '
            f'href="{escape(pathto(docname))}">{escape(title)}</a></li>'
        )
    if count > len(newest):
        items.append(
            f'<li class="toctree-l2 essays-nav-more"><a class="reference internal" '
            f'href="{escape(pathto(topic_page))}">All {count} essays</a></li>'
        )
    items.append("</ul>")
    return "".join(items)


class _Lazy:
    """The sidebar, rendered when the template prints it: by then every
    handler has run, and sphinx-notfound-page has given the 404 page a
    ``pathto`` that makes links from the site root."""

    def __init__(
        self, pagename: str, context: dict[str, Any], navigation: dict[str, Any]
    ) -> None:
        self.pagename, self.context, self.navigation = pagename, context, navigation

    def __str__(self) -> str:
        return render(self.pagename, self.context["pathto"], self.navigation)

    __html__ = __str__


def _no_toctree(**kwargs: Any) -> str:
    """Stand-in for the per-page toctree, which the sidebar no longer needs."""
    return ""


def _page_context(
    app: Sphinx,
    pagename: str,
    templatename: str,
    context: dict[str, Any],
    doctree: object,
) -> None:
    navigation = get_domain(app.env).data.get("navigation")
    if (
        navigation is None
        or app.config.html_theme != "furo"
        or not essays_config.from_sphinx(app.config).sidebar
    ):
        return
    context["essays_navigation"] = _Lazy(pagename, context, navigation)
    context["toctree"] = _no_toctree


def setup(app: Sphinx) -> None:
    app.connect("env-updated", _store)
    # Before furo's handler (priority 500), so it never renders the full tree.
    # After sphinx-notfound-page's handler (400), which gives the 404 page a
    # toctree() of the whole site, and before furo's (500), so that furo
    # never renders the full tree, on the 404 page either.
    app.connect("html-page-context", _page_context, priority=450)
