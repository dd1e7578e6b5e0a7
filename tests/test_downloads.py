"""The book's downloads in the sidebar: a link to a file the site holds, or
an address Read the Docs serves, or a note saying how to build it; never a
link that leads nowhere."""

from __future__ import annotations

import runpy
import shutil
from typing import TYPE_CHECKING

import pytest
from bs4 import BeautifulSoup

from conftest import DOCS

if TYPE_CHECKING:
    from pathlib import Path

    from sphinx.testing.util import SphinxTestApp

ROOT = "test-essays-site"
SETTINGS = {
    "html_theme": "furo",
    "essays_downloads": (("PDF", "book/essays.pdf", "nox -s pdf"),),
}
PAGES = ["index.html", "essays/security/four.html"]


def sidebar(outdir: Path, page: str) -> BeautifulSoup:
    html = BeautifulSoup((outdir / page).read_text(encoding="utf-8"), "html.parser")
    found = html.select_one(".sidebar-drawer .essays-downloads")
    assert found is not None, page
    return found


def test_a_built_file_is_copied_and_linked_then_unlinked_when_it_goes(
    make_app: type[SphinxTestApp], rootdir: Path, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    shutil.copytree(rootdir / ROOT, src)
    (src / "book").mkdir()
    (src / "book" / "essays.pdf").write_bytes(b"%PDF-1.5 first")
    app = make_app("html", srcdir=src, confoverrides=SETTINGS)
    app.build()
    for page in PAGES:
        links = sidebar(app.outdir, page).select("a.essays-download")
        assert [a.get_text() for a in links] == ["PDF"]
        target = (app.outdir / page).parent / str(links[0]["href"])
        assert target.read_bytes() == b"%PDF-1.5 first", page

    # A new PDF replaces the copy; a build with no PDF links none.
    (src / "book" / "essays.pdf").write_bytes(b"%PDF-1.5 second")
    again = make_app("html", srcdir=src, confoverrides=SETTINGS)
    again.build()
    copy = again.outdir / "_downloads/book/essays.pdf"
    assert copy.read_bytes() == b"%PDF-1.5 second"

    (src / "book" / "essays.pdf").unlink()
    gone = make_app("html", srcdir=src, confoverrides=SETTINGS)
    gone.build()
    for page in PAGES:
        block = sidebar(gone.outdir, page)
        assert block.select("a") == [], page
        assert "PDF: not built yet; run nox -s pdf" in " ".join(
            block.get_text().split()
        )


def test_addresses_are_linked_as_they_are(
    make_app: type[SphinxTestApp], rootdir: Path, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    shutil.copytree(rootdir / ROOT, src)
    address = "https://essays.example.org/_/downloads/en/latest/epub/"
    settings = {**SETTINGS, "essays_downloads": (("EPUB", address, ""),)}
    app = make_app("html", srcdir=src, confoverrides=settings)
    app.build()
    links = sidebar(app.outdir, "index.html").select("a.essays-download")
    assert [str(a["href"]) for a in links] == [address]


@pytest.mark.parametrize("on_read_the_docs", [True, False])
def test_the_sites_configuration_links_what_its_host_builds(
    monkeypatch: pytest.MonkeyPatch, on_read_the_docs: bool
) -> None:
    if on_read_the_docs:
        monkeypatch.setenv("READTHEDOCS", "True")
    else:
        monkeypatch.delenv("READTHEDOCS", raising=False)
    monkeypatch.chdir(DOCS)
    conf = runpy.run_path(str(DOCS / "conf.py"))
    downloads = conf["essays_downloads"]
    assert [label for label, _target, _build in downloads] == ["PDF", "EPUB"]
    if on_read_the_docs:
        base = "https://infrastructure-essays.readthedocs.io/_/downloads/en/latest/"
        assert [t for _l, t, _b in downloads] == [base + "pdf/", base + "epub/"]
    else:
        # The files the book sessions write (noxfile.py).
        assert [t for _l, t, _b in downloads] == [
            "_build/pdf/infrastructure-essays.pdf",
            "_build/epub/InfrastructureEssays.epub",
        ]
        assert [b for _l, _t, b in downloads] == ["nox -s pdf", "nox -s epub"]
