"""``nox -s new``: a correct essay file, or a clear refusal, never an overwrite."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from conftest import ROOT, sphinx_build
from sphinx_essays.metadata import FrontMatter, split_front_matter

if TYPE_CHECKING:
    from pathlib import Path

SCRIPT = ROOT / "tools" / "new_essay.py"


def new(docs: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--docs", str(docs)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def docs(rootdir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "docs"
    shutil.copytree(rootdir / "test-essays-valid", target)
    return target


def test_creates_a_valid_essay_that_builds_without_warnings(
    docs: Path, tmp_path: Path
) -> None:
    done = new(
        docs, "Why Queues Hide  Latency: A Field Guide", "--topic", "observability"
    )
    assert done.returncode == 0, done.stderr
    path = docs / "essays/observability/why-queues-hide-latency-a-field-guide.md"
    assert f"Created {path}" in done.stdout
    text = path.read_text()
    front = split_front_matter(text)
    assert isinstance(front, FrontMatter)
    assert front.values["topic"] == "observability"
    assert str(front.values["date"]) == dt.date.today().isoformat()
    assert "\n# Why Queues Hide Latency: A Field Guide\n" in text
    assert front.values["status"] == "draft"
    page = "essays/observability/why-queues-hide-latency-a-field-guide.html"
    preview = tmp_path / "preview"
    result = sphinx_build(
        "-nW", "-b", "html", "-D", "essays_drafts=1", str(docs), str(preview)
    )
    assert result.returncode == 0, result.stderr
    html = (preview / page).read_text()
    assert "Why Queues Hide Latency: A Field Guide" in html
    assert 'class="essay-draft-badge">Draft<' in html
    published = tmp_path / "html"
    result = sphinx_build("-nW", "-b", "html", str(docs), str(published))
    assert result.returncode == 0, result.stderr
    assert not (published / page).exists()


def test_refuses_an_unknown_topic(docs: Path) -> None:
    done = new(docs, "A Title", "--topic", "observabilty")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "new essay: unknown topic 'observabilty'; use one of: observability, "
        "infrastructure, security, teams"
    )
    assert not list(docs.glob("essays/*/a-title.md"))


def test_refuses_a_slug_another_essay_uses_and_never_overwrites(docs: Path) -> None:
    existing = docs / "essays/observability/sample-essay.md"
    before = existing.read_text()
    done = new(docs, "Sample Essay", "--topic", "security")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "new essay: slug 'sample-essay' is already used by "
        "essays/observability/sample-essay.md; choose a different title"
    )
    assert existing.read_text() == before
    assert not (docs / "essays/security/sample-essay.md").exists()


def test_refuses_a_title_without_a_slug(docs: Path) -> None:
    done = new(docs, "?!", "--topic", "teams")
    assert done.returncode == 2
    assert "has no letters or digits" in done.stderr
