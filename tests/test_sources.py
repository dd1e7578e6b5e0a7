"""Sources: citations, each essay's references, the sources index, the checks."""

from __future__ import annotations

import re
import shutil
from typing import TYPE_CHECKING

import pybtex.database
import pybtex.plugin
import pytest
from bs4 import BeautifulSoup
from test_every_page import AXE, AXE_OPTIONS

from conftest import file_bytes, serve, sphinx_build
from sphinx_essays.cite_this import bibtex_text
from sphinx_essays.sources import (
    LIBRARY,
    STYLE,
    EssaysLabelStyle,
    EssaysStyle,
    author_year,
    decode_latex,
    long_label,
    short_label,
    suffix,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from playwright.sync_api import Browser
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
        "(W3C, Trace Context)",
        "(Sigelman et al., 2010; W3C, Trace Context)",
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
        "Specifications",
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
    assert r"\bibitem[W3C, Trace Context]" in tex
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


@pytest.fixture(scope="module")
def sources_site(
    rootdir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The sources test site under furo, served with the strict CSP."""
    out = tmp_path_factory.mktemp("sources")
    result = sphinx_build(
        "-nW",
        "-q",
        "-b",
        "html",
        "-D",
        "html_theme=furo",
        "-d",
        str(out / "doctrees"),
        str(rootdir / "test-sources"),
        str(out / "html"),
    )
    assert result.returncode == 0, result.stderr
    with serve(out / "html") as url:
        yield url


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [1280, 390])
def test_citation_previews_for_every_reader(
    browser: Browser, sources_site: str, scheme: str, width: int
) -> None:
    context = browser.new_context(
        color_scheme=scheme,  # type: ignore[arg-type]
        viewport={"width": width, "height": 844},
    )
    page = context.new_page()
    # The test site has no favicon; the browser's request for one is no error.
    page.route("**/favicon.ico", lambda route: route.fulfill(status=204))
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(sources_site + "essays/observability/one.html")
    tooltip = page.locator("#kb-tooltip")

    # A screen reader hears the full reference as the link's description.
    link = page.locator("article .bibtex-citation a").first
    preview_id = link.get_attribute("aria-describedby")
    assert preview_id and preview_id.startswith("kb-preview-")
    described = " ".join((page.locator(f"#{preview_id}").text_content() or "").split())
    assert described.startswith("Benjamin H. Sigelman, Luiz André Barroso")
    assert described.endswith("(checked on 2026-11-30). Paper · Open the source")

    # Keyboard: focus shows it, Tab reaches its link out, Escape closes it.
    link.focus()
    tooltip.wait_for(state="visible")
    assert "Dapper, a Large-Scale Distributed Systems" in tooltip.inner_text()
    out = tooltip.locator("a", has_text="Open the source")
    assert out.get_attribute("href") == "https://research.google/pubs/pub36356/"
    results = AXE.run(page, options=AXE_OPTIONS).response
    assert results["violations"] == [], [
        (v["id"], [n["target"] for n in v["nodes"]]) for v in results["violations"]
    ]
    page.keyboard.press("Escape")
    tooltip.wait_for(state="hidden")

    # Hover: each source of a two-source citation shows the preview of both.
    both = page.locator("article .bibtex-citation").nth(2).locator("a")
    assert both.count() == 2
    both.nth(1).hover()
    tooltip.wait_for(state="visible")
    text = tooltip.inner_text()
    assert "Dapper" in text and "Trace Context" in text
    assert errors == []
    context.close()


@pytest.mark.sphinx("html", testroot="sources", freshenv=True)
def test_cite_this_essay_gives_a_bibtex_entry_that_parses(app: SphinxTestApp) -> None:
    app.build()
    page = BeautifulSoup(
        (app.outdir / "essays/observability/one.html").read_text(), "html.parser"
    )
    block = page.select_one(".essay-cite-this pre")
    assert block is not None
    text = block.get_text()
    assert text == (
        "@misc{test-sources-one,\n"
        "  author = {{Test Author}},\n"
        "  title = {Essay One},\n"
        "  howpublished = {Test Sources},\n"
        "  year = {2026},\n"
        "  url = {https://essays.example.org/essays/observability/one.html},\n"
        "  note = {Added 2026-11-20},\n"
        "}\n"
    )
    parsed = pybtex.database.parse_string(text, "bibtex")
    assert parsed.entries["test-sources-one"].fields["title"] == "Essay One"


def test_bibtex_text_escapes_what_latex_would_read() -> None:
    assert bibtex_text('"Design Me" 100% & more_ {x}') == (
        r'"Design Me" 100\% \& more\_ \{x\}'
    )


def cite_one_more(src: Path) -> None:
    page = src / "essays/observability/two.md"
    page.write_text(
        page.read_text()
        + "\nThe paper sampled one request in 1,024 {cite:p}`sigelman-2010-dapper`.\n"
    )


def cite_one_less(src: Path) -> None:
    page = src / "essays/observability/one.md"
    text = page.read_text()
    old = " {cite:p}`sigelman-2010-dapper,w3c-2021-trace-context`"
    assert old in text
    page.write_text(text.replace(old, " {cite:p}`w3c-2021-trace-context`"))


def edit_an_entry(src: Path) -> None:
    bib = src / "references.bib"
    text = bib.read_text()
    assert "title = {Trace Context}" in text
    bib.write_text(text.replace("title = {Trace Context}", "title = {Trace Context 1}"))


def add_a_second_entry_by_the_same_author(src: Path) -> None:
    """A second W3C work of 2021 in the bibliography."""
    bib = src / "references.bib"
    bib.write_text(
        bib.read_text()
        + "\n@misc{w3c-2021-baggage,\n  author = {{W3C}},\n  title = {Baggage},\n"
        "  year = {2021},\n  url = {https://www.w3.org/TR/baggage/},\n"
        "  urldate = {2026-11-30},\n  kind = {spec},\n}\n"
    )
    page = src / "essays/observability/two.md"
    page.write_text(
        page.read_text() + "\nBaggage travels too {cite:p}`w3c-2021-baggage`.\n"
    )


@pytest.mark.parametrize(
    "change",
    [
        cite_one_more,
        cite_one_less,
        edit_an_entry,
        add_a_second_entry_by_the_same_author,
    ],
    ids=lambda change: change.__name__,
)
@pytest.mark.parametrize("builder", ["html", "latex"])
def test_incremental_build_after_a_citation_change_equals_a_fresh_one(
    rootdir: Path, tmp_path: Path, change: Callable[[Path], None], builder: str
) -> None:
    src = tmp_path / "src"
    shutil.copytree(rootdir / "test-sources", src)

    def build(source: Path, out: Path) -> dict[str, bytes]:
        result = sphinx_build(
            "-nW",
            "-q",
            "-b",
            builder,
            "-d",
            str(out / "doctrees"),
            str(source),
            str(out / builder),
        )
        assert result.returncode == 0, result.stderr
        return file_bytes(out / builder)

    build(src, tmp_path / "incremental")
    change(src)
    incremental = build(src, tmp_path / "incremental")
    fresh = build(src, tmp_path / "fresh")
    assert incremental.keys() == fresh.keys()
    assert [name for name in fresh if incremental[name] != fresh[name]] == []


def test_labels_say_who_and_when_or_which_work_of_an_organisation() -> None:
    entries = pybtex.database.parse_string(
        "@misc{a, author = {{OpenTelemetry Authors}}, title = {Tracing API: the "
        "spec}, year = {2026}}\n"
        "@misc{b, author = {Ann Lee and Bo Ma and Cy Ng}, title = {T}, year = {2010}}\n"
        "@misc{c, author = {Ann Lee}, title = {U}, year = {2010}}\n",
        "bibtex",
    ).entries
    assert short_label(entries["a"]) == "OpenTelemetry Authors, Tracing API"
    assert author_year(entries["a"]) == "OpenTelemetry Authors, 2026"
    assert short_label(entries["b"]) == "Lee et al., 2010"
    assert short_label(entries["c"]) == "Lee, 2010"
    assert [suffix(n) for n in (0, 25, 26, 27, 701, 702)] == [
        "a",
        "z",
        "aa",
        "ab",
        "zz",
        "aaa",
    ]


def test_equal_labels_are_told_apart_by_title_then_by_letter() -> None:
    """Never a letter glued to a title ("W3C, Trace Contexta")."""
    entries = pybtex.database.parse_string(
        "@misc{conf-wal, author = {{PG Group}}, title = {Server Configuration: "
        "Write Ahead Log}, year = {2026}}\n"
        "@misc{conf-repl, author = {{PG Group}}, title = {Server Configuration: "
        "Replication}, year = {2026}}\n"
        "@misc{rekor, author = {{Sigstore Authors}}, title = {Rekor}, year = {2026}}\n"
        "@misc{rekor-readme, author = {{Sigstore Authors}}, title = {Rekor}, "
        "year = {2026}}\n"
        "@misc{sre, author = {Betsy Beyer and Chris Jones and Jennifer Petoff}, "
        "title = {Site Reliability Engineering}, year = {2016}}\n"
        "@misc{sre-a, author = {Betsy Beyer and Chris Jones and Jennifer Petoff}, "
        "title = {Availability Table}, year = {2016}}\n"
        "@misc{alone, author = {{PG Group}}, title = {Routine Vacuuming: "
        "Autovacuum}, year = {2026}}\n",
        "bibtex",
    ).entries
    assert long_label(entries["conf-wal"]) == (
        "PG Group, Server Configuration: Write Ahead Log"
    )
    labels = dict(
        zip(entries, EssaysLabelStyle().format_labels(entries.values()), strict=True)
    )
    assert labels == {
        "conf-wal": "PG Group, Server Configuration: Write Ahead Log",
        "conf-repl": "PG Group, Server Configuration: Replication",
        "rekor": "Sigstore Authors, Rekor, 2026a",
        "rekor-readme": "Sigstore Authors, Rekor, 2026b",
        "sre": "Beyer et al., 2016a",
        "sre-a": "Beyer et al., 2016b",
        "alone": "PG Group, Routine Vacuuming",
    }


ENTRY = r"""@misc{{knuth-1984,
  author = {{Donald E. Knuth}}, title = {{{title}}}, year = {{1984}},
  url = {{https://example.org/texbook}}, urldate = {{2026-12-03}}, kind = {{book}},
}}"""


def test_a_warm_process_formats_an_entry_again_only_when_it_changes() -> None:
    """Live preview keeps formatted entries; an edited entry is never stale."""
    pybtex.plugin.register_plugin("pybtex.style.labels", STYLE, EssaysLabelStyle)
    style = EssaysStyle()

    def formatted(title: str) -> object:
        data = pybtex.database.parse_string(ENTRY.format(title=title), "bibtex")
        return style.format_entry("Knuth, 1984", data.entries["knuth-1984"])

    first = formatted(r"The \TeX{}book")
    assert formatted(r"The \TeX{}book") is first  # same fields: kept
    edited = formatted(r"The \TeX{}book, second printing")
    assert edited is not first
    assert "second printing" in edited.text.render_as("text")
    assert "second printing" not in first.text.render_as("text")
    assert decode_latex(r"Schr\"odinger") == "Schrödinger"


@pytest.mark.sphinx("html", testroot="sources", freshenv=True)
def test_the_one_pass_filter_finds_what_the_library_finds(app: SphinxTestApp) -> None:
    """Our replacement for sphinxcontrib-bibtex's ``get_filtered_entries``
    (one pass over the citations, not one per entry) yields what the
    library's own does, for every bibliography, cited entries or not."""
    app.build()
    domain = app.env.domains["cite"]
    library = LIBRARY["get_filtered_entries"]
    assert type(domain).get_filtered_entries is not library
    keys = list(domain.bibliographies)
    assert keys
    for key in keys:
        ours = [(name, entry.key) for name, entry in domain.get_filtered_entries(key)]
        theirs = [(name, entry.key) for name, entry in library(domain, key)]
        assert ours == theirs
        assert ours, "the bibliography lists nothing"
