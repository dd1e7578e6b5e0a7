"""Drafts: previewed in live preview, left out of everything published.

The scaffold (``nox -s new``) writes ``status: draft``. A build with
``essays_drafts`` (what ``nox -s live`` runs) shows the draft with a badge;
every other build leaves it out of the pages, the sidebar and indexes, the
feed, the sitemap, the search index, the PDF's LaTeX and the EPUB. Deleting
the status line publishes it everywhere.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
from typing import TYPE_CHECKING

from conftest import ROOT, file_bytes, sphinx_build

if TYPE_CHECKING:
    from pathlib import Path

SCAFFOLD = (sys.executable, str(ROOT / "tools" / "new_essay.py"))
TITLE = "Queues Hide Latency"
DOCNAME = "essays/observability/queues-hide-latency"


def built(source: Path, out: Path, builder: str, *options: str) -> str:
    """Build; return every text file of the output, joined."""
    doctrees = out.with_name(out.name + ".doctrees")
    done = sphinx_build(
        "-nW", "-b", builder, "-d", str(doctrees), *options, str(source), str(out)
    )
    assert done.returncode == 0, done.stderr
    return "\n".join(
        data.decode("utf-8", "replace")
        for name, data in file_bytes(out).items()
        if name.endswith((".html", ".xhtml", ".xml", ".tex", ".txt", ".json", ".js"))
    )


def test_a_draft_is_previewed_and_published_only_when_it_says_so(
    rootdir: Path, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    shutil.copytree(rootdir / "test-essays-full", source)
    done = subprocess.run(
        [*SCAFFOLD, TITLE, "--topic", "observability", "--docs", str(source)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "as a draft" in done.stdout
    essay = source / f"{DOCNAME}.md"

    preview = built(source, tmp_path / "preview", "html", "-D", "essays_drafts=1")
    assert TITLE in preview
    page = (tmp_path / "preview" / f"{DOCNAME}.html").read_text()
    assert 'class="essay-draft-badge">Draft<' in page

    for builder in ("html", "latex", "epub"):
        output = built(source, tmp_path / f"draft-{builder}", builder)
        assert TITLE not in output, builder
        assert "queues-hide-latency" not in output, builder

    # Publish: the scaffold's status line goes.
    text = essay.read_text()
    assert "status: draft\n" in text
    essay.write_text(text.replace("status: draft\n", ""))
    html = built(source, tmp_path / "html", "html")
    for name in ("sitemap.xml", "atom.xml", "llms.txt", "index.html"):
        assert "queues-hide-latency" in (tmp_path / "html" / name).read_text(), name
    index = tmp_path / "html" / "_search"
    search = "\n".join(p.read_text() for p in index.rglob("*") if p.is_file())
    assert TITLE in search
    assert 'class="essay-draft-badge"' not in html
    assert TITLE in built(source, tmp_path / "latex", "latex")
    assert TITLE in built(source, tmp_path / "epub", "epub")
    assert str(dt.date.today()) in (tmp_path / "html" / f"{DOCNAME}.html").read_text()
