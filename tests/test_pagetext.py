"""Each essay's text is kept beside its doctree, not in the environment."""

from __future__ import annotations

import pickle
import shutil
from typing import TYPE_CHECKING

import pytest

from conftest import sphinx_build
from sphinx_essays import pagetext

if TYPE_CHECKING:
    from pathlib import Path

    from sphinx.testing.util import SphinxTestApp

ONE = "essays/observability/one"
THREE = "essays/observability/three"
SAID = "It stands alone."


@pytest.mark.sphinx("html", testroot="essays-site", freshenv=True, parallel=2)
def test_the_text_is_on_disk_and_not_in_the_environment(app: SphinxTestApp) -> None:
    app.build()
    sections = pagetext.load(app.env, "sections", THREE)
    assert sections is not None
    assert sections[0]["text"] == SAID
    prose = pagetext.load(app.env, "prose", THREE)
    assert prose is not None
    assert prose == [[10, SAID]]  # the paragraph, and its line in three.md
    # The environment Sphinx pickles (and each parallel reader sends back to
    # the main process) carries none of it.
    assert SAID.encode() not in pickle.dumps(app.env.domains["essay"].data)
    # Not an essay: no text kept.
    assert pagetext.load(app.env, "sections", "glossary") is None


def test_a_deleted_essay_leaves_no_text_behind(rootdir: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(rootdir / "test-essays-site", src)
    doctrees = tmp_path / "doctrees"

    def build() -> None:
        result = sphinx_build(
            "-q", "-b", "html", "-d", str(doctrees), str(src), str(tmp_path / "html")
        )
        assert result.returncode == 0, result.stderr

    build()
    kept = doctrees / "essays-text"
    assert (kept / "sections" / f"{ONE}.json").is_file()
    assert (kept / "prose" / f"{ONE}.json").is_file()
    (src / f"{ONE}.md").unlink()
    index = src / "essays/observability/index.md"
    index.write_text(index.read_text())  # unchanged, but read again
    build()
    assert not (kept / "sections" / f"{ONE}.json").exists()
    assert not (kept / "prose" / f"{ONE}.json").exists()
    assert (kept / "sections" / "essays/observability/two.json").is_file()
