"""Each essay's social preview image: drawn once, small, and redrawn only
when what it shows changes."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

import pytest
from PIL import Image

from sphinx_essays import social

if TYPE_CHECKING:
    from pathlib import Path

    from sphinx.testing.util import SphinxTestApp

ROOT = "test-essays-site"
ESSAYS = [
    "essays/observability/one",
    "essays/observability/two",
    "essays/observability/three",
    "essays/security/four",
    "essays/security/five",
    "essays/security/six",
]


def cards(outdir: Path) -> dict[str, bytes]:
    folder = outdir / social.FOLDER
    return {
        p.relative_to(folder).with_suffix("").as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*.png"))
    }


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{path} has no {old!r}"
    path.write_text(text.replace(old, new), encoding="utf-8")


@pytest.mark.sphinx("html", testroot="essays-site", freshenv=True)
def test_every_essay_and_only_essays_get_a_small_card(app: SphinxTestApp) -> None:
    app.build()
    drawn = cards(app.outdir)
    assert sorted(drawn) == sorted(ESSAYS)
    for docname in ESSAYS:
        path = app.outdir / social.FOLDER / f"{docname}.png"
        assert path.stat().st_size < 100_000, docname
        with Image.open(path) as image:
            assert image.format == "PNG"
            assert image.size == (social.WIDTH, social.HEIGHT)


def test_a_card_shows_its_essay() -> None:
    """Different text draws different pixels, and a long summary still fits."""
    base = social.draw_card("Site", "Security", "A title", "A summary.")
    assert social.draw_card("Site", "Security", "A title", "A summary.") == base
    assert social.draw_card("Site", "Security", "A title", "Another one.") != base
    assert social.draw_card("Site", "Teams", "A title", "A summary.") != base
    long = social.draw_card("Site", "Security", "A title " * 30, "Word " * 400)
    assert len(long) < 100_000


def test_a_card_changes_only_when_its_essay_does(
    make_app: type[SphinxTestApp], rootdir: Path, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    shutil.copytree(rootdir / ROOT, src)
    first = make_app("html", srcdir=src)
    first.build()
    before = cards(first.outdir)
    cache = first.doctreedir / "social"
    drawn_before = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    assert len(drawn_before) == len(ESSAYS)

    edit(
        src / "essays/security/four.md",
        "The summary of Essay Four.",
        "A new summary of Essay Four.",
    )
    edit(src / "essays/security/five.md", "It stands alone too.", "It stands alone.")
    again = make_app("html", srcdir=src)
    again.build()
    after = cards(again.outdir)

    changed = sorted(name for name in before if before[name] != after[name])
    assert changed == ["essays/security/four"]
    drawn_after = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    assert {n: t for n, t in drawn_after.items() if n in drawn_before} == drawn_before
    assert len(drawn_after) == len(drawn_before) + 1, "one card is redrawn, no more"

    fresh_src = tmp_path / "fresh"
    shutil.copytree(src, fresh_src, ignore=shutil.ignore_patterns("_build"))
    fresh = make_app("html", srcdir=fresh_src, freshenv=True)
    fresh.build()
    assert cards(fresh.outdir) == after
