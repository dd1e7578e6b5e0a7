"""The ``essay`` domain: the one place where essay metadata lives.

Sphinx pickles a domain's ``data`` with the environment, clears a document's
entries before it is re-read (:meth:`EssayDomain.clear_doc`) and merges the
entries that parallel readers collected (:meth:`EssayDomain.merge_domaindata`).
Keeping all state here is what makes incremental and ``-j N`` builds correct.

Pages whose output depends on *other* pages are rewritten, not re-read, when
that data changes: see :mod:`sphinx_essays.invalidation`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from sphinx.domains import Domain
from sphinx.util import logging

from sphinx_essays.indices import ArchiveIndex, TagIndex, TopicIndex
from sphinx_essays.relations import Relations

if TYPE_CHECKING:
    from collections.abc import Callable, Set

    from sphinx.application import Sphinx
    from sphinx.environment import BuildEnvironment

logger = logging.getLogger(__name__)

T = TypeVar("T")


class EssayDomain(Domain):
    """Holds each essay's validated metadata, keyed by docname."""

    name = "essay"
    label = "Essays"
    indices = [TopicIndex, TagIndex, ArchiveIndex]  # noqa: RUF012 (Sphinx API)
    initial_data: ClassVar[dict[str, Any]] = {
        "essays": {},
        "listings": {},
        "glossary": {},
        "termrefs": {},
        "citations": {},
    }
    #: Bump when the shape of the stored data changes.
    data_version = 10

    def __init__(self, env: BuildEnvironment) -> None:
        super().__init__(env)
        self._derived: dict[str, Any] = {}

    @property
    def essays(self) -> dict[str, dict[str, Any]]:
        """``docname -> record``: title, topic, tags, summary, date, words,
        terms (glossary terms linked) and links (essays linked)."""
        essays: dict[str, dict[str, Any]] = self.data["essays"]
        return essays

    @property
    def listings(self) -> dict[str, bool]:
        """Docnames of pages that list essays, so depend on all of them."""
        listings: dict[str, bool] = self.data["listings"]
        return listings

    @property
    def glossary(self) -> dict[str, list[list[Any]]]:
        """``docname -> [[term, line, node_id, definition], ...]`` per glossary."""
        glossary: dict[str, list[list[Any]]] = self.data["glossary"]
        return glossary

    @property
    def termrefs(self) -> dict[str, list[str]]:
        """``docname -> [term, ...]``: the glossary terms each page links."""
        termrefs: dict[str, list[str]] = self.data["termrefs"]
        return termrefs

    @property
    def citations(self) -> dict[str, list[dict[str, Any]]]:
        """``docname -> [{keys, anchor, line, sentence}, ...]``: each
        ``{cite}`` role of a page, in order (see :mod:`sphinx_essays.sources`)."""
        citations: dict[str, list[dict[str, Any]]] = self.data["citations"]
        return citations

    def note_essay(self, docname: str, record: dict[str, Any]) -> None:
        self.essays[docname] = dict(record)
        self.forget_derived()

    def note_listing(self, docname: str) -> None:
        self.listings[docname] = True

    def clear_doc(self, docname: str) -> None:
        self.forget_derived()
        for key in self.initial_data:
            self.data[key].pop(docname, None)

    def merge_domaindata(self, docnames: Set[str], otherdata: dict[str, Any]) -> None:
        self.forget_derived()
        for key in self.initial_data:
            for docname, value in otherdata[key].items():
                if docname in docnames:
                    self.data[key][docname] = value

    # -- Queries --------------------------------------------------------------

    def complete(self) -> dict[str, dict[str, Any]]:
        """The essays whose title has been read (every valid essay)."""
        return {d: r for d, r in self.essays.items() if "title" in r}

    def select(
        self, topic: str | None = None, tag: str | None = None, sort: str = "date"
    ) -> list[tuple[str, dict[str, Any]]]:
        """Essays filtered by *topic* and *tag*: newest first, or by title."""
        chosen = [
            (docname, record)
            for docname, record in self.complete().items()
            if (topic is None or record["topic"] == topic)
            and (tag is None or tag in record["tags"])
        ]
        if sort == "title":
            chosen.sort(key=lambda item: (item[1]["title"].casefold(), item[0]))
        else:
            chosen.sort(key=lambda item: (item[1]["title"].casefold(), item[0]))
            chosen.sort(key=lambda item: item[1]["date"], reverse=True)
        return chosen

    def derived(self, key: str, make: Callable[[], T]) -> T:
        """A value worked out from the domain's data, made once per build.

        Kept until the data changes: reading a document, merging parallel
        readers' data and ``env-updated`` (after which the records are final
        for this build) all drop every derived value."""
        if key not in self._derived:
            self._derived[key] = make()
        value: T = self._derived[key]
        return value

    def forget_derived(self) -> None:
        self._derived = {}

    def relations(self) -> Relations:
        """Links, tags, terms and mentions between the complete essays."""
        return self.derived("relations", lambda: Relations(self.complete()))

    def related(self, docname: str, count: int) -> list[tuple[str, list[str]]]:
        """The *count* essays most related to *docname*: see :class:`Relations`."""
        return self.relations().related(docname, count)

    def check_consistency(self) -> None:
        """Warn about two essays that share a slug or a title."""
        seen_slugs: dict[str, str] = {}
        seen_titles: dict[str, str] = {}
        for docname in sorted(self.essays):
            record = self.essays[docname]
            slug = docname.rsplit("/", 1)[-1]
            if slug in seen_slugs:
                logger.warning(
                    "essay slug %r is already used by '%s'; rename this file so "
                    "every essay has its own slug",
                    slug,
                    seen_slugs[slug],
                    location=(docname, 1),
                    type="essays",
                    subtype="duplicate",
                )
            else:
                seen_slugs[slug] = docname
            title = record.get("title")
            if title is None:
                continue
            if title in seen_titles:
                logger.warning(
                    "essay title %r is already used by '%s'; give this essay a "
                    "title of its own",
                    title,
                    seen_titles[title],
                    location=(docname, record.get("title_line", 1)),
                    type="essays",
                    subtype="duplicate",
                )
            else:
                seen_titles[title] = docname


def reading_minutes(words: int, words_per_minute: int) -> int:
    """Minutes to read *words* at *words_per_minute*, at least one."""
    return max(1, math.ceil(words / words_per_minute))


def get_domain(env: BuildEnvironment) -> EssayDomain:
    domain = env.domains[EssayDomain.name]
    assert isinstance(domain, EssayDomain)
    return domain


def _forget_derived(app: Sphinx, env: BuildEnvironment, *args: Any) -> None:
    get_domain(env).forget_derived()


def setup(app: Sphinx) -> None:
    app.add_domain(EssayDomain)
    # Records change while documents are read (the title, links and mentions
    # are added at doctree-read), so relations are rebuilt once reading ends.
    app.connect("env-before-read-docs", _forget_derived)
    app.connect("env-updated", _forget_derived, priority=0)
