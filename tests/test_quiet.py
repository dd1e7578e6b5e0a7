"""A rebuild's log says only what the author caused or can act on."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

from conftest import sphinx_build

if TYPE_CHECKING:
    from pathlib import Path

NOISE = (
    "matplotlib is not installed",
    "The configuration has changed",
    "MdParserConfig(",
)


def test_a_rebuild_logs_nothing_the_author_did_not_cause(
    rootdir: Path, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    shutil.copytree(rootdir / "test-essays-full", source)
    out = str(tmp_path / "html")
    first = sphinx_build("-nW", "-b", "html", str(source), out)
    assert first.returncode == 0, first.stderr
    essay = source / "essays/security/five.md"
    essay.write_text(essay.read_text() + "\nOne more sentence.\n")
    again = sphinx_build("-nW", "-b", "html", str(source), out)
    assert again.returncode == 0, again.stderr
    assert [line for line in again.stdout.splitlines() if line.startswith(NOISE)] == []
    assert "reading sources... [100%] essays/security/five" in again.stdout

    # A change the author made is still reported.
    conf = source / "conf.py"
    conf.write_text(conf.read_text() + '\nhtml_title = "Renamed"\n')
    changed = sphinx_build("-nW", "-b", "html", str(source), out)
    assert (
        "The configuration has changed (2 options: 'html_short_title', 'html_title')"
        in changed.stdout
    )
