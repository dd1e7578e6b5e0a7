"""Incremental builds equal fresh ones, and rewrite only pages that changed."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from conftest import file_bytes

if TYPE_CHECKING:
    from sphinx.testing.util import SphinxTestApp

ROOT = "test-essays-site"
#: The real site's extensions on a small corpus.
FULL = "test-essays-full"
#: Under furo, so the essays sidebar and previous/next links are covered too.
FURO = {"html_theme": "furo"}

NEW_ESSAY = """---
topic: observability
tags: [tracing, metrics]
summary: The summary of Essay Seven.
date: 2026-04-01
---

# Essay Seven

It links {doc}`one` and uses {term}`Alpha`.
"""


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new))


def rename_title(src: Path) -> None:
    edit(src / "essays/security/six.md", "# Essay Six", "# Essay Six Renamed")


def change_tag(src: Path) -> None:
    edit(src / "essays/observability/two.md", "tags: [tracing]", "tags: [logging]")


def add_link(src: Path) -> None:
    edit(
        src / "essays/observability/three.md",
        "It stands alone.",
        "It stands next to {doc}`two`.",
    )


def remove_link(src: Path) -> None:
    edit(
        src / "essays/security/four.md",
        "It links {doc}`one <../observability/one>`.",
        "It links nothing.",
    )


def add_essay(src: Path) -> None:
    (src / "essays/observability/seven.md").write_text(NEW_ESSAY)


def delete_essay(src: Path) -> None:
    (src / "essays/security/six.md").unlink()


def edit_prose(src: Path) -> None:
    edit(
        src / "essays/security/five.md", "It stands alone too.", "It stands alone, too."
    )


def add_term(src: Path) -> None:
    edit(src / "glossary.md", "Beta\n", "Gamma\n  The third term.\n\nBeta\n")
    edit(
        src / "essays/observability/two.md",
        "It uses {term}`Alpha`.",
        "It uses {term}`Alpha` and {term}`Gamma`.",
    )


def rename_term(src: Path) -> None:
    edit(src / "glossary.md", "Beta\n", "Bravo\n")
    edit(src / "essays/observability/one.md", "{term}`Beta`", "{term}`Bravo`")


def add_citation(src: Path) -> None:
    edit(
        src / "essays/security/five.md",
        "It stands alone too.",
        "It stands alone too {cite:p}`w3c-2021-trace-context`.",
    )


def change_config(src: Path) -> None:
    edit(src / "conf.py", 'project = "Test Essays"', 'project = "Test Essays Two"')


def warnings(app: SphinxTestApp) -> list[str]:
    text = re.sub(r"\x1b\[[0-9;]*m", "", app.warning.getvalue())
    return [line for line in text.splitlines() if "is already registered" not in line]


@pytest.mark.parametrize(
    "change",
    [
        edit_prose,
        rename_title,
        change_tag,
        add_link,
        remove_link,
        add_essay,
        delete_essay,
        add_term,
        rename_term,
        add_citation,
        change_config,
    ],
    ids=lambda change: change.__name__,
)
def test_incremental_build_equals_fresh_build(
    make_app: type[SphinxTestApp], rootdir: Path, tmp_path: Path, change: object
) -> None:
    """Every output file, not only the pages: the sitemap, the feed, the
    search index, ``objects.inv``, images, maps and ``llms.txt``. The root
    has the real site's extensions (sitemap, bibliography, Open Graph, git
    dates: its copy has no git history, as in a source export)."""
    src = tmp_path / "src"
    shutil.copytree(rootdir / FULL, src)
    first = make_app("html", srcdir=src)
    first.build()
    assert warnings(first) == []
    change(src)  # type: ignore[operator]
    again = make_app("html", srcdir=src)
    again.build()
    assert warnings(again) == []

    fresh_src = tmp_path / "fresh"
    shutil.copytree(src, fresh_src, ignore=shutil.ignore_patterns("_build"))
    fresh = make_app("html", srcdir=fresh_src, freshenv=True)
    fresh.build()
    incremental, clean = file_bytes(again.outdir), file_bytes(fresh.outdir)
    assert {"sitemap.xml", "atom.xml", "objects.inv", "llms.txt"} <= clean.keys()
    assert sorted(incremental.keys() ^ clean.keys()) == []
    assert [name for name in clean if incremental[name] != clean[name]] == []


def test_an_edit_that_changes_nothing_elsewhere_rewrites_one_page(
    make_app: type[SphinxTestApp], rootdir: Path, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    shutil.copytree(rootdir / ROOT, src)
    first = make_app("html", srcdir=src, confoverrides=FURO)
    first.build()
    before = {p: p.stat().st_mtime_ns for p in first.outdir.rglob("essays/**/*.html")}
    edit(
        src / "essays/security/five.md", "It stands alone too.", "It stands alone, too."
    )
    make_app("html", srcdir=src, confoverrides=FURO).build()
    rewritten = sorted(
        p.relative_to(first.outdir).as_posix()
        for p, mtime in before.items()
        if p.stat().st_mtime_ns != mtime
    )
    # Sphinx itself also rewrites the direct toctree parent of a changed page.
    assert rewritten == ["essays/security/five.html", "essays/security/index.html"]


def test_a_rebuild_with_no_change_keeps_the_search_index(
    make_app: type[SphinxTestApp], rootdir: Path, tmp_path: Path
) -> None:
    """The index is written again only when a page it is made of was read
    again (its fingerprint, beside the doctrees); and always when the output
    lost it."""
    src = tmp_path / "src"
    shutil.copytree(rootdir / FULL, src)
    make_app("html", srcdir=src).build()
    again = make_app("html", srcdir=src)
    facets = again.outdir / "_search" / "facets.json"
    written = facets.stat().st_mtime_ns
    again.build()
    assert "search: the index is up to date" in again.status.getvalue()
    assert facets.stat().st_mtime_ns == written
    shutil.rmtree(again.outdir / "_search")
    restored = make_app("html", srcdir=src)
    restored.build()
    assert "search: indexed" in restored.status.getvalue()
    assert facets.is_file()
    edit_prose(src)
    edited = make_app("html", srcdir=src)
    edited.build()
    assert "search: indexed" in edited.status.getvalue()


def test_an_edit_rewrites_only_the_index_files_that_changed(
    make_app: type[SphinxTestApp], rootdir: Path, tmp_path: Path
) -> None:
    """After an edit, the files of the index whose bytes are unchanged are
    not written again; a build that stopped while changing the index (no
    record of what it holds) makes the next one write it whole."""
    src = tmp_path / "src"
    shutil.copytree(rootdir / FULL, src)
    first = make_app("html", srcdir=src)
    first.build()
    index = first.outdir / "_search"
    assert index.is_dir()
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in index.rglob("*.json")}
    edit_prose(src)
    edited = make_app("html", srcdir=src)
    edited.build()
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in index.rglob("*.json")}
    assert after.keys() == before.keys()
    rewritten = [p for p in after if after[p][0] != before[p][0]]
    changed = [p for p in after if after[p][1] != before[p][1]]
    assert changed, "the edit changed nothing in the index"
    assert sorted(rewritten) == sorted(changed)
    assert len(rewritten) < len(after) / 4
    match = re.search(r"\((\d+) files written\)", edited.status.getvalue())
    assert match is not None
    assert int(match.group(1)) == len(rewritten)

    # As if a build had been killed while it changed the index.
    (Path(edited.doctreedir) / "essays-search.files").unlink()
    edit(src / "essays/security/five.md", "It stands alone, too.", "It stands alone.")
    whole = make_app("html", srcdir=src)
    whole.build()
    files = [p for p in index.rglob("*") if p.is_file()]
    match = re.search(r"\((\d+) files written\)", whole.status.getvalue())
    assert match is not None
    assert int(match.group(1)) == len(files)
