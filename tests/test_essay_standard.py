"""Every essay meets the house standard (see README, "Adding an essay")."""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING

import pytest
from docutils import nodes
from sphinx import addnodes

from conftest import ESSAYS, Site, archive_titles
from sphinx_essays.metadata import count_words

if TYPE_CHECKING:
    from conftest import Essay

MIN_WORDS, MAX_WORDS = 2000, 4000


def doctree(site: Site, essay: Essay) -> nodes.document:
    tree = pickle.loads((site.doctrees / f"{essay.docname}.doctree").read_bytes())
    assert isinstance(tree, nodes.document)
    return tree


def prose_words(tree: nodes.document) -> int:
    """Words of prose: not code, diagrams, tables, the header or the sources."""
    tree = tree.deepcopy()
    for node in list(tree.findall(nodes.table)):
        node.parent.remove(node)
    for node in list(tree.findall(nodes.container)):
        if "essay-header" in node["classes"]:
            node.parent.remove(node)
    for section in list(tree.findall(nodes.section)):
        if section[0].astext().strip() == "Further reading":
            section.parent.remove(section)
    return count_words(tree)


def test_every_archive_essay_is_here() -> None:
    assert sorted(e.title for e in ESSAYS) == sorted(archive_titles())


@pytest.mark.parametrize("essay", ESSAYS, ids=lambda e: e.docname)
def test_length(site: Site, essay: Essay) -> None:
    words = prose_words(doctree(site, essay))
    assert MIN_WORDS <= words <= MAX_WORDS, f"{essay.path}: {words} words of prose"


@pytest.mark.parametrize("essay", ESSAYS, ids=lambda e: e.docname)
def test_key_takeaways_box(site: Site, essay: Essay) -> None:
    boxes = [
        n
        for n in doctree(site, essay).findall(nodes.admonition)
        if "key-takeaways" in n["classes"]
    ]
    assert len(boxes) == 1, f"{essay.path}: needs one Key takeaways box"
    assert boxes[0][0].astext() == "Key takeaways"
    assert len(list(boxes[0].findall(nodes.list_item))) >= 3


@pytest.mark.parametrize("essay", ESSAYS, ids=lambda e: e.docname)
def test_further_reading_has_three_sources(site: Site, essay: Essay) -> None:
    tree = doctree(site, essay)
    sections = [
        s for s in tree.findall(nodes.section) if s[0].astext() == "Further reading"
    ]
    assert sections, f"{essay.path}: no 'Further reading' section"
    assert sections[-1] is list(tree.findall(nodes.section))[-1], "must come last"
    items = list(sections[0].findall(nodes.list_item))
    assert len(items) >= 3, f"{essay.path}: {len(items)} sources"


@pytest.mark.parametrize("essay", ESSAYS, ids=lambda e: e.docname)
def test_links_other_essays_in_prose(site: Site, essay: Essay) -> None:
    targets = {
        x["reftarget"].lstrip("/")
        for x in doctree(site, essay).findall(addnodes.pending_xref)
        if x["reftype"] == "doc"
        and x.parent is not None
        and isinstance(x.parent, nodes.paragraph)
    }
    others = {e.docname for e in ESSAYS} - {essay.docname}
    assert len(targets & others) >= 3, f"{essay.path}: links {sorted(targets & others)}"


@pytest.mark.parametrize("essay", ESSAYS, ids=lambda e: e.docname)
def test_links_ten_glossary_terms(site: Site, essay: Essay) -> None:
    terms = {
        x["reftarget"].lower()
        for x in doctree(site, essay).findall(addnodes.pending_xref)
        if x["reftype"] == "term"
    }
    assert len(terms) >= 10, f"{essay.path}: {len(terms)} distinct terms"
