"""The front-matter schema: one test root per kind of bad input."""

from __future__ import annotations

import re
import shutil
from typing import TYPE_CHECKING

import pytest

from conftest import sphinx_build

if TYPE_CHECKING:
    from pathlib import Path

    from sphinx.testing.util import SphinxTestApp

#: testroot -> (essay file, line, a phrase that tells the author the fix)
BAD_FRONT_MATTER = {
    "metadata-none": (
        "essays/observability/no-front-matter.md",
        1,
        "essay has no front matter; begin the file with a '---' line",
    ),
    "metadata-yaml": (
        "essays/observability/broken-yaml.md",
        3,
        "front matter is not valid YAML: the flow sequence that starts on this "
        "line is never closed (the parser noticed at line 4: expected ',' or ']', "
        "but got ':'); close the list with ']' on this line",
    ),
    "metadata-missing": (
        "essays/observability/missing-summary.md",
        1,
        "front matter is missing 'summary'; add a 'summary:' line",
    ),
    "metadata-topic": (
        "essays/observability/unknown-topic.md",
        2,
        "topic 'observabilty' is not a topic of this knowledge base; use one of: "
        "observability, infrastructure, security, teams",
    ),
    "metadata-tags": (
        "essays/observability/bad-tag.md",
        4,
        "tag 'Distributed Tracing' is not a slug; use lowercase letters, digits "
        "and single hyphens, for example 'distributed-tracing'",
    ),
    "metadata-summary": (
        "essays/observability/markup-summary.md",
        5,
        "summary must be plain text; remove the markup characters [ ]",
    ),
    "metadata-date": (
        "essays/observability/bad-date.md",
        5,
        "date '24/11/2026' is not an ISO date; write the day the essay entered "
        "the knowledge base as YYYY-MM-DD",
    ),
    "metadata-status": (
        "essays/observability/bad-status.md",
        6,
        "status 'drafts' is not a status; write 'status: draft' while you write, "
        "or 'status: published' (or no status line)",
    ),
    "metadata-field": (
        "essays/observability/unknown-field.md",
        6,
        "front matter has unknown field 'author'; the allowed fields are topic, "
        "tags, summary, date, status",
    ),
    "metadata-folder": (
        "essays/observability/wrong-folder.md",
        2,
        "essay has topic 'security' but lives at 'essays/observability/wrong-folder'"
        "; move the file to 'essays/security/wrong-folder'",
    ),
    "metadata-title": (
        "essays/observability/no-title.md",
        8,
        "an essay must open with its '# Title' heading",
    ),
    "metadata-html": (
        "essays/observability/html-title.md",
        8,
        "the title contains raw HTML ('<em onclick=\"alert(1)\">'); write it as "
        "text, or escape each '<' as '\\<'",
    ),
    "metadata-outside": (
        "essays/stray.md",
        2,
        "essay has topic 'observability' but lives at 'essays/stray'; move the "
        "file to 'essays/observability/stray'",
    ),
    "duplicate-title": (
        "essays/security/second.md",
        8,
        "essay title 'The Same Title' is already used by "
        "'essays/observability/first'; give this essay a title of its own",
    ),
    "listing-topic": (
        "index.md",
        5,
        "essay-list: 'observabilty' is not a topic; use one of: observability, "
        "infrastructure, security, teams",
    ),
    "duplicate-slug": (
        "essays/security/same-slug.md",
        1,
        "essay slug 'same-slug' is already used by 'essays/observability/same-slug'",
    ),
}


def warnings_of(app: SphinxTestApp) -> list[str]:
    text = app.warning.getvalue()
    return [line for line in re.sub(r"\x1b\[[0-9;]*m", "", text).splitlines() if line]


@pytest.mark.sphinx("html", testroot="essays-valid", freshenv=True)
def test_valid_essay_builds_without_warnings(app: SphinxTestApp) -> None:
    app.build()
    assert warnings_of(app) == []
    record = app.env.domains["essay"].data["essays"][
        "essays/observability/sample-essay"
    ]
    assert record["topic"] == "observability"
    assert record["tags"] == ["tracing", "observability"]
    assert record["summary"] == (
        "A short essay used by the tests. It has every field the schema asks for."
    )
    assert record["date"] == "2026-11-24"
    assert record["title"] == "A Sample Essay"
    assert record["lines"] == {"topic": 2, "tags": 3, "summary": 4, "date": 6}


@pytest.mark.parametrize("testroot", sorted(BAD_FRONT_MATTER))
def test_bad_front_matter_is_located(
    testroot: str, make_app: type[SphinxTestApp], rootdir: Path, tmp_path: Path
) -> None:
    srcdir = tmp_path / testroot
    shutil.copytree(rootdir / f"test-{testroot}", srcdir)
    app = make_app("html", srcdir=srcdir, freshenv=True)
    app.build()
    relpath, line, phrase = BAD_FRONT_MATTER[testroot]
    located = [w for w in warnings_of(app) if f"{relpath}:{line}: WARNING: " in w]
    assert located, warnings_of(app)
    assert any(phrase in w for w in located), located
    assert all(
        w.endswith(("[essays.metadata]", "[essays.duplicate]", "[essays.listing]"))
        for w in located
    )


def test_bad_front_matter_fails_the_strict_build(rootdir: Path, tmp_path: Path) -> None:
    """What an author sees: a non-zero exit and the file and line to change."""
    result = sphinx_build(
        "-nW",
        "-q",
        "-b",
        "html",
        str(rootdir / "test-metadata-topic"),
        str(tmp_path / "out"),
    )
    assert result.returncode != 0
    assert (
        "test-metadata-topic/essays/observability/unknown-topic.md:2: WARNING: "
        "topic 'observabilty' is not a topic" in result.stderr
    ), result.stderr
