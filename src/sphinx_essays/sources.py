"""Sources: one bibliography, inline citations, each essay's references, checks.

sphinxcontrib-bibtex reads ``docs/references.bib``, resolves ``{cite:p}`` and
``{cite:t}`` and formats every entry with pybtex. This module adds what a
knowledge base needs on top of it:

* the house styles: author-year citations in parentheses, and entries that
  say when each web source was last checked against the claim (``urldate``);
* every citation gets an anchor, and its sentence is stored in the essay
  domain (``citations``), for the sources index and the freshness report;
* "References" at the end of each essay: the entries it cites, formatted by
  pybtex, never typed by hand;
* located checks (type ``essays``, subtype ``sources``), so ``-nW`` fails: a
  key the bibliography lacks (with the closest keys), an entry nobody cites,
  an entry missing a required field, a key defined twice and one URL under
  two keys.

Every entry records its *kind* (``kind = {spec}``), one of :data:`KINDS`, so
the sources index can group it.
"""

from __future__ import annotations

import codecs
import datetime as dt
import difflib
import functools
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pybtex.plugin
import pybtex_docutils
from docutils import nodes
from pybtex.richtext import Text
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle
from pybtex.style.template import field as bib_field
from pybtex.style.template import href, optional, sentence, words
from sphinx import addnodes
from sphinx.domains import Index, IndexEntry
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util import logging
from sphinxcontrib.bibtex.plugin import register_plugin
from sphinxcontrib.bibtex.style.referencing import BracketStyle
from sphinxcontrib.bibtex.style.referencing.label import LabelReferenceStyle
from sphinxcontrib.bibtex.transforms import node_text_transform

from sphinx_essays.domain import get_domain
from sphinx_essays.header import append_to_essay, essay_headers
from sphinx_essays.relations import is_citation, sentence_around

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from pybtex.database import Entry
    from sphinx.application import Sphinx
    from sphinx.config import Config
    from sphinx.environment import BuildEnvironment
    from sphinx.writers.html5 import HTML5Translator
    from sphinxcontrib.bibtex.domain import BibtexDomain, Citation

logger = logging.getLogger(__name__)

Content = list[tuple[str, list[IndexEntry]]]

#: What a source is, as ``kind`` in its entry, and how the index names it.
KINDS = {
    "spec": "Specifications",
    "paper": "Papers",
    "docs": "Documentation",
    "book": "Books",
    "report": "Reports",
    "article": "Articles",
}
#: The same kinds, one source at a time (what a preview says it is).
KIND_NAMES = {
    "spec": "Specification",
    "paper": "Paper",
    "docs": "Documentation",
    "book": "Book",
    "report": "Report",
    "article": "Article",
}
#: The pybtex formatting style and the inline reference style we register.
STYLE = "essays"
#: The start of an entry in a ``.bib`` file: ``@type{key,``.
ENTRY_START = re.compile(r"^\s*@\s*(\w+)\s*[{(]\s*([^,\s]+)\s*,", re.MULTILINE)
#: Entry types that are not sources (``@string``, ``@comment``, ``@preamble``).
NOT_ENTRIES = {"string", "comment", "preamble"}


def plain_text(text: object) -> str:
    """A BibTeX field as plain text: braces gone, ``\\_`` and accents decoded."""
    return " ".join(Text.from_latex(str(text)).render_as("text").split())


def is_organisation(person: Any) -> bool:
    """Whether a pybtex person is an organisation, written ``{{W3C}}``."""
    name = str(person)
    return name.startswith("{") and name.endswith("}") and name.count("{") == 1


def short_title(title: object, words: int = 6, *, whole: bool = False) -> str:
    """A title's head: up to its first colon (or, if *whole*, all of it), at
    most *words* words."""
    head = plain_text(title) if whole else plain_text(title).split(": ")[0]
    kept = head.split()
    return " ".join(kept[:words]) + ("…" if len(kept) > words else "")


def author_year(entry: Entry) -> str:
    """``Sigelman et al., 2010`` or ``W3C, 2021``: who and when."""
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [
        plain_text(" ".join(p.last_names) or " ".join(p.first_names)) for p in people
    ]
    if len(people) == 1 and is_organisation(people[0]):
        names = [plain_text(people[0])]
    who = f"{names[0]} et al." if len(names) > 2 else " and ".join(names)
    return f"{who}, {entry.fields.get('year', '')}"


def short_label(entry: Entry, *, whole: bool = False) -> str:
    """Who and when, ``Sigelman et al., 2010``; for a work by an organisation
    who and what, ``OpenTelemetry Authors, Tracing API``, because one
    organisation publishes dozens of pages in a year. With *whole*, the work
    is named by its whole title (up to eight words)."""
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    if len(people) == 1 and is_organisation(people[0]):
        title = entry.fields.get("title", "")
        what = short_title(title, words=8, whole=True) if whole else short_title(title)
        return f"{plain_text(people[0])}, {what}"
    return author_year(entry)


def long_label(entry: Entry) -> str:
    """:func:`short_label` by whole titles:
    ``PostgreSQL Global Development Group, Server Configuration: Replication``,
    for when the title's head is not enough to tell two works apart."""
    return short_label(entry, whole=True)


def suffix(number: int) -> str:
    """``a``, ``b``, ... ``z``, ``aa``, ``ab``, ...: the *number*-th, from 0."""
    letters = ""
    number += 1
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(ord("a") + rest) + letters
    return letters


class EssaysLabelStyle(BaseLabelStyle):  # type: ignore[misc]  # pybtex is untyped
    """:func:`short_label`. Where two labels would be equal, an organisation's
    works are told apart by their whole titles (:func:`long_label`), and labels
    still equal take a, b, ... after the year: ``Fowler, 2014a``,
    ``Sigstore Authors, Rekor, 2026b``."""

    def format_labels(self, sorted_entries: Iterable[Entry]) -> Iterator[str]:
        entries = list(sorted_entries)
        short = [short_label(entry) for entry in entries]
        clashes = Counter(short)
        labels = [
            long_label(entry) if clashes[label] > 1 else label
            for entry, label in zip(entries, short, strict=True)
        ]
        counts = Counter(labels)
        seen: Counter[str] = Counter()
        for entry, label in zip(entries, labels, strict=True):
            if counts[label] > 1:
                year = author_year(entry)
                dated = (
                    label
                    if label == year
                    else f"{label}, {entry.fields.get('year', '')}"
                )
                yield dated + suffix(seen[label])
                seen[label] += 1
            else:
                yield label


#: Formatted entries by style, label and content (:meth:`EssaysStyle.format_entry`).
_FORMATTED: dict[tuple[object, ...], Any] = {}
#: More distinct entries than a session of edits makes: start again.
FORMATTED_LIMIT = 50_000


def entry_fingerprint(entry: Entry) -> tuple[object, ...]:
    """Everything of an entry that its formatting reads."""
    return (
        entry.key,
        entry.type,
        tuple((name, str(value)) for name, value in entry.fields.items()),
        tuple(
            (role, tuple(str(person) for person in people))
            for role, people in entry.persons.items()
        ),
    )


class EssaysStyle(PlainStyle):  # type: ignore[misc]  # pybtex is untyped
    """pybtex's ``plain`` style (sorted by author, year and title) with
    author-year labels, saying when a web source was last checked."""

    default_label_style = STYLE

    def format_entry(self, label: str, entry: Entry, bib_data: Any = None) -> Any:
        """pybtex's formatting, kept for the life of the process: an entry
        whose label and fields are unchanged formats the same, and
        sphinxcontrib-bibtex formats every entry on every rebuild (about 3 s
        at 610 entries in live preview)."""
        if bib_data is not None:  # a crossref may reach into other entries
            return super().format_entry(label, entry, bib_data=bib_data)
        key = (type(self), label, entry_fingerprint(entry))
        formatted = _FORMATTED.get(key)
        if formatted is None:
            if len(_FORMATTED) > FORMATTED_LIMIT:
                _FORMATTED.clear()
            formatted = _FORMATTED[key] = super().format_entry(label, entry)
        return formatted

    def format_title(self, e: Entry, which: str, as_sentence: bool = True) -> Any:
        """The title as written: BibTeX's sentence case would lower
        "OpenTelemetry" and "PostgreSQL" unless every one were braced."""
        title = bib_field(which)
        return sentence[title] if as_sentence else title

    def format_web_refs(self, e: Entry) -> Any:
        return sentence[
            optional[
                words["URL:", href(bib_field("url", raw=True))[bib_field("url")]],
                optional[" (checked on ", bib_field("urldate"), ")"],
            ],
            optional[self.format_doi(e)],
        ]


@dataclass
class EssaysReferenceStyle(LabelReferenceStyle):
    """Citations by label in parentheses, several separated by ``;``:
    (Sigelman et al., 2010; OpenTelemetry Authors, 2025a)."""

    bracket_parenthetical: BracketStyle = field(
        default_factory=lambda: BracketStyle(left="(", right=")", sep="; ")
    )


# -- The bibliography file ----------------------------------------------------


@dataclass(frozen=True)
class BibEntry:
    """Where an entry starts in its ``.bib`` file."""

    key: str
    kind: str
    path: str
    """The file as messages name it."""
    location: str
    """The absolute file, as warnings locate it (like every page's)."""
    line: int


def scan_bibfile(path: Path, shown: str) -> list[BibEntry]:
    """Every entry of *path* with its line, duplicates included (pybtex keeps
    only the first of two entries with one key, and no line numbers)."""
    text = path.read_text(encoding="utf-8-sig") if path.is_file() else ""
    found = []
    for match in ENTRY_START.finditer(text):
        kind = match.group(1).lower()
        if kind in NOT_ENTRIES:
            continue
        line = text.count("\n", 0, match.start(2)) + 1
        found.append(BibEntry(match.group(2), kind, shown, str(path), line))
    return found


def bibfiles(app: Sphinx) -> list[tuple[Path, str]]:
    """The configured ``.bib`` files, each with the name messages give it
    (relative to the source folder, as ``bibtex_bibfiles`` names it)."""
    srcdir = Path(app.srcdir).resolve()
    found = []
    for name in app.config.bibtex_bibfiles or []:
        path = (Path(app.confdir) / name).resolve()
        shown = (
            path.relative_to(srcdir).as_posix()
            if path.is_relative_to(srcdir)
            else str(path)
        )
        found.append((path, shown))
    return found


def cite_domain(env: BuildEnvironment) -> BibtexDomain:
    return cast("BibtexDomain", env.domains["cite"])


def cited_keys(xref: addnodes.pending_xref) -> list[str]:
    """The keys one ``{cite:*}`` role names (``a,b`` cites two)."""
    return [key.strip() for key in str(xref["reftarget"]).split(",") if key.strip()]


def entry_url(entry: Entry) -> str:
    """Where a reader checks the source: its URL, else its DOI's."""
    url = str(entry.fields.get("url", "")).strip()
    doi = str(entry.fields.get("doi", "")).strip()
    return url or (f"https://doi.org/{doi}" if doi else "")


# -- Reading: anchor each citation and keep its sentence ----------------------


def _note_citations(app: Sphinx, doctree: nodes.document) -> None:
    """Give every citation an anchor and store it with its sentence and line."""
    docname = app.env.docname
    found: list[dict[str, Any]] = []
    for xref in list(doctree.findall(addnodes.pending_xref)):
        if not is_citation(xref):
            continue
        paragraph = xref.parent
        while paragraph is not None and not isinstance(paragraph, nodes.paragraph):
            paragraph = paragraph.parent
        anchor = f"essay-citation-{len(found) + 1}"
        xref.parent.insert(xref.parent.index(xref), nodes.target("", "", ids=[anchor]))
        found.append(
            {
                "keys": cited_keys(xref),
                "anchor": anchor,
                "line": (paragraph.line if paragraph is not None else xref.line) or 0,
                "sentence": (
                    sentence_around(paragraph, xref) if paragraph is not None else ""
                ),
            }
        )
    if found:
        get_domain(app.env).citations[docname] = found


# -- Checks -------------------------------------------------------------------


def _warn(message: str, location: str | tuple[str, int]) -> None:
    logger.warning(message, location=location, type="essays", subtype="sources")


def _missing_fields(entry: Entry) -> list[str]:
    """What a source must say so a reader can find and weigh it."""
    problems = []
    fields = entry.fields
    if not str(fields.get("title", "")).strip():
        problems.append("has no title; add title = {...}")
    if not (entry.persons.get("author") or entry.persons.get("editor")):
        problems.append(
            "has no author; add author = {First Last and First Last}, or "
            "author = {{Organisation}} for a corporate author"
        )
    if not re.fullmatch(r"\d{4}", str(fields.get("year", "")).strip()):
        problems.append("has no four-digit year; add year = {YYYY}")
    url = str(fields.get("url", "")).strip()
    if not url and not str(fields.get("doi", "")).strip():
        problems.append("has neither url nor doi; add the address a reader checks")
    if url:
        urldate = str(fields.get("urldate", "")).strip()
        try:
            dt.date.fromisoformat(urldate)
        except ValueError:
            problems.append(
                "has no urldate; add urldate = {YYYY-MM-DD}, the day the claim "
                "was last checked against the source"
            )
    kind = str(fields.get("kind", "")).strip()
    if kind not in KINDS:
        shown = f"kind {kind!r}" if kind else "no kind"
        problems.append(f"has {shown}; add kind = {{...}}, one of: {', '.join(KINDS)}")
    return problems


def check_sources(app: Sphinx, env: BuildEnvironment) -> None:
    """Warn about every problem of the bibliography and of the citations."""
    bib = cite_domain(env).bibdata.data.entries
    files = bibfiles(app)
    scanned = [entry for path, shown in files for entry in scan_bibfile(path, shown)]
    where: dict[str, BibEntry] = {}
    for entry in scanned:
        if entry.key in where:
            first = where[entry.key]
            _warn(
                f"source key {entry.key!r} is defined twice (first at "
                f"{first.path}:{first.line}); merge the two entries into one",
                f"{entry.location}:{entry.line}",
            )
        else:
            where[entry.key] = entry

    cited: set[str] = set()
    citations = get_domain(env).citations
    for docname in sorted(citations):
        for citation in citations[docname]:
            for key in citation["keys"]:
                cited.add(key)
                if key in bib:
                    continue
                close = difflib.get_close_matches(key, list(bib), n=3, cutoff=0.5)
                hint = (
                    "; the closest keys are " + ", ".join(repr(k) for k in close)
                    if close
                    else ""
                )
                shown = files[0][1] if files else "a .bib file"
                _warn(
                    f"citation key {key!r} is not in the bibliography; add an entry "
                    f"with that key to {shown}{hint}",
                    (docname, citation["line"]),
                )

    urls: dict[str, str] = {}
    for key, scanned_entry in where.items():
        entry = bib.get(key)
        if entry is None:
            continue
        location = f"{scanned_entry.location}:{scanned_entry.line}"
        for problem in _missing_fields(entry):
            _warn(f"source {key!r} {problem}", location)
        if key not in cited:
            _warn(
                f"source {key!r} is not cited by any page; cite it with "
                f"{{cite:p}}`{key}` where an essay relies on it, or remove the entry",
                location,
            )
        url = entry_url(entry).rstrip("/")
        if url and url in urls:
            first = where[urls[url]]
            _warn(
                f"source {key!r} has the same address as {urls[url]!r} "
                f"({first.path}:{first.line}); keep one key for one source",
                location,
            )
        elif url:
            urls[url] = key


# -- The sources index -------------------------------------------------------


class SourceIndex(Index):
    """Every source, grouped by kind, with the essays that cite it and the
    sentence that cites it. Sources appear in the bibliography's order."""

    name = "sources"
    localname = "Sources by kind"
    #: The page's ``<meta name="description">`` (:mod:`.metadata`).
    description = (
        "Every source the essays cite, by kind, with the sentences that cite it."
    )
    shortname = "sources"

    def generate(self, docnames: Iterable[str] | None = None) -> tuple[Content, bool]:
        env = self.domain.env
        essays = get_domain(env).complete()
        citing: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
        for docname, found in get_domain(env).citations.items():
            if docname not in essays:
                continue
            title = essays[docname]["title"]
            for use in found:
                for key in use["keys"]:
                    citing.setdefault(key, []).append((title, docname, use))
        groups: dict[str, list[IndexEntry]] = {kind: [] for kind in KINDS}
        for citation in cite_domain(env).citations:
            entry = citation.entry
            kind = str(entry.fields.get("kind", ""))
            if kind not in groups:
                continue
            users = sorted(
                citing.get(citation.key, []),
                key=lambda u: (u[0].casefold(), u[1], u[2]["line"], u[2]["anchor"]),
            )
            groups[kind].append(
                IndexEntry(
                    plain_text(entry.fields.get("title", citation.key)),
                    1 if users else 0,
                    citation.bibliography_key.docname,
                    citation.citation_id,
                    author_year(entry),
                    "",
                    "",
                )
            )
            for title, docname, place in users:
                groups[kind].append(
                    IndexEntry(
                        title, 2, docname, place["anchor"], "", "", place["sentence"]
                    )
                )
        return [
            (KINDS[kind], entries) for kind, entries in groups.items() if entries
        ], False


# -- Writing: each essay's references -----------------------------------------


def formatted(citation: Citation) -> nodes.paragraph:
    """An entry as pybtex formats it, with its URL a link."""
    paragraph = pybtex_docutils.Backend().paragraph(citation.formatted_entry)
    node_text_transform(paragraph)
    return paragraph


def preview(env: BuildEnvironment, keys: list[str]) -> list[nodes.Node] | None:
    """What a citation's hover preview shows: for each source its full
    reference (with the day it was last checked), its kind and a link to it."""
    found = {c.key: c for c in cite_domain(env).citations}
    content: list[nodes.Node] = []
    for key in keys:
        citation = found.get(key)
        if citation is None:
            continue
        content.append(formatted(citation))
        entry = citation.entry
        facts = nodes.paragraph(classes=["kb-preview-facts"])
        facts += nodes.Text(KIND_NAMES.get(str(entry.fields.get("kind", "")), "Source"))
        url = entry_url(entry)
        if url:
            facts += nodes.Text(" · ")
            facts += nodes.reference("", "Open the source", refuri=url)
        content.append(facts)
    return content or None


class AddReferences(SphinxPostTransform):
    """Append "References" to each essay that cites: the entries it cites,
    in the bibliography's order (by author, year and title)."""

    default_priority = 3  # first of the blocks appended to an essay

    def run(self, **kwargs: Any) -> None:
        ours = get_domain(self.env).citations
        theirs = cite_domain(self.env).citations
        for header in essay_headers(self.document):
            keys = {key for c in ours.get(header["essay"], []) for key in c["keys"]}
            chosen = [c for c in theirs if c.key in keys]
            if not chosen:
                continue
            box = nodes.container(classes=["essay-references"])
            box += nodes.rubric("", "References")
            items = nodes.bullet_list()
            for citation in chosen:
                items += nodes.list_item("", formatted(citation))
            box += items
            box += self._see_also(header["essay"])
            append_to_essay(header, box)

    @staticmethod
    def _see_also(docname: str) -> nodes.paragraph:
        """A pointer to the sources index, where each source lists every
        essay and sentence that cites it."""
        paragraph = nodes.paragraph(classes=["essay-references-more"])
        paragraph += nodes.Text("Every source, with the other essays that cite it: ")
        paragraph += addnodes.pending_xref(
            "",
            nodes.inline("", "Sources by kind"),
            refdomain="std",
            reftype="ref",
            reftarget="essay-sources",
            refexplicit=True,
            refdoc=docname,
        )
        paragraph += nodes.Text(".")
        return paragraph


class LabelBibliographyEntries(SphinxPostTransform):
    """Give each bibliography entry a LaTeX label, so the sources index can
    print its page: Sphinx writes a citation as ``\\bibitem``, which hyperref
    can link to but ``\\pageref`` cannot find."""

    default_priority = 5
    formats = ("latex",)

    def run(self, **kwargs: Any) -> None:
        for citation in self.document.findall(nodes.citation):
            if not citation["ids"] or len(citation) < 2:
                continue
            label = f"{citation['docname']}:{citation['ids'][0]}"
            mark = nodes.raw(
                "", rf"\phantomsection\label{{\detokenize{{{label}}}}}", format="latex"
            )
            body = citation[1]
            if isinstance(body, nodes.Element):
                body.insert(0, mark)


def visit_citation_html(self: HTML5Translator, node: nodes.citation) -> None:
    """A bibliography entry as a list item. docutils gives each the role
    ``doc-biblioentry``, which DPUB-ARIA 1.1 deprecates and axe rejects
    inside its ``role="list"`` wrapper."""
    if not isinstance(node.previous_sibling(), nodes.citation):
        self.body.append('<div role="list" class="citation-list">\n')
    self.body.append(self.starttag(node, "div", classes=["citation"], role="listitem"))


def depart_citation_html(self: HTML5Translator, node: nodes.citation) -> None:
    self.body.append("</div>\n")
    if not isinstance(node.next_node(descend=False, siblings=True), nodes.citation):
        self.body.append("</div>\n")


# -- Setup --------------------------------------------------------------------


def _configure_bibtex(app: Sphinx, config: Config) -> None:
    """A site without sources needs no ``bibtex_bibfiles``. Unknown keys are
    reported by :func:`check_sources`, with the closest keys and a location;
    the library's own message names no fix, so it is silenced."""
    if config.bibtex_bibfiles is None:
        config.bibtex_bibfiles = []
    config.suppress_warnings = [*config.suppress_warnings, "bibtex.key_not_found"]


#: The pybtex plugins a build uses. pybtex looks a plugin up in every
#: installed package's entry points each time it is asked for one
#: (importlib.metadata reads every distribution's metadata), and a build
#: asks thousands of times: on the real site that was 145 s of a 165 s
#: serial build. Each is looked up once here and registered at run time,
#: where pybtex looks first.
PYBTEX_PLUGINS = (
    ("pybtex.backends", "text"),
    ("pybtex.backends", "plaintext"),
    ("pybtex.backends", "docutils"),
    ("pybtex.backends", "html"),
    ("pybtex.backends", "latex"),
    ("pybtex.style.names", "plain"),
    ("pybtex.style.names", "last"),
    ("pybtex.style.names", "lastfirst"),
    ("pybtex.style.sorting", "author_year_title"),
    ("pybtex.style.sorting", "none"),
    ("pybtex.style.labels", "number"),
    ("pybtex.style.labels", "alpha"),
    ("pybtex.style.formatting", "plain"),
    ("pybtex.style.formatting", "unsrt"),
    ("pybtex.style.formatting", "alpha"),
    ("pybtex.database.input", "bibtex"),
)


def resolve_pybtex_plugins() -> None:
    """Look each of :data:`PYBTEX_PLUGINS` up once, and keep it."""
    for group, name in PYBTEX_PLUGINS:
        try:
            plugin = pybtex.plugin.find_plugin(group, name)
        except pybtex.plugin.PluginNotFound:
            continue
        pybtex.plugin.register_plugin(group, name, plugin, force=True)


@functools.cache
def decode_latex(latex: str) -> str:
    """A BibTeX field's LaTeX as Unicode, decoded once per distinct string.

    sphinxcontrib-bibtex formats every entry on every build, and latexcodec's
    decoder is nearly all of that: 0.6 ms a field, about 5 s a rebuild at 610
    entries. The decoding is a pure function of an immutable string, so a
    warm process (live preview) pays it once, and a build pays it once for
    the references and once for our plain-text copies rather than twice."""
    return str(codecs.decode(latex, "ulatex"))  # type: ignore[call-overload]


def _text_from_latex(cls: type[Text], latex: str) -> Text:
    """:meth:`pybtex.richtext.Text.from_latex`, with :func:`decode_latex`."""
    from pybtex.markup import LaTeXParser

    if not isinstance(latex, str):
        return LaTeXParser(codecs.decode(latex, "ulatex")).parse()
    return LaTeXParser(decode_latex(latex)).parse()


#: sphinxcontrib-bibtex's own functions that :func:`setup` replaces, kept
#: for the tests that compare the two.
LIBRARY: dict[str, Any] = {}


def _filtered_entries(
    self: BibtexDomain, bibliography_key: Any
) -> Iterator[tuple[str, Entry]]:
    """``BibtexDomain.get_filtered_entries``, with the documents citing each
    key found in one pass over the citations.

    sphinxcontrib-bibtex 2.6 finds the documents that cite an entry by
    scanning every citation in the site, once per entry, on every build:
    entries times citations, 10 million set operations for 200 sources at
    10,000 essays, about 4 s of each one-essay rebuild. The result, and the
    filter it feeds, are the same."""
    from sphinxcontrib.bibtex.domain import _FilterVisitor

    bibliography = self.bibliographies[bibliography_key]
    citing: dict[str, set[str]] = {}
    for citation_ref in self.citation_refs:
        for target in citation_ref.targets:
            citing.setdefault(target.key, set()).add(citation_ref.docname)
    for entry in self.get_entries(bibliography.bibfiles):
        key = bibliography.keyprefix + entry.key
        cited_docnames = citing.get(key, set())
        visitor = _FilterVisitor(  # type: ignore[no-untyped-call]
            entry=entry,
            docname=bibliography_key.docname,
            cited_docnames=cited_docnames,
        )
        try:
            success = visitor.visit(bibliography.filter_)
        except ValueError as err:
            logger.warning(
                "syntax error in :filter: expression; %s",
                err,
                location=(bibliography_key.docname, bibliography.line),
                type="bibtex",
                subtype="filter_syntax_error",
            )
            success = bool(cited_docnames)
        if success or entry.key in bibliography.keys:
            yield key, entry


def setup(app: Sphinx) -> None:
    app.setup_extension("sphinxcontrib.bibtex")
    from sphinxcontrib.bibtex.domain import BibtexDomain

    if BibtexDomain.get_filtered_entries is not _filtered_entries:
        LIBRARY["get_filtered_entries"] = BibtexDomain.get_filtered_entries
        BibtexDomain.get_filtered_entries = _filtered_entries  # type: ignore[method-assign]
    resolve_pybtex_plugins()
    import latexcodec  # noqa: F401  (registers the "ulatex" codec)

    Text.from_latex = classmethod(_text_from_latex)
    pybtex.plugin.register_plugin("pybtex.style.formatting", STYLE, EssaysStyle)
    pybtex.plugin.register_plugin("pybtex.style.labels", STYLE, EssaysLabelStyle)
    register_plugin(
        "sphinxcontrib.bibtex.style.referencing", STYLE, EssaysReferenceStyle
    )
    app.connect("config-inited", _configure_bibtex)
    app.connect("doctree-read", _note_citations)
    app.connect("env-check-consistency", check_sources)
    app.add_post_transform(AddReferences)
    app.add_post_transform(LabelBibliographyEntries)
    app.add_node(
        nodes.citation, override=True, html=(visit_citation_html, depart_citation_html)
    )
    app.add_index_to_domain("essay", SourceIndex)
