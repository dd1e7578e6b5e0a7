"""Shared fixtures: Sphinx's test roots, and the real site built once per session.

The real site is a fixture like any other. It is built with ``-nW`` into a
temporary folder, so a test run never touches ``docs/_build``, and it is
checked with the tools a reader uses: an HTML parser, a PDF text extractor
and a real browser.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

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


def sphinx_build(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sphinx", *args],
        capture_output=True,
        text=True,
        check=False,
    )


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
        "-nW", "-j", "auto", "-b", "html", "-d", str(doctrees), str(DOCS), str(html)
    )
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    return Site(html=html, doctrees=doctrees)


@dataclass(frozen=True)
class Pdf:
    """The real site's PDF, with the LaTeX log that made it."""

    path: Path
    log: str


@pytest.fixture(scope="session")
def pdf(tmp_path_factory: pytest.TempPathFactory) -> Pdf:
    for tool in ("xelatex", "latexmk", "dot"):
        assert shutil.which(tool), f"{tool} is missing: run the tests with nox -s tests"
    out = tmp_path_factory.mktemp("pdf")
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
        # What Sphinx's generated latex/Makefile exports before it runs latexmk.
        env={**os.environ, "XINDYOPTS": "-L english -C utf8 -M sphinx.xdy"},
        capture_output=True,
        text=True,
        check=False,
    )
    log = (latex / "infrastructure-essays.log").read_text(errors="replace")
    assert made.returncode == 0, log[-3000:]
    return Pdf(path=latex / "infrastructure-essays.pdf", log=log)
