"""Relations between essays: the indexes behind related essays, backlinks,
neighbourhood maps and rewrite fingerprints."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sphinx_essays.relations import Relations

if TYPE_CHECKING:
    from collections.abc import Sequence


def record(
    title: str,
    *,
    tags: Sequence[str] = (),
    terms: Sequence[str] = (),
    links: Sequence[str] = (),
    mentions: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    return {
        "title": title,
        "tags": list(tags),
        "terms": list(terms),
        "links": list(links),
        "mentions": [{"target": t, "anchor": a} for t, a in mentions],
    }


ESSAYS = {
    "a": record("Alpha", tags=["x", "y"], terms=["t1", "t2"], links=["b", "gone", "a"]),
    "b": record("Beta", tags=["x"], terms=["t1"], mentions=[("a", "m1"), ("c", "m2")]),
    "c": record("Gamma", tags=["y"], links=["a"], mentions=[("a", "m1"), ("c", "m2")]),
    "d": record("delta", tags=["x"], terms=["t2"]),
    "e": record("Epsilon"),
}


def test_links_ignore_missing_and_self_targets() -> None:
    relations = Relations(ESSAYS)
    assert relations.edges == [("a", "b"), ("c", "a")]
    assert relations.neighbours("a") == {"b", "c"}
    assert relations.local_edges("a") == [("a", "b"), ("c", "a")]
    assert relations.neighbours("e") == set()


def test_related_scores_links_tags_and_terms() -> None:
    relations = Relations(ESSAYS)
    # b: link 3 + tag x 2 + term t1 1 = 6; c: link 3 + tag y 2 = 5;
    # d: tag x 2 + term t2 1 = 3. Epsilon shares nothing and is left out.
    assert relations.related("a", 5) == [
        ("b", ["linked", "tags: x", "1 shared term"]),
        ("c", ["linked", "tags: y"]),
        ("d", ["tags: x", "1 shared term"]),
    ]
    assert relations.related("a", 1) == [("b", ["linked", "tags: x", "1 shared term"])]
    # From b: a scores 6 (linked, tag x, term t1), d scores 2 (tag x), c 0.
    assert [other for other, _ in relations.related("b", 3)] == ["a", "d"]
    # From d: a scores 3 (tag x, term t2), b scores 2 (tag x).
    assert [other for other, _ in relations.related("d", 3)] == ["a", "b"]


def test_equal_scores_are_ordered_by_case_folded_title() -> None:
    essays = {
        "z": record("zulu", tags=["t"]),
        "m": record("Mike", tags=["t"]),
        "q": record("alpha", tags=["t"]),
        "k": record("Kilo", tags=["t"]),
    }
    assert [other for other, _ in Relations(essays).related("k", 3)] == ["q", "m", "z"]


def test_essays_that_share_nothing_have_no_related_essays() -> None:
    relations = Relations(ESSAYS)
    assert relations.related("e", 3) == []
    assert relations.related("missing", 3) == []


def test_referenced_by_skips_self_mentions_and_sorts_by_title() -> None:
    relations = Relations(ESSAYS)
    assert [(s, m["anchor"]) for s, m in relations.referenced_by("a")] == [
        ("b", "m1"),
        ("c", "m1"),
    ]
    # c's mention of itself does not count; b's mention of c does.
    assert [s for s, _m in relations.referenced_by("c")] == ["b"]
    assert relations.referenced_by("e") == []
