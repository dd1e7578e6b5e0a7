"""Generated indexes of essays: by topic, by tag and by date.

They are :class:`sphinx.domains.Index` subclasses of the ``essay`` domain, so
the HTML builder writes them as ``essay-topics.html``, ``essay-tags.html`` and
``essay-archive.html`` and the LaTeX builder prints them at the end of the PDF,
with no special-casing. Each entry links the essay's title section: the LaTeX
writer drops an entry without an anchor, and gives the others a page number.
Each is also a ``std`` label (``{ref}`essay-tags```).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sphinx.domains import Index, IndexEntry

if TYPE_CHECKING:
    from collections.abc import Iterable

Content = list[tuple[str, list[IndexEntry]]]


def _essays(index: Index) -> dict[str, dict[str, Any]]:
    from sphinx_essays.domain import EssayDomain

    assert isinstance(index.domain, EssayDomain)
    return index.domain.complete()


def _by_title(essays: Iterable[tuple[str, dict[str, Any]]]) -> list[tuple[str, Any]]:
    return sorted(essays, key=lambda item: (item[1]["title"].casefold(), item[0]))


def _entry(docname: str, record: dict[str, Any], subtype: int = 0) -> IndexEntry:
    anchor = record.get("anchor", "")
    return IndexEntry(record["title"], subtype, docname, anchor, record["date"], "", "")


class TopicIndex(Index):
    """Each topic, with its essays by title."""

    name = "topics"
    localname = "Essays by topic"
    #: The page's ``<meta name="description">`` (:mod:`.metadata`).
    description = "Every essay, grouped by its topic, each with its summary."
    shortname = "topics"

    def generate(self, docnames: Iterable[str] | None = None) -> tuple[Content, bool]:
        groups: dict[str, list[IndexEntry]] = {}
        for docname, record in _by_title(_essays(self).items()):
            groups.setdefault(record["topic"], []).append(_entry(docname, record))
        return sorted(groups.items()), False


class TagIndex(Index):
    """Each tag, with a count and its essays by title."""

    name = "tags"
    localname = "Essays by tag"
    #: The page's ``<meta name="description">`` (:mod:`.metadata`).
    description = (
        "Every essay under each of its tags: the themes that cut across topics."
    )
    shortname = "tags"

    def generate(self, docnames: Iterable[str] | None = None) -> tuple[Content, bool]:
        tagged: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for docname, record in _essays(self).items():
            for tag in record["tags"]:
                tagged.setdefault(tag, []).append((docname, record))
        content: Content = []
        for tag in sorted(tagged):
            essays = _by_title(tagged[tag])
            count = f"{len(essays)} essay" + ("s" if len(essays) != 1 else "")
            heading = IndexEntry(count, 1, "", "", "", "", "")
            content.append((tag, [heading] + [_entry(d, r, 2) for d, r in essays]))
        return content, False


class ArchiveIndex(Index):
    """Every essay by the month it entered the knowledge base, newest first."""

    name = "archive"
    localname = "Essays by date"
    #: The page's ``<meta name="description">`` (:mod:`.metadata`).
    description = (
        "Every essay by the month it entered the knowledge base, newest first."
    )
    shortname = "archive"

    def generate(self, docnames: Iterable[str] | None = None) -> tuple[Content, bool]:
        months: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for docname, record in _essays(self).items():
            months.setdefault(record["date"][:7], []).append((docname, record))
        content: Content = []
        for month in sorted(months, reverse=True):
            essays = _by_title(months[month])
            essays.sort(key=lambda item: item[1]["date"], reverse=True)
            content.append((month, [_entry(d, r) for d, r in essays]))
        return content, False
