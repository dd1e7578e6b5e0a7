"""Every essay meets the house standard (see README, "Adding an essay")."""

from __future__ import annotations

import pickle
import sys
from typing import TYPE_CHECKING

import pytest
from docutils import nodes
from sphinx import addnodes

from conftest import ESSAYS, ROOT, Site, archive_titles, sphinx_build

if TYPE_CHECKING:
    from pathlib import Path

    from conftest import Essay

sys.path.insert(0, str(ROOT / "tools"))
import essay_standard


def doctree(site: Site, essay: Essay) -> nodes.document:
    tree = pickle.loads((site.doctrees / f"{essay.docname}.doctree").read_bytes())
    assert isinstance(tree, nodes.document)
    return tree


def test_every_archive_essay_is_here() -> None:
    """The archive's eight titles, character for character; essays added
    since have titles of their own."""
    titles = {e.title for e in ESSAYS}
    assert [title for title in archive_titles() if title not in titles] == []


@pytest.mark.parametrize("essay", ESSAYS, ids=lambda e: e.docname)
def test_length(site: Site, essay: Essay) -> None:
    words = essay_standard.prose_words(doctree(site, essay))
    assert essay_standard.MIN_WORDS <= words <= essay_standard.MAX_WORDS, (
        f"{essay.path}: {words} words of prose"
    )


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
def test_cites_its_sources_inline(site: Site, essay: Essay) -> None:
    cited = essay_standard.citations(doctree(site, essay))
    sources = {key for keys in cited for key in keys}
    assert len(cited) >= essay_standard.MIN_CITATIONS, f"{essay.path}: {len(cited)}"
    assert len(sources) >= essay_standard.MIN_SOURCES, f"{essay.path}: {sources}"


@pytest.mark.parametrize("essay", ESSAYS, ids=lambda e: e.docname)
def test_no_reference_list_is_typed_by_hand(site: Site, essay: Essay) -> None:
    titles = {
        s[0].astext().casefold() for s in doctree(site, essay).findall(nodes.section)
    }
    assert not titles & essay_standard.HAND_TYPED, f"{essay.path}: {titles}"
    assert "## Further reading" not in essay.source


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


def test_the_lint_check_passes_every_essay_of_the_site(site: Site) -> None:
    assert essay_standard.check(site.doctrees) == []


def test_the_lint_check_names_the_file_and_what_is_missing(
    rootdir: Path, tmp_path: Path
) -> None:
    doctrees = tmp_path / "doctrees"
    result = sphinx_build(
        "-q",
        "-b",
        "dummy",
        "-d",
        str(doctrees),
        str(rootdir / "test-essays-valid"),
        str(tmp_path / "out"),
    )
    assert result.returncode == 0, result.stderr
    path = "docs/essays/observability/sample-essay.md"
    problems = essay_standard.check(doctrees)
    assert problems[0].startswith(f"{path}: ")
    assert "rule 1: " in problems[0]
    assert "words of prose; write between 2500 and 5500" in problems[0]
    assert problems[1:] == [
        f"{path}: rule 2: 0 Key takeaways boxes; add exactly one (an admonition "
        "with :class: key-takeaways)",
        f"{path}: rule 3: 0 inline citations of 0 sources; cite 20 or more, of 15 "
        "or more sources, with {cite:p}`key` next to each claim a reader may want "
        "to check",
        f"{path}: rule 5: links 0 other essays in its prose; link 3 or more with "
        "{doc}",
        f"{path}: rule 6: links 1 glossary terms; link 10 or more with {{term}}",
    ]


def rules(text: str) -> dict[int, str]:
    """The numbered list of *text* ("1. ..." items, joined across lines)."""
    found: dict[int, str] = {}
    number = 0
    for line in text.splitlines():
        head, dot, rest = line.strip().partition(". ")
        if dot and head.isdigit():
            number = int(head)
            found[number] = rest
        elif number and line.startswith("   ") and line.strip():
            found[number] += " " + line.strip()
        else:
            number = 0
    return found


def test_the_guide_states_every_rule_the_check_enforces_with_its_number() -> None:
    """The authors' guide and the check cannot drift apart: the same rules,
    in the same order, with the check's own numbers."""
    assert essay_standard.__doc__ is not None
    checked = rules(essay_standard.__doc__)
    guide = (ROOT / "docs/about/how-to-add-an-essay.md").read_text()
    written = rules(guide[guide.index("house standard") :])
    assert sorted(written) == sorted(checked) == list(range(1, 7))
    numbers = {
        1: [f"{essay_standard.MIN_WORDS:,}", f"{essay_standard.MAX_WORDS:,}"],
        2: ["three"],
        3: [str(essay_standard.MIN_CITATIONS), str(essay_standard.MIN_SOURCES)],
        4: ["Further reading", "References", "Sources", "Bibliography"],
        5: ["three"],
        6: ["ten"],
    }
    for rule, words in numbers.items():
        for word in words:
            assert word in checked[rule], (rule, word)
            assert word in written[rule], (rule, word)
