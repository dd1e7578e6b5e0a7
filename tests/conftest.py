"""Shared fixtures: Sphinx's test roots, and the real site built once per session.

The real site is a fixture like any other. It is built with ``-nW`` into a
temporary folder, so a test run never touches ``docs/_build``, and it is
checked with the tools a reader uses: an HTML parser, a PDF text extractor
and a real browser.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from sphinx_essays.metadata import FrontMatter, is_essay, split_front_matter

pytest_plugins = ["sphinx.testing.fixtures"]

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
ARCHIVE = Path(__file__).parent / "data" / "blog-archive.txt"


@pytest.fixture(scope="session")
def rootdir() -> Path:
    """Where ``@pytest.mark.sphinx(testroot=...)`` finds its ``test-*`` sites."""
    return Path(__file__).parent / "roots"


@dataclass(frozen=True)
class Essay:
    """One essay source file of the real site."""

    docname: str
    path: Path
    front: FrontMatter

    @property
    def source(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def title(self) -> str:
        for line in self.source.splitlines():
            if line.startswith("# "):
                return line[2:].strip()
        raise AssertionError(f"{self.path}: no '# ' title line")


def essays() -> list[Essay]:
    """Every essay of the real site, in docname order."""
    found = []
    for path in sorted(DOCS.glob("essays/*/*.md")):
        docname = path.relative_to(DOCS).with_suffix("").as_posix()
        if not is_essay(docname, "essays"):
            continue
        front = split_front_matter(path.read_text(encoding="utf-8"))
        assert isinstance(front, FrontMatter), f"{path}: {front}"
        found.append(Essay(docname, path, front))
    return found


ESSAYS = essays()


def archive_titles() -> list[str]:
    """The essay titles of the blog archive, a verbatim copy of the seed.

    After its "Blog Archive" heading the archive alternates a title paragraph
    and a summary paragraph."""
    text = ARCHIVE.read_text(encoding="utf-8")
    blocks = [b.strip() for b in text.split("\n\n") if b.strip()]
    assert blocks[0] == "Blog Archive", blocks[0]
    return blocks[1::2]


#: Builds are reproducible: with this set, two builds give the same bytes.
SOURCE_DATE_EPOCH = "1767225600"  # 2026-01-01T00:00:00Z
#: Sphinx colours its log when FORCE_COLOR is set (as some CI runners set it);
#: tests read the log as plain text, so colour is always off.
BUILD_ENV = {
    **{k: v for k, v in os.environ.items() if k not in {"FORCE_COLOR", "FORCE_COLOUR"}},
    "NO_COLOR": "1",
    "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH,
}


def sphinx_build(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sphinx", *args],
        capture_output=True,
        text=True,
        check=False,
        env=BUILD_ENV,
    )


def file_bytes(folder: Path) -> dict[str, bytes]:
    """Every file under *folder*, by its relative POSIX path: what two builds
    or two moments of one output folder are compared by."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@dataclass(frozen=True)
class Site:
    """The real site, built with ``-nW``."""

    html: Path
    doctrees: Path


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    out = tmp_path_factory.mktemp("site")
    html, doctrees = out / "html", out / "doctrees"
    result = sphinx_build(
        "-nW", "-j", "2", "-b", "html", "-d", str(doctrees), str(DOCS), str(html)
    )
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    return Site(html=html, doctrees=doctrees)


def named_block(site: Site, docname: str, name: str) -> str:
    """The text of the code block ``:name: <name>`` in *docname*, as built:
    what the essay shows the reader, so an example test checks exactly that."""
    import pickle

    from docutils import nodes

    tree = pickle.loads((site.doctrees / f"{docname}.doctree").read_bytes())
    found = [
        block.astext()
        for block in tree.findall(nodes.literal_block)
        if name in block["names"]
        or (block.parent is not None and name in block.parent.get("names", []))
    ]
    assert len(found) == 1, f"{docname}: {len(found)} code blocks named {name!r}"
    return found[0]


#: What Sphinx's generated latex/Makefile exports before it runs latexmk, and
#: the dates xdvipdfmx writes (FORCE_SOURCE_DATE makes TeX's own \today obey too).
LATEXMK_ENV = {
    **BUILD_ENV,
    "XINDYOPTS": "-L english -C utf8 -M sphinx.xdy",
    "FORCE_SOURCE_DATE": "1",
}


def build_pdf(out: Path) -> Path:
    """Build the real site's PDF under *out*; return the PDF's path."""
    latex = out / "latex"
    result = sphinx_build(
        "-nW", "-b", "latex", "-d", str(out / "doctrees"), str(DOCS), str(latex)
    )
    assert result.returncode == 0, result.stderr
    made = subprocess.run(
        [
            "latexmk",
            "-pdfxe",
            "-interaction=nonstopmode",
            "-halt-on-error",
            "infrastructure-essays.tex",
        ],
        cwd=latex,
        env=LATEXMK_ENV,
        capture_output=True,
        text=True,
        check=False,
    )
    log = (latex / "infrastructure-essays.log").read_text(errors="replace")
    assert made.returncode == 0, log[-3000:]
    return latex / "infrastructure-essays.pdf"


@dataclass(frozen=True)
class Pdf:
    """The real site's PDF, with the LaTeX log that made it."""

    path: Path
    log: str


@pytest.fixture(scope="session")
def pdf(tmp_path_factory: pytest.TempPathFactory) -> Pdf:
    for tool in ("xelatex", "latexmk", "dot"):
        assert shutil.which(tool), f"{tool} is missing: run the tests with nox -s tests"
    path = build_pdf(tmp_path_factory.mktemp("pdf"))
    log = path.with_suffix(".log").read_text(errors="replace")
    return Pdf(path=path, log=log)


# -- A browser, and the site served under a strict policy ----------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

#: The Content Security Policy the site must work under (issue 8). The test
#: server sends it with every response, so every browser test runs under it.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class StrictHandler(SimpleHTTPRequestHandler):
    """Serves files with the site's Content Security Policy, quietly; a
    missing file gets *not_found* (a page of the site), as a host would."""

    not_found: Path | None = None

    def send_error(
        self, code: int, message: str | None = None, explain: str | None = None
    ) -> None:
        if code != 404 or self.not_found is None:
            super().send_error(code, message, explain)
            return
        body = self.not_found.read_bytes()
        self.send_response(404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def end_headers(self) -> None:
        self.send_header("Content-Security-Policy", CSP)
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve(directory: Path, not_found: str | None = None) -> Iterator[str]:
    """Serve *directory* on a free local port; yield its base URL."""
    handler_class = type(
        "Handler",
        (StrictHandler,),
        {"not_found": directory / not_found if not_found else None},
    )
    handler = functools.partial(handler_class, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def base_url(site: Site) -> Iterator[str]:
    """The real site, served with the strict Content Security Policy."""
    with serve(site.html) as url:
        yield url


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    assert shutil.which(CHROMIUM), (
        "chromium is missing: run the tests with nox -s tests"
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()
