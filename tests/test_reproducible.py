"""Reproducible builds: with SOURCE_DATE_EPOCH set (conftest.BUILD_ENV), a
serial build gives the same bytes as the parallel one the ``site`` fixture
made, and a second PDF the same bytes as the first."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from pypdf import PdfReader

from conftest import DOCS, SOURCE_DATE_EPOCH, build_pdf, file_bytes, sphinx_build

if TYPE_CHECKING:
    from pathlib import Path

    from conftest import Pdf, Site


def test_serial_build_equals_parallel_build_byte_for_byte(
    site: Site, tmp_path: Path
) -> None:
    html = tmp_path / "html"
    result = sphinx_build(
        "-nW", "-j", "1", "-b", "html", "-d", str(tmp_path / "dt"), str(DOCS), str(html)
    )
    assert result.returncode == 0, result.stderr
    serial, parallel = file_bytes(html), file_bytes(site.html)
    assert serial.keys() == parallel.keys()
    for name in ("_search/index.json", "objects.inv", "atom.xml", "index.html"):
        assert name in serial
    assert [name for name in serial if serial[name] != parallel[name]] == []


def test_two_pdf_builds_are_byte_identical(pdf: Pdf, tmp_path: Path) -> None:
    again = build_pdf(tmp_path)
    assert again.read_bytes() == pdf.path.read_bytes()
    created = PdfReader(pdf.path).metadata.creation_date
    epoch = dt.datetime.fromtimestamp(int(SOURCE_DATE_EPOCH), tz=dt.UTC)
    assert created == epoch
