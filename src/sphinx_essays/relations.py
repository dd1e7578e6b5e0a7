"""The links, tags, terms and mentions between essays, worked out once per build.

Related essays, backlinks, neighbourhood maps and the rewrite fingerprints all
ask "who links, mentions or shares something with this essay?". Answering
that by scanning every essay for every page makes a build quadratic in the
number of essays. :class:`Relations` builds inverted indexes in one pass over
the essay records, so each question costs what its answer costs.

:meth:`EssayDomain.relations <sphinx_essays.domain.EssayDomain.relations>`
keeps one instance until the essay records change.
"""

from __future__ import annotations

import heapq
import re
from collections import defaultdict
from typing import Any

from docutils import nodes
from sphinx import addnodes
from sphinx.util import docname_join

#: The end of a sentence: punctuation, maybe a closing quote, then space.
SENTENCE_END = re.compile(r"[.!?][\"')\]]*\s+")
MAX_SENTENCE = 320


def normalise(term: str) -> str:
    """How Sphinx compares glossary terms: case-insensitively."""
    return " ".join(term.lower().split())


def link_target(xref: addnodes.pending_xref, docname: str) -> str:
    """The docname a ``{doc}`` reference points to."""
    target = str(xref["reftarget"])
    if target.startswith("/"):
        return target.lstrip("/")
    return docname_join(docname, target)


def is_citation(node: nodes.Node) -> bool:
    """Whether *node* is a ``{cite}`` role before it is resolved."""
    return isinstance(node, addnodes.pending_xref) and node.get("refdomain") == "cite"


def _inside(node: nodes.Node, ancestor: nodes.Node) -> bool:
    parent = node.parent
    while parent is not None:
        if parent is ancestor:
            return True
        parent = parent.parent
    return False


def _in_citation(text: nodes.Text, stop: nodes.Node) -> bool:
    parent = text.parent
    while parent is not None and parent is not stop:
        if is_citation(parent):
            return True
        parent = parent.parent
    return False


def sentence_around(paragraph: nodes.Element, xref: nodes.Node) -> str:
    """The sentence of *paragraph* that holds *xref*, whitespace collapsed.

    Citations are left out: before they are resolved their text is the raw
    key, which is no part of what the sentence says."""
    before: list[str] = []
    pieces: list[str] = []
    reached = False
    for text in paragraph.findall(nodes.Text):
        if _inside(text, xref):
            reached = True
        if _in_citation(text, paragraph):
            continue
        pieces.append(text.astext())
        if not reached:
            before.append(text.astext())
    full = "".join(pieces)
    start_offset = len("".join(before))
    end_offset = start_offset + (0 if is_citation(xref) else len(xref.astext()))
    start, end = 0, len(full)
    for match in SENTENCE_END.finditer(full):
        if match.end() <= start_offset:
            start = match.end()
        elif match.start() >= end_offset:
            end = match.start() + 1
            break
    sentence = " ".join(full[start:end].split())
    sentence = re.sub(r"\s+([.,;:!?)])", r"\1", sentence).replace("()", "")
    sentence = " ".join(sentence.split())
    if len(sentence) > MAX_SENTENCE:
        sentence = sentence[: MAX_SENTENCE - 1].rsplit(" ", 1)[0] + "…"
    return sentence


#: How much each shared signal counts when ranking related essays.
RELATED_WEIGHTS = {"link": 3, "tag": 2, "term": 1}


class Relations:
    """Indexes over the complete essay records (those whose title was read)."""

    def __init__(self, essays: dict[str, dict[str, Any]]) -> None:
        self.essays = essays
        self.links_out: dict[str, set[str]] = defaultdict(set)
        self.links_in: dict[str, set[str]] = defaultdict(set)
        self.by_tag: dict[str, list[str]] = defaultdict(list)
        self.by_term: dict[str, list[str]] = defaultdict(list)
        mentions: dict[str, list[tuple[str, str, int, dict[str, Any]]]]
        mentions = defaultdict(list)
        for source, record in essays.items():
            for target in record["links"]:
                if target in essays and target != source:
                    self.links_out[source].add(target)
                    self.links_in[target].add(source)
            for tag in set(record["tags"]):
                self.by_tag[tag].append(source)
            for term in set(record["terms"]):
                self.by_term[term].append(source)
            folded = record["title"].casefold()
            for position, mention in enumerate(record.get("mentions", [])):
                if mention["target"] != source:
                    mentions[mention["target"]].append(
                        (folded, source, position, mention)
                    )
        #: Every link between two essays, as sorted ``(source, target)`` pairs.
        self.edges = sorted(
            (source, target)
            for source, targets in self.links_out.items()
            for target in targets
        )
        self._mentions = {
            target: [(source, m) for _t, source, _p, m in sorted(found, key=_first3)]
            for target, found in mentions.items()
        }
        self._related: dict[tuple[str, int], list[tuple[str, list[str]]]] = {}

    def neighbours(self, docname: str) -> set[str]:
        """The essays *docname* links, and the essays that link it."""
        return self.links_out.get(docname, set()) | self.links_in.get(docname, set())

    def local_edges(self, docname: str) -> list[tuple[str, str]]:
        """The links into and out of *docname*, sorted like :attr:`edges`."""
        return sorted(
            [(docname, t) for t in self.links_out.get(docname, ())]
            + [(s, docname) for s in self.links_in.get(docname, ())]
        )

    def referenced_by(self, docname: str) -> list[tuple[str, dict[str, Any]]]:
        """Every mention of *docname* in another essay, by essay title then order."""
        return self._mentions.get(docname, [])

    def related(self, docname: str, count: int) -> list[tuple[str, list[str]]]:
        """The *count* essays most related to *docname*, with the reasons.

        The score adds :data:`RELATED_WEIGHTS` for a link in either direction,
        each shared tag and each shared glossary term. Ties are broken by
        title, then docname, so the ranking is deterministic."""
        key = (docname, count)
        if key not in self._related:
            self._related[key] = self._rank(docname, count)
        return self._related[key]

    def _rank(self, docname: str, count: int) -> list[tuple[str, list[str]]]:
        this = self.essays.get(docname)
        if this is None:
            return []
        scores: dict[str, int] = defaultdict(int)
        for other in self.neighbours(docname):
            scores[other] += RELATED_WEIGHTS["link"]
        for tag in set(this["tags"]):
            for other in self.by_tag[tag]:
                scores[other] += RELATED_WEIGHTS["tag"]
        for term in set(this["terms"]):
            for other in self.by_term[term]:
                scores[other] += RELATED_WEIGHTS["term"]
        scores.pop(docname, None)
        best = heapq.nsmallest(
            count,
            (
                (-score, self.essays[other]["title"].casefold(), other)
                for other, score in scores.items()
            ),
        )
        ranked = []
        for _score, _title, other in best:
            record = self.essays[other]
            reasons = []
            if other in self.neighbours(docname):
                reasons.append("linked")
            tags = sorted(set(this["tags"]) & set(record["tags"]))
            if tags:
                reasons.append("tags: " + ", ".join(tags))
            terms = set(this["terms"]) & set(record["terms"])
            if terms:
                plural = "s" if len(terms) != 1 else ""
                reasons.append(f"{len(terms)} shared term{plural}")
            ranked.append((other, reasons))
        return ranked


def _first3(item: tuple[str, str, int, dict[str, Any]]) -> tuple[str, str, int]:
    return item[0], item[1], item[2]
