"""A mistyped term or essay link says where to look and what was meant."""

from __future__ import annotations

import re
import shutil
from typing import TYPE_CHECKING

from conftest import sphinx_build

if TYPE_CHECKING:
    from pathlib import Path


def test_typos_in_a_term_and_an_essay_path_get_did_you_mean(
    rootdir: Path, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    shutil.copytree(rootdir / "test-essays-full", source)
    essay = source / "essays/observability/one.md"
    essay.write_text(
        essay.read_text()
        .replace("{term}`Alpha`", "{term}`Alpah`")
        .replace("</essays/security/four>", "</essays/security/fuor>")
    )
    done = sphinx_build("-b", "html", str(source), str(tmp_path / "html"))
    warnings = re.sub(r"\x1b\[[0-9;]*m", "", done.stderr).splitlines()
    assert (
        f"{essay}:10: WARNING: term 'Alpah' is not in the glossary (glossary.md);"
        " did you mean 'Alpha'? link an existing term, or define 'Alpah' in the"
        " glossary [ref.term]" in warnings
    )
    assert (
        f"{essay}:10: WARNING: no page '/essays/security/fuor' (looked for"
        " 'essays/security/fuor'); did you mean '../security/four'? write the path"
        " relative to this file, or from the source folder with a leading '/'"
        " [ref.doc]" in warnings
    )
    assert len(warnings) == 2, warnings
