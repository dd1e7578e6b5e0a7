"""``nox -s new``: a correct essay file, or a clear refusal, never an overwrite."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from conftest import BUILD_ENV, ROOT, sphinx_build
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


#: What an author writes into the scaffold, following "How to add an essay".
TERMS = [
    "Baggage", "Blast radius", "Cardinality", "Convergence", "Critical path",
    "Configuration drift", "Context propagation", "Control chart",
    "Common-cause variation", "Adjusted count",
]  # fmt: skip
LINKS = [
    "/essays/observability/distributed-tracing",
    "/essays/infrastructure/puppets-and-octopi",
    "/essays/teams/the-best-dog-trainer-in-the-world",
]
SENTENCE = (
    "Step {n} of the plan measures how long work waits at the front door and "
    "writes the number down, so that the next review can compare it with the "
    "week before and see whether the change helped."
)


def essay_body(keys: list[str]) -> str:
    """About 2,900 words of prose: 20 citations of 15 sources, three essay
    links, ten glossary terms and a Key takeaways box."""
    paragraphs = []
    for block in range(20):
        sentences = [SENTENCE.format(n=block * 4 + i + 1) for i in range(4)]
        sentences[0] = sentences[0][:-1] + f" {{cite:p}}`{keys[block % len(keys)]}`."
        if block < len(TERMS):
            sentences[1] += f" It is about {{term}}`{TERMS[block]}`."
        if block < len(LINKS):
            sentences[2] += f" Compare {{doc}}`another essay <{LINKS[block]}>`."
        paragraphs.append(" ".join(sentences))
    return (
        "\n\n".join(paragraphs)
        + "\n\n:::{admonition} Key takeaways\n:class: key-takeaways\n\n"
        "- Measure the wait.\n- Write it down.\n- Compare it every week.\n:::\n"
    )


def add_essay_by_the_guide(docs: Path) -> Path:
    """Follow "How to add an essay": scaffold, write to the standard, publish
    (drop ``status: draft``). Returns the new essay's file."""
    done = new(docs, "Capacity Is a Queue", "--topic", "infrastructure")
    assert done.returncode == 0, done.stderr
    path = docs / "essays/infrastructure/capacity-is-a-queue.md"
    keys = re.findall(r"^@\w+\{([^,]+),", (docs / "references.bib").read_text(), re.M)
    text = path.read_text()
    head = text[: text.index("\n# Capacity Is a Queue\n")]
    path.write_text(
        head.replace("status: draft\n", "")
        + "\n# Capacity Is a Queue\n\n"
        + essay_body(keys[:15])
    )
    return path


def test_a_new_essay_written_by_the_guide_passes_the_build_and_the_standard(
    tmp_path: Path,
) -> None:
    """The guide, followed: scaffold, write, publish. The site builds with -nW
    and the essay standard passes every essay, the new one included."""
    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", docs, ignore=shutil.ignore_patterns("_build"))
    # The benchmarks page includes the last results, from beside docs/.
    (tmp_path / "benchmarks").mkdir()
    for name in ("results.md", "results.json", "live.md", "live.json"):
        shutil.copy2(ROOT / "benchmarks" / name, tmp_path / "benchmarks")
    add_essay_by_the_guide(docs)
    html = tmp_path / "html"
    built = sphinx_build("-nW", "-j", "2", "-b", "html", str(docs), str(html))
    assert built.returncode == 0, built.stderr
    page = html / "essays/infrastructure/capacity-is-a-queue.html"
    assert "Capacity Is a Queue" in page.read_text()
    assert "capacity-is-a-queue.html" in (html / "sitemap.xml").read_text()

    doctrees = tmp_path / "doctrees"
    dummy = str(tmp_path / "dummy")
    read = sphinx_build("-q", "-b", "dummy", "-d", str(doctrees), str(docs), dummy)
    assert read.returncode == 0, read.stderr
    standard = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "essay_standard.py"), str(doctrees)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert standard.returncode == 0, standard.stdout


#: The suite's tests of the real site: every test that reads docs/, builds it
#: or walks its essays. The essays' own example tests (tests/examples/) and
#: the test roots do not depend on which essays exist, and the browser tests
#: run the same pages again, so they are left out to keep this test to minutes.
SITE_TESTS = [
    "test_backlinks.py", "test_citation_file.py", "test_code_blocks.py",
    "test_conceptmap.py", "test_distribution.py", "test_domain.py",
    "test_downloads.py", "test_essay_standard.py", "test_feed.py",
    "test_glossary.py", "test_indices.py", "test_links.py", "test_listing.py",
    "test_llms.py", "test_pdf.py", "test_related.py", "test_relations.py",
    "test_search.py", "test_site.py", "test_social.py", "test_sources.py",
]  # fmt: skip


def test_the_suite_passes_with_a_new_published_essay(tmp_path: Path) -> None:
    """The suite's real-site tests (:data:`SITE_TESTS`) on a copy of the
    project with one more essay, added by the guide: no test pins the set of
    essays."""
    project = tmp_path / "project"
    shutil.copytree(
        ROOT,
        project,
        ignore=shutil.ignore_patterns(
            ".git", ".nox", "node_modules", "_build", "__pycache__", "*.egg-info"
        ),
    )
    (project / "node_modules").symlink_to(ROOT / "node_modules")
    essay = add_essay_by_the_guide(project / "docs")
    # The author's checkout, with the essay committed once the checks pass
    # (the guide's last step); the last-updated dates come from git.
    git = ["git", "-c", "user.name=Author", "-c", "user.email=author@example.org"]
    for step in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "New essay"]):
        subprocess.run([*git, *step], cwd=project, check=True, capture_output=True)
    # The copy's own src/ is what its tests import, not this checkout's.
    env = {**BUILD_ENV, "PYTHONPATH": str(project / "src")}
    suite = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider",
            f"--basetemp={tmp_path / 'pt'}",
            *(f"tests/{name}" for name in SITE_TESTS),
        ],
        cwd=project, capture_output=True, text=True, check=False, env=env,
    )  # fmt: skip
    assert suite.returncode == 0, suite.stdout[-4000:]
    # The new essay was among the essays the copy's tests walked.
    docname = essay.relative_to(project / "docs").with_suffix("").as_posix()
    for test in (
        "test_site.py::test_essay_page_shows_title_and_summary",
        "test_site.py::test_topic_page_lists_the_essay",
    ):
        assert f"PASSED tests/{test}[{docname}]" in suite.stdout
