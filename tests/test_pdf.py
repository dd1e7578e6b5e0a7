"""The PDF from the LaTeX builder: every essay, no broken references, no tofu."""

from __future__ import annotations

import re

import pytest
from pypdf import PdfReader

from conftest import ESSAYS, Pdf


@pytest.fixture(scope="module")
def pdf_text(pdf: Pdf) -> str:
    reader = PdfReader(pdf.path)
    text = "\n".join(page.extract_text() or "" for page in reader.pages)
    return " ".join(text.split())


def test_pdf_has_pages(pdf: Pdf) -> None:
    assert len(PdfReader(pdf.path).pages) > 10


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
    assert re.search(r"Distributed Tracing: A Practical Guide \(page \d+\):", pdf_text)
