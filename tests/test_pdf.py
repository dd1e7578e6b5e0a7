"""The PDF from the LaTeX builder: a book a reader would keep.

Every essay, no broken references and no tofu; front matter made for print,
no page left (nearly) blank, the indexes at the back with page numbers, an
outline of every part and essay, and the document's metadata.
"""

from __future__ import annotations

import re

import pytest
from docutils import nodes
from pypdf import PdfReader

from conftest import ESSAYS, Pdf
from sphinx_essays.book import LONG_TABLE_LINES, _long_tables_break, estimated_lines

TOPICS = ["Observability", "Infrastructure", "Security", "Teams"]
BACK_MATTER = [
    "Glossary",
    "Bibliography",
    "Essays by topic",
    "Essays by tag",
    "Essays by date",
    "Sources by kind",
    "Index",
]
#: Fewer characters than this (spaces aside) is a nearly blank page.
NEARLY_BLANK = 200
#: The last page of a chapter may be shorter, down to a header and one line.
LEFTOVER = 40


@pytest.fixture(scope="module")
def reader(pdf: Pdf) -> PdfReader:
    return PdfReader(pdf.path)


@pytest.fixture(scope="module")
def pages(reader: PdfReader) -> list[str]:
    """Each page's text, whitespace collapsed."""
    return [" ".join((page.extract_text() or "").split()) for page in reader.pages]


@pytest.fixture(scope="module")
def pdf_text(pages: list[str]) -> str:
    return " ".join(pages)


@pytest.fixture(scope="module")
def outline(reader: PdfReader) -> list[tuple[int, str, int]]:
    """The bookmarks as (depth, title, 0-based page), in order."""
    found: list[tuple[int, str, int]] = []

    def walk(items: list[object], depth: int) -> None:
        for item in items:
            if isinstance(item, list):
                walk(item, depth + 1)
            else:
                page = reader.get_destination_page_number(item)  # type: ignore[arg-type]
                found.append((depth, item.title, page))  # type: ignore[attr-defined]

    walk(reader.outline, 0)
    return found


def squeeze(text: str) -> str:
    """Text without spaces: bold headings lose theirs in extraction."""
    return "".join(text.split())


def letters(text: str) -> str:
    """Letters and digits only: titles wrap, hyphenate and get curly quotes."""
    return re.sub(r"[^0-9a-z]", "", text.lower())


def test_pdf_is_a_book_of_a_sensible_length(pages: list[str]) -> None:
    """Eight essays of about 5,400 words with their back matter run to about
    330 pages of about 2,300 characters each. Before the book was reworked the
    PDF averaged 1,940: web pages, blank and part-empty pages diluted it."""
    assert 150 <= len(pages) <= 450, len(pages)
    mean = sum(len(squeeze(text)) for text in pages) / len(pages)
    assert mean >= 2100, f"{mean:.0f} characters a page"


def test_pdf_opens_with_title_copyright_preface_and_contents(
    pages: list[str],
) -> None:
    title, copyright_page = letters(pages[0]), letters(pages[1])
    assert letters("Infrastructure Essays") in title
    assert letters("First edition, December 2026") in title
    assert "release" not in title
    licence = letters("Creative Commons Attribution 4.0 International")
    assert licence in copyright_page
    preface, contents = letters(pages[2]), letters(pages[3])
    assert preface.startswith("preface") and contents.startswith("contents")


def test_no_page_is_nearly_blank(
    pages: list[str], outline: list[tuple[int, str, int]]
) -> None:
    """Except the title and copyright pages, the page opening each part, and
    the last page before a part, a chapter or a back-matter section starts
    (or the book ends). That page holds whatever the chapter has left over,
    so how full it is depends only on where the chapter's text runs out: one
    more essay left the tail of a single bibliography entry on one. It still
    has to carry a line of text under its running header; a blank page fails
    wherever it is."""
    part = re.compile(r"^Part [IVX]+\s")
    # 0-based pages where an outline entry of depth 0 or 1 begins: a 1-based
    # page number in this set is the page just before one.
    starts = {page for depth, _title, page in outline if depth <= 1}
    short = [
        (number, text[:60])
        for number, text in enumerate(pages, start=1)
        if len(squeeze(text)) < NEARLY_BLANK
        and number > 2
        and not part.match(text)
        and not (
            (number in starts or number == len(pages))
            and len(squeeze(text)) >= LEFTOVER
        )
    ]
    assert short == []


def test_outline_lists_every_part_essay_and_back_matter(
    outline: list[tuple[int, str, int]],
) -> None:
    top = [title for depth, title, _page in outline if depth == 0]
    assert top[:4] == [
        f"{numeral} {topic}"
        for numeral, topic in zip(["I", "II", "III", "IV"], TOPICS, strict=True)
    ]
    assert top[4:] == BACK_MATTER
    chapters = [title for depth, title, _page in outline if depth == 1]
    for essay in ESSAYS:
        assert " ".join(essay.title.split()) in chapters, essay.title


def test_pdf_metadata_names_the_book(reader: PdfReader) -> None:
    meta = reader.metadata
    assert meta is not None
    assert meta.title == "Infrastructure Essays"
    assert meta.author == "The Infrastructure Essays authors"
    assert meta.subject and "observability" in meta.subject.lower()
    keywords = str(meta.get("/Keywords"))
    assert [k.strip() for k in keywords.split(",")] == [t.lower() for t in TOPICS]


def test_pdf_leaves_out_the_authors_material(
    outline: list[tuple[int, str, int]], pdf_text: str
) -> None:
    titles = {title for _depth, title, _page in outline}
    for page in ("How to add an essay", "Benchmarks", "Browse", "Concept map"):
        assert page not in titles
    for web_only in ("search box", "Atom feed", "Newest essays"):
        assert web_only not in pdf_text


@pytest.mark.parametrize(
    "index", ["Essays by topic", "Essays by tag", "Essays by date"]
)
def test_every_essay_is_in_each_essay_index_with_a_page_number(
    pages: list[str], outline: list[tuple[int, str, int]], index: str
) -> None:
    starts = {title: page for depth, title, page in outline if depth == 0}
    following = BACK_MATTER[BACK_MATTER.index(index) + 1]
    first, last = starts[index], starts[following]
    text = letters(" ".join(pages[first : last + 1]))
    # The index begins at its own heading, ends where the next one begins.
    text = text[text.index(letters(index)) :]
    text = text[: text.index(letters(following))]
    for essay in ESSAYS:
        # "Title (2026-11-24), 3": the date, then the page number.
        assert re.search(letters(essay.title) + r"\d{8}\d+", text), (index, essay.title)


def test_back_matter_is_in_the_book_with_page_numbers(
    pages: list[str], outline: list[tuple[int, str, int]]
) -> None:
    starts = {title: page for depth, title, page in outline if depth == 0}
    for title in BACK_MATTER:
        assert letters(title) in letters(pages[starts[title]]), title
    # Each back-matter chapter is in the contents with its page number.
    contents = letters(" ".join(pages[3:8]))
    for title in BACK_MATTER:
        assert re.search(letters(title) + r"\d+", contents), title


@pytest.mark.parametrize("essay", ESSAYS, ids=lambda e: e.docname)
def test_pdf_has_every_essay_title(pdf_text: str, essay: object) -> None:
    title = " ".join(essay.title.split())  # type: ignore[attr-defined]
    assert title in pdf_text


def test_pdf_has_no_unresolved_references(pdf_text: str) -> None:
    assert "??" not in pdf_text


def test_latex_log_has_no_missing_characters(pdf: Pdf) -> None:
    missing = [line for line in pdf.log.splitlines() if "Missing character" in line]
    assert missing == []


def test_latex_log_has_no_undefined_references(pdf: Pdf) -> None:
    assert not re.search(r"LaTeX Warning: (Reference|Citation) .* undefined", pdf.log)


def test_diagrams_are_vector_in_the_pdf(pdf: Pdf) -> None:
    figures = sorted(pdf.path.parent.glob("graphviz-*.pdf"))
    assert figures, "no Graphviz figure was included as PDF"


@pytest.mark.parametrize(
    "heading", ["Essays by topic", "Essays by tag", "Essays by date", "Referenced by"]
)
def test_pdf_has_the_generated_indexes_and_backlinks(
    pdf_text: str, heading: str
) -> None:
    # Headings are set in a bold font whose spaces pypdf does not extract.
    assert heading.replace(" ", "") in pdf_text.replace(" ", "")


def test_pdf_backlinks_give_page_numbers(pdf_text: str) -> None:
    title = letters("Distributed Tracing: A Practical Guide")
    assert re.search(title + r"page\d+", letters(pdf_text))


def table_of(rows: list[list[str]]) -> nodes.table:
    """A docutils table of *rows* (the first is the header), equal columns."""
    table = nodes.table()
    group = nodes.tgroup(cols=len(rows[0]))
    table += group
    for _ in rows[0]:
        group += nodes.colspec(colwidth=50)

    def row(cells: list[str]) -> nodes.row:
        built = nodes.row()
        for text in cells:
            built += nodes.entry("", nodes.paragraph(text=text))
        return built

    group += nodes.thead("", row(rows[0]))
    group += nodes.tbody("", *(row(cells) for cells in rows[1:]))
    return table


def test_a_table_taller_than_it_looks_breaks_across_pages() -> None:
    """Eleven rows of long sentences are taller than a page: as one block
    they left a blank page before them and ran off the bottom of the next
    (the tracing essay's version floors). Such a table is a longtable; a
    short one stays one block."""
    sentence = "a floor, the issue behind it and its workaround " * 5
    tall = table_of([["Software", "Floor"]] + [["Python SDK", sentence]] * 11)
    short = table_of([["Software", "Floor"]] + [["Python SDK", "1.42.1"]] * 11)
    assert estimated_lines(tall) >= LONG_TABLE_LINES > estimated_lines(short)

    class Builder:
        format = "latex"

    class App:
        builder = Builder()

    document = nodes.document(None, None)  # type: ignore[arg-type]
    document += [tall, short]
    _long_tables_break(App(), document, "essay")  # type: ignore[arg-type]
    assert "longtable" in tall["classes"]
    assert "longtable" not in short["classes"]
