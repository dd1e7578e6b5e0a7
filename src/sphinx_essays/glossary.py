"""A glossary that knows where each term is used, and checks itself.

* Each glossary entry gets a "Used in" list of the essays that link the term
  (on the website, the newest few and a search for the rest: :mod:`.overflow`).
* Located warnings (type ``essays``, subtype ``glossary``), so ``-nW`` fails:

  - a term that is defined but that no page outside the glossary links;
  - a term defined twice (compared case-insensitively, as Sphinx resolves);
  - an essay whose prose uses a term but never links it with ``{term}``.

On HTML pages (the website and the EPUB) each glossary opens with an A-Z
list that jumps to the first term of each letter.

The last check runs at ``env-updated`` and looks only for terms that cannot
be mistaken for ordinary words: several words ("tail-based sampling"), or
one word with a digit, an inner capital, a hyphen or an underscore
(``OTLP``, ``secp256k1``, ``target_info``). A term like "Span" or "Gas" is
also plain English, so it is never flagged. Code, links, headings, captions,
the essay header and "Further reading" are not prose and are skipped.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any

from docutils import nodes
from sphinx import addnodes
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util import logging

from sphinx_essays import overflow, pagetext
from sphinx_essays.domain import get_domain
from sphinx_essays.header import doc_link
from sphinx_essays.relations import normalise

if TYPE_CHECKING:
    from sphinx.application import Sphinx
    from sphinx.environment import BuildEnvironment

logger = logging.getLogger(__name__)

#: Nodes whose text is not prose for the unlinked-term check.
NOT_PROSE = (
    nodes.literal,
    nodes.literal_block,
    nodes.reference,
    addnodes.pending_xref,
    nodes.title,
    nodes.rubric,
    nodes.caption,
    nodes.raw,
    nodes.comment,
    nodes.math,
    nodes.math_block,
)


def distinctive(term: str) -> bool:
    """Whether *term* cannot be mistaken for an ordinary English word."""
    words = term.split()
    if len(words) > 1:
        return True
    return bool(re.search(r"[0-9_\-]|.[A-Z]", term))


def term_pattern(term: str) -> re.Pattern[str]:
    """Match *term* as whole words; acronyms and identifiers match exactly."""
    words = r"\s+".join(re.escape(w) for w in term.split())
    exact = len(term.split()) == 1
    return re.compile(rf"(?<![\w-]){words}(?![\w-])", 0 if exact else re.IGNORECASE)


def _read(app: Sphinx, doctree: nodes.document) -> None:
    """Record each page's term links, and each glossary's entries."""
    domain = get_domain(app.env)
    docname = app.env.docname
    refs = {
        normalise(xref["reftarget"])
        for xref in doctree.findall(addnodes.pending_xref)
        if xref.get("reftype") == "term"
    }
    if refs:
        domain.termrefs[docname] = sorted(refs)
    if docname in domain.essays:
        # Kept for the unlinked-term check, which then needs no doctree: it
        # runs after reading, in one process, where loading a thousand
        # pickled doctrees would cost seconds.
        pagetext.store(app.env, "prose", docname, prose_paragraphs(doctree))
    entries = []
    for glossary in doctree.findall(addnodes.glossary):
        for item in glossary.findall(nodes.definition_list_item):
            definition = item.next_node(nodes.definition)
            text = definition.astext() if definition is not None else ""
            for term in item.findall(nodes.term):
                raw = next(iter(term.findall(nodes.raw)), None)
                if raw is not None:
                    _warn(
                        f"glossary term {term.astext()!r} contains raw HTML "
                        f"({raw.astext()!r}); write it as text, or escape each "
                        "'<' as '\\<'",
                        docname,
                        term.line or 0,
                    )
                node_id = term["ids"][0] if term["ids"] else ""
                entries.append([term.astext(), term.line or 0, node_id, text])
    if entries:
        domain.glossary[docname] = entries


def _warn(message: str, docname: str, line: int) -> None:
    logger.warning(message, location=(docname, line), type="essays", subtype="glossary")


def prose_paragraphs(doctree: nodes.Node) -> list[tuple[int, str]]:
    """``(line, text)`` of each prose paragraph, without code, links or titles."""
    found = []
    for paragraph in doctree.findall(nodes.paragraph):
        if _skipped(paragraph):
            continue
        text = "".join(
            t.astext()
            for t in paragraph.findall(nodes.Text)
            if not any(isinstance(a, NOT_PROSE) for a in _ancestors(t, paragraph))
        )
        found.append((paragraph.line or 0, text))
    return found


def first_use(
    paragraphs: list[tuple[int, str]], pattern: re.Pattern[str]
) -> int | None:
    """The line of the first paragraph where *pattern* occurs."""
    for line, text in paragraphs:
        if pattern.search(text):
            return line
    return None


def _ancestors(node: nodes.Node, stop: nodes.Node) -> list[nodes.Node]:
    found = []
    parent = node.parent
    while parent is not None and parent is not stop:
        found.append(parent)
        parent = parent.parent
    return found


def _skipped(paragraph: nodes.Element) -> bool:
    parent = paragraph.parent
    while parent is not None:
        classes: list[str] = (
            parent.get("classes", []) if isinstance(parent, nodes.Element) else []
        )
        if "essay-header" in classes:
            return True
        if isinstance(parent, (nodes.caption, nodes.figure)):
            return True
        if (
            isinstance(parent, nodes.section)
            and parent[0].astext() == "Further reading"
        ):
            return True
        parent = parent.parent
    return False


def _check(app: Sphinx, env: BuildEnvironment) -> None:
    domain = get_domain(env)
    defined: dict[str, tuple[str, str, int]] = {}
    for docname in sorted(domain.glossary):
        for term, line, *_rest in domain.glossary[docname]:
            key = normalise(term)
            if key in defined:
                first_doc, _first, first_line = defined[key]
                _warn(
                    f"glossary term {term!r} is defined twice (also at "
                    f"{env.doc2path(first_doc, False)}:{first_line}); merge the two "
                    "definitions into one entry",
                    docname,
                    line,
                )
            else:
                defined[key] = (docname, term, line)

    used = {
        term
        for docname, terms in domain.termrefs.items()
        if docname not in domain.glossary
        for term in terms
    }
    for key, (docname, term, line) in sorted(defined.items()):
        if key not in used:
            _warn(
                f"glossary term {term!r} is not linked from any page; link it with "
                f"{{term}}`{term}` where an essay uses it, or remove the entry",
                docname,
                line,
            )


def _check_unlinked(app: Sphinx, env: BuildEnvironment) -> None:
    """Warn about essays that use a distinctive term without linking it.

    Runs at ``env-updated``, before Sphinx pickles the environment, so the
    mark that an essay was checked against this glossary is kept: only essays
    re-read since, or all of them after the glossary changes, are checked."""
    domain = get_domain(env)
    defined: dict[str, str] = {}
    for docname in sorted(domain.glossary):
        for term, *_rest in domain.glossary[docname]:
            defined.setdefault(normalise(term), term)
    candidates = [
        (key, term, term_pattern(term))
        for key, term in sorted(defined.items())
        if distinctive(term)
    ]
    fingerprint = hashlib.sha256(
        "\n".join(key for key, _t, _p in candidates).encode()
    ).hexdigest()
    for docname in sorted(domain.complete()):
        record = domain.essays[docname]
        if record.get("glossary_checked") == fingerprint:
            continue
        paragraphs = pagetext.load(env, "prose", docname) or []
        # A match implies the normalised term occurs in the normalised prose:
        # one substring test per term rules most out before any regex runs.
        prose = normalise("\n".join(text for _line, text in paragraphs))
        linked = set(record["terms"])
        for key, term, pattern in candidates:
            if key in linked or key not in prose:
                continue
            line = first_use(paragraphs, pattern)
            if line is not None:
                _warn(
                    f"essay uses the glossary term {term!r} but never links it; "
                    f"write {{term}}`{term}` at its first use",
                    docname,
                    line,
                )
        record["glossary_checked"] = fingerprint


class AddUsedIn(SphinxPostTransform):
    """Add "Used in" to each glossary entry: the essays that link the term."""

    default_priority = 5  # before references are resolved

    def run(self, **kwargs: Any) -> None:
        domain = get_domain(self.env)
        essays = domain.complete()
        docname = self.env.docname
        builder = self.env._app.builder  # as Sphinx's own post-transforms get it
        for glossary in self.document.findall(addnodes.glossary):
            for item in glossary.findall(nodes.definition_list_item):
                keys = {normalise(t.astext()) for t in item.findall(nodes.term)}
                users = sorted(
                    (record["title"].casefold(), other)
                    for other, record in essays.items()
                    if keys & set(record["terms"])
                )
                if not users:
                    continue
                hidden = 0
                if overflow.applies(builder) and len(users) > overflow.limit(builder):
                    # The newest few, then a search for the term (.overflow).
                    shown = overflow.limit(builder)
                    hidden = len(users) - shown
                    users.sort(key=lambda user: essays[user[1]]["date"], reverse=True)
                    users = users[:shown]
                paragraph = nodes.paragraph(classes=["glossary-used-in"])
                label = "Used in, newest first: " if hidden else "Used in: "
                paragraph += nodes.inline("", label, classes=["essay-label"])
                for position, (_title, other) in enumerate(users):
                    if position:
                        paragraph += nodes.Text(", ")
                    paragraph += doc_link(docname, other, essays[other]["title"])
                if hidden:
                    term = next(item.findall(nodes.term)).astext()
                    href = overflow.search_href(builder, docname, q=term)
                    paragraph += nodes.Text(", ")
                    paragraph += nodes.reference(
                        "",
                        overflow.more_text(hidden),
                        refuri=href,
                        internal=True,
                        classes=["essays-more"],
                    )
                definition = item.next_node(nodes.definition)
                if definition is not None:
                    definition += paragraph


def az_list(glossary: nodes.Element) -> str:
    """HTML for the A-Z jump list of one glossary: each letter that begins a
    term, linked to its first term ("#" for terms that begin otherwise)."""
    first: dict[str, str] = {}
    for term in glossary.findall(nodes.term):
        if not term["ids"]:
            continue
        initial = term.astext()[:1].upper()
        letter = initial if "A" <= initial <= "Z" else "#"
        first.setdefault(letter, term["ids"][0])
    order = sorted(first, key=lambda letter: (letter != "#", letter))
    items = "".join(
        f'<li><a href="#{first[letter]}">{letter}</a></li>' for letter in order
    )
    return (
        f'<nav class="essays-az" aria-label="Glossary, A to Z"><ul>{items}</ul></nav>'
    )


def _add_az_list(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    if app.builder.format != "html":
        return
    for glossary in list(doctree.findall(addnodes.glossary)):
        html = az_list(glossary)
        glossary.parent.insert(
            glossary.parent.index(glossary), nodes.raw("", html, format="html")
        )


def setup(app: Sphinx) -> None:
    app.connect("doctree-resolved", _add_az_list)
    app.connect("doctree-read", _read)
    app.connect("env-check-consistency", _check)
    app.connect("env-updated", _check_unlinked)
    app.add_post_transform(AddUsedIn)
