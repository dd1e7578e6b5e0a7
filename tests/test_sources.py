"""Sources: citations, each essay's references, the sources index, the checks."""

from __future__ import annotations

import re
import shutil
from typing import TYPE_CHECKING

import pytest
from bs4 import BeautifulSoup

if TYPE_CHECKING:
    from pathlib import Path

    from sphinx.testing.util import SphinxTestApp

#: testroot -> the located warnings its bibliography or citations must give.
BAD_SOURCES = {
    "sources-unknown-key": [
        "index.md:5: WARNING: citation key 'w3c-2021-trace-contxt' is not in the "
        "bibliography; add an entry with that key to references.bib; the "
        "closest keys are "
        "'w3c-2021-trace-context' [essays.sources]",
    ],
    "sources-uncited": [
        "references.bib:10: WARNING: source 'w3c-2022-baggage' is not cited by any "
        "page; cite it with {cite:p}`w3c-2022-baggage` where an essay relies on it, "
        "or remove the entry [essays.sources]",
    ],
    "sources-fields": [
        "references.bib:10: WARNING: source 'no-fields' has no author; add author = "
        "{First Last and First Last}, or author = {{Organisation}} for a corporate "
        "author [essays.sources]",
        "references.bib:10: WARNING: source 'no-fields' has no four-digit year; add "
        "year = {YYYY} [essays.sources]",
        "references.bib:10: WARNING: source 'no-fields' has no urldate; add urldate "
        "= {YYYY-MM-DD}, the day the claim was last checked against the source "
        "[essays.sources]",
        "references.bib:10: WARNING: source 'no-fields' has no kind; add kind = "
        "{...}, one of: spec, paper, docs, book, report, article [essays.sources]",
    ],
    "sources-duplicate-key": [
        "references.bib:10: WARNING: source key 'w3c-2021-trace-context' is defined "
        "twice (first at references.bib:1); merge the two "
        "entries into one [essays.sources]",
    ],
    "sources-duplicate-url": [
        "references.bib:10: WARNING: source 'trace-context' has the same address as "
        "'w3c-2021-trace-context' (references.bib:1); "
        "keep one key for one source [essays.sources]",
    ],
}


def warnings_of(app: SphinxTestApp) -> list[str]:
    text = re.sub(r"\x1b\[[0-9;]*m", "", app.warning.getvalue())
    return [line for line in text.splitlines() if "[essays.sources]" in line]


@pytest.mark.parametrize("testroot", sorted(BAD_SOURCES))
def test_each_bad_source_gives_its_located_warning(
    testroot: str, make_app: type[SphinxTestApp], rootdir: Path, tmp_path: Path
) -> None:
    srcdir = tmp_path / f"test-{testroot}"
    shutil.copytree(rootdir / f"test-{testroot}", srcdir)
    app = make_app("html", srcdir=srcdir, freshenv=True)
    app.build()
    found = [w.replace(f"{srcdir}/", "") for w in warnings_of(app)]
    assert found == BAD_SOURCES[testroot]


@pytest.mark.sphinx("html", testroot="sources", freshenv=True)
def test_citations_references_and_the_sources_index(app: SphinxTestApp) -> None:
    app.build()
    assert app.warning.getvalue() == ""
    one = BeautifulSoup(
        (app.outdir / "essays/observability/one.html").read_text(), "html.parser"
    )
    cited = [" ".join(c.get_text().split()) for c in one.select(".bibtex-citation")]
    assert cited == [
        "(Sigelman et al., 2010)",
        "(W3C, 2021)",
        "(Sigelman et al., 2010; W3C, 2021)",
    ]
    # Each citation links to the bibliography entry it names.
    first = one.select_one(".bibtex-citation a")
    assert first is not None
    assert str(first["href"]).startswith("../../references.html#")
    # The essay ends with its own references, generated from the .bib file.
    references = [
        " ".join(li.get_text().split()) for li in one.select(".essay-references li")
    ]
    assert references == [
        "Benjamin H. Sigelman, Luiz André Barroso, Mike Burrows, Pat Stephenson, "
        "Manoj Plakal, Donald Beaver, Saul Jaspan, and Chandan Shanbhag. Dapper, a "
        "Large-Scale Distributed Systems Tracing Infrastructure. Technical Report "
        "dapper-2010-1, Google, 2010. URL: https://research.google/pubs/pub36356/ "
        "(checked on 2026-11-30).",
        "W3C. Trace Context. W3C Recommendation, 2021. URL: "
        "https://www.w3.org/TR/trace-context/ (checked on 2025-10-01).",
    ]
    two = BeautifulSoup(
        (app.outdir / "essays/observability/two.html").read_text(), "html.parser"
    )
    assert [li.get_text() for li in two.select(".essay-references li")] == [
        references[1]
    ]

    index = BeautifulSoup(
        (app.outdir / "essay-sources.html").read_text(), "html.parser"
    )
    rows = [" ".join(r.get_text().split()) for r in index.select("table tr")]
    rows = [row for row in rows if row]
    assert rows == [
        "Specifications and standards",
        "Trace Context (W3C, 2021)",
        "Essay One The header carries a version, a trace ID, a parent ID and flags.",
        "Essay One Both sources agree on this much.",
        "Essay Two The parent ID names the caller's span.",
        "Papers",
        "Dapper, a Large-Scale Distributed Systems Tracing Infrastructure "
        "(Sigelman et al., 2010)",
        "Essay One Google sampled one request in 1,024 in production.",
        "Essay One Both sources agree on this much.",
    ]
    # Every entry links to the exact spot: the bibliography entry, or the
    # sentence that cites it.
    for link in index.select("table a"):
        page, anchor = str(link["href"]).split("#")
        target = BeautifulSoup((app.outdir / page).read_text(), "html.parser")
        assert target.find(id=anchor) is not None, link["href"]


@pytest.mark.sphinx("latex", testroot="sources", freshenv=True)
def test_sources_in_the_book(app: SphinxTestApp) -> None:
    app.build()
    assert app.warning.getvalue() == ""
    tex = (app.outdir / "testsources.tex").read_text()
    # One bibliography at the back, labelled by author and year.
    assert r"\bibitem[Sigelman et al., 2010]" in tex
    assert r"\bibitem[W3C, 2021]" in tex
    # Each essay still ends with its own references.
    assert tex.count(r"\subsubsection*{References}") == 2
    # The sources index, with a page reference for each citing sentence.
    index = tex[tex.index(r"\bigletter{Papers}") :]
    assert (
        r"\sphinxstyleindexentry{Essay One}\sphinxstyleindexpageref"
        r"{essays/observability/one:\detokenize{essay-citation-1}}" in index
    )
    for page, anchor in re.findall(r"pageref\{([^:}]+):\\detokenize\{([^}]+)\}", index):
        assert rf"\label{{\detokenize{{{page}:{anchor}}}}}" in tex, anchor
