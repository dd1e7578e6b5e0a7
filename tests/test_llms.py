"""llms.txt and llms-full.txt: every essay with its summary, by topic."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from sphinx.testing.util import SphinxTestApp

BASE = "https://essays.example.org/"


@pytest.mark.sphinx("html", testroot="essays-site", freshenv=True)
def test_llms_txt_lists_every_essay_by_topic_with_its_summary(
    app: SphinxTestApp,
) -> None:
    app.build()
    text = (app.outdir / "llms.txt").read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines[0] == "# Test Essays"
    assert lines[2].startswith("> ")
    headings = [line for line in lines if line.startswith("## ")]
    assert headings == ["## Observability", "## Security", "## Reference"]
    four = (
        f"- [Essay Four]({BASE}essays/security/four.html): The summary of Essay Four."
    )
    assert four in lines
    essays = [line for line in lines if line.startswith("- [Essay ")]
    assert len(essays) == 6
    # Within a topic, by title.
    security = lines[lines.index("## Security") + 2 : lines.index("## Reference") - 1]
    assert [line.split("]")[0] for line in security] == [
        "- [Essay Five",
        "- [Essay Four",
        "- [Essay Six",
    ]
    assert f"- [Essays by topic]({BASE}essay-topics.html)" in lines


@pytest.mark.sphinx("html", testroot="essays-site", freshenv=True)
def test_llms_full_txt_holds_each_essays_text_without_front_matter(
    app: SphinxTestApp,
) -> None:
    app.build()
    full = (app.outdir / "llms-full.txt").read_text(encoding="utf-8")
    index = (app.outdir / "llms.txt").read_text(encoding="utf-8")
    assert full.startswith(index)
    assert f"Source: {BASE}essays/security/five.html" in full
    assert "# Essay Five" in full and "It stands alone too." in full
    assert "topic: security" not in full
    app.build(force_all=True)
    assert (app.outdir / "llms-full.txt").read_text(encoding="utf-8") == full
