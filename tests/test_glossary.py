"""The glossary knows where each term is used, and checks itself."""

from __future__ import annotations

import re
import shutil
from typing import TYPE_CHECKING

import pytest
from bs4 import BeautifulSoup

from sphinx_essays.glossary import az_list, distinctive

if TYPE_CHECKING:
    from pathlib import Path

    from sphinx.testing.util import SphinxTestApp


@pytest.mark.sphinx("html", testroot="essays-site", freshenv=True)
def test_each_term_lists_the_essays_that_use_it(app: SphinxTestApp) -> None:
    app.build()
    page = BeautifulSoup((app.outdir / "glossary.html").read_text(), "html.parser")
    used = {
        " ".join(dd.find_previous("dt").get_text().split()).rstrip("¶"): [
            a.get_text() for a in dd.select(".glossary-used-in a")
        ]
        for dd in page.select("dl.glossary dd")
    }
    assert used == {"Alpha": ["Essay One", "Essay Two"], "Beta": ["Essay One"]}
    link = page.select_one(".glossary-used-in a")
    assert link is not None and link["href"] == "essays/observability/one.html"


def test_az_list_jumps_to_the_first_term_of_each_letter() -> None:
    from docutils import nodes
    from sphinx import addnodes

    glossary = addnodes.glossary()
    for name in ("Alpha", "Apex", "beta", "0x19 prefix"):
        glossary += nodes.term(name, name, ids=[f"term-{name.replace(' ', '-')}"])
    html = BeautifulSoup(az_list(glossary), "html.parser")
    nav = html.select_one("nav.essays-az")
    assert nav is not None and nav["aria-label"] == "Glossary, A to Z"
    links = [(a.get_text(), a["href"]) for a in nav.select("a")]
    assert links == [
        ("#", "#term-0x19-prefix"),
        ("A", "#term-Alpha"),
        ("B", "#term-beta"),
    ]


@pytest.mark.sphinx("html", testroot="essays-site", freshenv=True)
def test_the_glossary_page_opens_with_its_az_list(app: SphinxTestApp) -> None:
    app.build()
    page = BeautifulSoup((app.outdir / "glossary.html").read_text(), "html.parser")
    nav = page.select_one("nav.essays-az")
    assert nav is not None
    ids = {dt.get("id") for dt in page.select("dl.glossary dt")}
    hrefs = [str(a["href"]) for a in nav.select("a")]
    assert hrefs == ["#term-Alpha", "#term-Beta"]
    assert {h[1:] for h in hrefs} <= ids
    # The list comes before the terms it jumps to.
    assert nav.find_next("dl", class_="glossary") is not None


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("Span", False),
        ("Gas", False),
        ("Tail-based sampling", True),
        ("OTLP", True),
        ("secp256k1", True),
        ("target_info", True),
        ("PromQL", True),
    ],
)
def test_only_distinctive_terms_are_searched_in_prose(
    term: str, expected: bool
) -> None:
    assert distinctive(term) is expected


def test_glossary_checks_find_every_problem_and_nothing_else(
    make_app: type[SphinxTestApp], rootdir: Path, tmp_path: Path
) -> None:
    srcdir = tmp_path / "src"
    shutil.copytree(rootdir / "test-glossary-checks", srcdir)
    app = make_app("html", srcdir=srcdir, freshenv=True)
    app.build()
    text = re.sub(r"\x1b\[[0-9;]*m", "", app.warning.getvalue())
    warnings = sorted(
        line.split(str(srcdir) + "/", 1)[1]
        for line in text.splitlines()
        if "is already registered" not in line and line.strip()
    )
    assert warnings == [
        "essays/observability/checked.md:12: WARNING: essay uses the glossary term "
        "'Tail-based sampling' but never links it; write {term}`Tail-based sampling` "
        "at its first use [essays.glossary]",
        "glossary.md:15: WARNING: glossary term 'gamma' is defined twice (also at "
        "glossary.md:12); merge the two definitions into one entry "
        "[essays.glossary]",
        "glossary.md:18: WARNING: glossary term '<kbd>Raw</kbd> term' contains raw "
        "HTML ('<kbd>'); write it as text, or escape each '<' as '\\<' "
        "[essays.glossary]",
        "glossary.md:9: WARNING: glossary term 'Unused term' is not linked from any "
        "page; link it with {term}`Unused term` where an essay uses it, or remove "
        "the entry [essays.glossary]",
    ]
