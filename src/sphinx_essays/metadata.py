"""The essay front-matter schema and its validation.

An essay is any document at ``<root>/<topic>/<slug>`` (``root`` is
``essays_root``). It must open with a YAML front-matter block::

    ---
    topic: observability
    tags: [tracing, opentelemetry]
    summary: >-
      One plain-text paragraph.
    date: 2026-11-24
    ---

    # The Essay's Title

Every problem becomes a warning of type ``essays``, subtype ``metadata``,
located at the file and line to change, so ``sphinx-build -W`` stops on it.
The front matter is parsed here, with line numbers, and then blanked out of
the source (keeping its lines) so MyST does not parse it a second time.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml
from docutils import nodes
from sphinx import addnodes
from sphinx.util import docname_join, logging

from sphinx_essays import config as essays_config
from sphinx_essays.domain import EssayDomain, reading_minutes
from sphinx_essays.relations import is_citation

if TYPE_CHECKING:
    from sphinx.application import Sphinx

logger = logging.getLogger(__name__)

FIELDS = ("topic", "tags", "summary", "date")
#: Fields an essay may leave out, and what leaving them out means.
OPTIONAL = {"status": "published"}
#: An essay is published, or a draft (:mod:`.drafts`).
STATUSES = ("published", "draft")
TAG_RE = essays_config.SLUG_RE
ISO_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
#: Characters that would be markup in a summary, which must be plain text.
SUMMARY_MARKUP = frozenset("`*[]{}<>")
FENCE = "---"

#: Nodes whose text is not prose, for word counts.
NON_PROSE = (nodes.literal_block, nodes.comment, nodes.raw, nodes.math_block)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an essay, at a 1-based line of its file."""

    line: int
    message: str


@dataclass
class FrontMatter:
    """The parsed front-matter block of one file."""

    values: dict[str, Any]
    lines: dict[str, int]
    """The 1-based file line of each top-level key."""


@dataclass
class Validated:
    """Front matter that passed the schema, as plain data for the domain."""

    topic: str
    tags: list[str]
    summary: str
    date: str
    lines: dict[str, int] = field(default_factory=dict)
    status: str = "published"


def is_essay(docname: str, root: str) -> bool:
    """Whether *docname* lies under the essays folder and is not an index page."""
    parts = docname.split("/")
    return len(parts) >= 2 and parts[0] == root.strip("/") and parts[-1] != "index"


def closing_fence(text: str) -> int | None:
    """The 0-based index of the line that closes the front matter, if any."""
    lines = text.splitlines()
    if not lines or lines[0].rstrip() != FENCE:
        return None
    for index, line in enumerate(lines[1:], start=1):
        if line.rstrip() == FENCE:
            return index
    return None


#: YAML constructs that a missing closing character leaves open: the
#: parser notices lines later, but the mistake is where they start.
UNCLOSED = {
    "while parsing a flow sequence": "close the list with ']'",
    "while parsing a flow mapping": "close the mapping with '}'",
    "while scanning a quoted scalar": "close the quotation marks",
}


def _yaml_problem(exc: yaml.YAMLError) -> Problem:
    """Where the YAML went wrong, and how to fix it. An unclosed list,
    mapping or quotation is reported at the line that opens it."""
    mark = getattr(exc, "problem_mark", None)
    noticed = 2 + mark.line if mark is not None else 1
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    context_mark = getattr(exc, "context_mark", None)
    if context in UNCLOSED and context_mark is not None:
        opened = 2 + context_mark.line
        what = str(context).split(" a ", 1)[1]
        return Problem(
            opened,
            f"front matter is not valid YAML: the {what} that starts on this "
            f"line is never closed (the parser noticed at line {noticed}: "
            f"{problem}); {UNCLOSED[context]} on this line",
        )
    where = ""
    if context and context_mark is not None:
        where = f", {context} that starts at line {2 + context_mark.line}"
    return Problem(
        noticed,
        f"front matter is not valid YAML ({problem}{where}); fix the YAML so "
        "the block between the '---' lines parses",
    )


#: libyaml's parser where PyYAML was built with it: about six times faster on
#: essays' front matter (0.11 s against 0.64 s for 1,000).
FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse(body: str, loader_class: Any) -> tuple[Any, Any]:
    """The node tree of *body* (for the keys' lines) and its values, from one
    parse."""
    loader = loader_class(body)
    try:
        node = loader.get_single_node()
        return node, (None if node is None else loader.construct_document(node))
    finally:
        loader.dispose()


def split_front_matter(text: str) -> FrontMatter | Problem:
    """Parse the YAML block that opens *text*, keeping each key's line."""
    lines = text.splitlines()
    if not lines or lines[0].rstrip() != FENCE:
        return Problem(
            1,
            "essay has no front matter; begin the file with a '---' line, then "
            "topic, tags, summary and date, then a closing '---' line",
        )
    closing = closing_fence(text)
    if closing is None:
        return Problem(1, "front matter has no closing '---' line; add one after date")
    body = "\n".join(lines[1:closing])
    try:
        node, values = _parse(body, FAST_LOADER)
    except yaml.YAMLError:
        # PyYAML's own parser words its problems as the messages expect.
        try:
            node, values = _parse(body, yaml.SafeLoader)
        except yaml.YAMLError as exc:
            return _yaml_problem(exc)
    if not isinstance(node, yaml.MappingNode) or not isinstance(values, dict):
        return Problem(2, "front matter must be a YAML mapping of 'field: value' lines")
    key_lines = {
        str(key.value): 2 + key.start_mark.line
        for key, _value in node.value
        if isinstance(key, yaml.ScalarNode)
    }
    return FrontMatter(values={str(k): v for k, v in values.items()}, lines=key_lines)


def validate(
    front: FrontMatter, docname: str, settings: essays_config.EssaysConfig
) -> tuple[Validated | None, list[Problem]]:
    """Check *front* against the schema; return the clean data or the problems."""
    values = front.values
    problems: list[Problem] = []

    def report(key: str, message: str) -> None:
        problems.append(Problem(front.lines.get(key, 1), message))

    for key in values:
        if key not in FIELDS and key not in OPTIONAL:
            report(
                key,
                f"front matter has unknown field '{key}'; "
                f"the allowed fields are {', '.join([*FIELDS, *OPTIONAL])}",
            )
    status = values.get("status", OPTIONAL["status"])
    if status not in STATUSES:
        report(
            "status",
            f"status {str(status)!r} is not a status; write 'status: draft' "
            "while you write, or 'status: published' (or no status line)",
        )
    for key in FIELDS:
        if values.get(key) in (None, "", []):
            report(
                "",
                f"front matter is missing '{key}'; "
                f"add a '{key}:' line between the '---' lines",
            )

    topic = values.get("topic")
    expected = f"{settings.root}/{topic}/{docname.rsplit('/', 1)[-1]}"
    if topic is None:
        pass
    elif topic not in settings.topics:
        report(
            "topic",
            f"topic {topic!r} is not a topic of this knowledge base; "
            f"use one of: {', '.join(settings.topics)}",
        )
    elif docname != expected:
        report(
            "topic",
            f"essay has topic {topic!r} but lives at '{docname}'; "
            f"move the file to '{expected}' or change its topic",
        )

    tags = values.get("tags")
    clean_tags: list[str] = []
    if tags is not None and not isinstance(tags, list):
        report("tags", "tags must be a YAML list, for example 'tags: [tracing, dns]'")
    for tag in tags if isinstance(tags, list) else []:
        if not isinstance(tag, str) or not TAG_RE.match(tag):
            slug = re.sub(r"[^a-z0-9]+", "-", str(tag).lower()).strip("-")
            report(
                "tags",
                f"tag {tag!r} is not a slug; use lowercase letters, "
                f"digits and single hyphens, for example {slug!r}",
            )
        elif tag in clean_tags:
            report("tags", f"tag {tag!r} is listed twice; remove one")
        else:
            clean_tags.append(tag)

    summary = values.get("summary")
    if summary is not None and not isinstance(summary, str):
        report("summary", "summary must be text: one plain-text paragraph")
    elif isinstance(summary, str):
        if "\n\n" in summary.strip():
            report("summary", "summary must be one paragraph; remove the blank line")
        markup = sorted(SUMMARY_MARKUP.intersection(summary))
        if markup:
            report(
                "summary",
                "summary must be plain text; remove the markup "
                f"characters {' '.join(markup)}",
            )
        summary = " ".join(summary.split())

    date = values.get("date")
    iso_date = parse_date(date)
    if date is not None and iso_date is None:
        report(
            "date",
            f"date {str(date)!r} is not an ISO date; write the day the "
            "essay entered the knowledge base as YYYY-MM-DD, e.g. 2026-11-24",
        )

    if problems:
        return None, problems
    assert isinstance(topic, str) and isinstance(summary, str) and iso_date
    record = Validated(
        topic, clean_tags, summary, iso_date, dict(front.lines), str(status)
    )
    return record, []


def parse_date(value: object) -> str | None:
    """*value* as ``YYYY-MM-DD`` if it is a calendar date, else ``None``."""
    if isinstance(value, dt.datetime):
        return None
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str) and ISO_DATE_RE.match(value):
        try:
            return dt.date.fromisoformat(value).isoformat()
        except ValueError:
            return None
    return None


def count_words(node: nodes.Node) -> int:
    """Count the words of prose under *node*, skipping code, comments and
    citations (before they are resolved, a citation's text is its key)."""
    total = 0
    for text in node.findall(nodes.Text):
        parent = text.parent
        skip = False
        while parent is not None:
            if (
                isinstance(parent, NON_PROSE)
                or is_citation(parent)
                or "graphviz" in type(parent).__name__
            ):
                skip = True
                break
            parent = parent.parent
        if not skip:
            total += len(text.astext().split())
    return total


def warn(docname: str, problem: Problem) -> None:
    logger.warning(
        problem.message,
        location=(docname, problem.line),
        type="essays",
        subtype="metadata",
    )


def _read_front_matter(app: Sphinx, docname: str, source: list[str]) -> None:
    settings = essays_config.from_sphinx(app.config)
    if not is_essay(docname, settings.root):
        return
    domain = app.env.domains[EssayDomain.name]
    assert isinstance(domain, EssayDomain)
    parsed = split_front_matter(source[0])
    closing = closing_fence(source[0])
    if closing is not None:
        # Blank the block but keep its lines, so line numbers stay true and
        # MyST does not report the same front matter a second time.
        lines = source[0].split("\n")
        lines[: closing + 1] = [""] * (closing + 1)
        source[0] = "\n".join(lines)
    if isinstance(parsed, Problem):
        warn(docname, parsed)
        return
    data, problems = validate(parsed, docname, settings)
    for problem in problems:
        warn(docname, problem)
    if data is not None:
        domain.note_essay(docname, data.__dict__)


def _read_title(app: Sphinx, doctree: nodes.document) -> None:
    """Record the essay's title (its single ``#`` heading) and word count."""
    env = app.env
    domain = env.domains[EssayDomain.name]
    assert isinstance(domain, EssayDomain)
    docname = env.docname
    essay = domain.essays.get(docname)
    if essay is None:
        return
    body = [
        n
        for n in doctree.children
        if not isinstance(
            n, (nodes.target, nodes.comment, nodes.substitution_definition)
        )
    ]
    sections = [n for n in body if isinstance(n, nodes.section)]
    if not body or not isinstance(body[0], nodes.section):
        line = (
            body[0].line if body and body[0].line else essay["lines"].get("date", 1) + 2
        )
        message = (
            "an essay must open with its '# Title' heading, after the front matter"
        )
        warn(docname, Problem(line, message))
        return
    if len(sections) > 1:
        line = sections[1].line or sections[1][0].line or 1
        warn(
            docname,
            Problem(
                line, ("only the title may be a '#' heading; make this section '##'")
            ),
        )
    title = sections[0][0]
    raw = next(iter(title.findall(nodes.raw)), None)
    if raw is not None:
        # Markdown passes HTML through; in a title it would reach every page,
        # the feed and the search index that shows the title.
        warn(
            docname,
            Problem(
                title.line or sections[0].line or 1,
                f"the title contains raw HTML ({raw.astext()!r}); write it as "
                "text, or escape each '<' as '\\<'",
            ),
        )
    essay["title"] = title.astext()
    essay["title_line"] = title.line or sections[0].line or 1
    # The indexes link the title's section: LaTeX needs an anchor to give a
    # page number (an empty one is dropped), HTML lands on the title.
    essay["anchor"] = sections[0]["ids"][0] if sections[0]["ids"] else ""
    essay["words"] = count_words(sections[0])
    wpm = essays_config.from_sphinx(app.config).words_per_minute
    essay["minutes"] = reading_minutes(essay["words"], wpm)
    terms, links = set(), set()
    for xref in doctree.findall(addnodes.pending_xref):
        if xref.get("reftype") == "term":
            terms.add(" ".join(xref["reftarget"].lower().split()))
        elif xref.get("reftype") == "doc":
            links.add(
                docname_join(docname, xref["reftarget"].lstrip("/"))
                if not xref["reftarget"].startswith("/")
                else xref["reftarget"].lstrip("/")
            )
    essay["terms"] = sorted(terms)
    essay["links"] = sorted(links - {docname})


def _attribute(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def add_description(context: dict[str, Any], text: str) -> None:
    """Append the page's ``<meta name="description">``, escaped."""
    context["metatags"] = (
        context.get("metatags", "")
        + f'<meta name="description" content="{html.escape(text)}" />\n'
    )


def _describe_page(
    app: Sphinx,
    pagename: str,
    templatename: str,
    context: dict[str, Any],
    doctree: nodes.document | None,
) -> None:
    """An essay's summary is its description: ``<meta name="description">``
    and, for sphinxext-opengraph, ``og:description`` (its first paragraph
    would otherwise stand in). Jinja and Sphinx escape neither, so we do."""
    domain = app.env.domains[EssayDomain.name]
    assert isinstance(domain, EssayDomain)
    record = domain.essays.get(pagename)
    if record is None or "title" not in record:
        return
    summary = record["summary"]
    # sphinxext-opengraph escapes only '"' in what it writes; '&', '<' and
    # '>' are escaped here, so a title or summary reads back exactly.
    context["meta"] = {
        **(context.get("meta") or {}),
        "og:title": _attribute(record["title"]),
        "og:description": _attribute(summary),
    }
    add_description(context, summary)


#: Descriptions of the pages Sphinx generates, by page name; the essay
#: indexes give their own (an ``Index`` subclass's ``description``).
GENERATED = {
    "search": "Search the essays and the glossary as you type, by topic and tag.",
    "genindex": "The index: every concept, tool and term, with the essays on it.",
    "404": "This page is not here; search the essays or browse them by topic.",
}


def generated_description(app: Sphinx, pagename: str) -> str | None:
    """What a page Sphinx generates (not from a source file) is for."""
    if pagename in GENERATED:
        return GENERATED[pagename]
    # A further page of an index cut into pages (:mod:`.paging`): "-2", ...
    name, _, number = pagename.rpartition("-")
    for domain in app.env.domains.sorted():
        for index in domain.indices:
            description = getattr(index, "description", None)
            if pagename == f"{domain.name}-{index.name}":
                return description
            if (
                description
                and number.isdigit()
                and name == f"{domain.name}-{index.name}"
            ):
                return f"{description.removesuffix('.')} (page {number})."
    return None


def _describe_generated(
    app: Sphinx,
    pagename: str,
    templatename: str,
    context: dict[str, Any],
    doctree: nodes.document | None,
) -> None:
    """After sphinxext-opengraph: a generated page it left without one."""
    if doctree is not None or 'name="description"' in context.get("metatags", ""):
        return
    description = generated_description(app, pagename)
    if description is not None:
        add_description(context, f"{app.config.project}: {description}")


def setup(app: Sphinx) -> None:
    # Before sphinxext-opengraph (priority 500) reads the page's meta fields.
    app.connect("html-page-context", _describe_page, priority=450)
    app.connect("html-page-context", _describe_generated, priority=900)
    app.connect("source-read", _read_front_matter)
    app.connect("doctree-read", _read_title, priority=400)
