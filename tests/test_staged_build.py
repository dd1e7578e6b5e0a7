"""tools/staged_build.py: the published site survives every fault.

A build that fails, or is killed at any point (reading, writing, finishing,
publishing), leaves the published site as it was, and the next build's output
equals a fresh build's. Two builds of one site at once: the second refuses.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import file_bytes

TESTS = Path(__file__).resolve().parent
TOOL = TESTS.parent / "tools" / "staged_build.py"
ROOT = "test-essays-full"
#: The fault-injection test's seed: the same kill points on every run.
SEED = 20261202
POINTS = 10
COMMAND = (sys.executable, str(TOOL))
OPTIONS = ("-nW", "-q", "-b", "html")


def staged_build(
    source: Path, target: Path, doctrees: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run the tool; once it has exited, kill what it left running (as a
    killed build's process group would be): a multiprocessing manager that
    sphinx-sitemap started outlives a SIGKILL of its parent."""
    command = [*COMMAND, str(target), str(doctrees), "--", *OPTIONS, str(source)]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
        start_new_session=True,
    )
    process.wait(timeout=600)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    out, err = process.communicate(timeout=60)
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def fresh_build(source: Path, out: Path) -> dict[str, bytes]:
    copy = out / "src"
    shutil.copytree(source, copy)
    doctrees, html = out / "doctrees", out / "html"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            *OPTIONS,
            "-d",
            str(doctrees),
            str(copy),
            str(html),
        ],
        check=True,
        capture_output=True,
    )
    return file_bytes(html)


@pytest.fixture
def site(rootdir: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    """A copy of the full root that loads the fault points."""
    source = tmp_path / "src"
    shutil.copytree(rootdir / ROOT, source)
    with (source / "conf.py").open("a") as conf:
        conf.write(
            f"\nimport sys\nsys.path.insert(0, {str(TESTS)!r})\n"
            'extensions.append("fault_points")\n'
        )
    return source, tmp_path / "html", tmp_path / "doctrees"


def test_a_failed_build_leaves_the_last_good_site(
    site: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    source, target, doctrees = site
    essay = source / "essays/observability/two.md"
    done = staged_build(source, target, doctrees)
    assert done.returncode == 0, done.stderr
    assert f"Published {target}" in done.stdout
    good = file_bytes(target)
    assert "essays/observability/two.html" in good

    text = essay.read_text()
    essay.write_text(text.replace("topic: observability", "topic: nowhere"))
    failed = staged_build(source, target, doctrees)
    assert failed.returncode != 0
    assert "topic 'nowhere' is not a topic" in failed.stderr
    assert file_bytes(target) == good, "the failed build touched the live site"
    assert not (tmp_path / "html.new").exists()
    assert not doctrees.exists(), "a failed build's doctree cache was kept"

    essay.write_text(text.replace("It uses", "It now uses"))
    assert staged_build(source, target, doctrees).returncode == 0
    assert file_bytes(target) == fresh_build(source, tmp_path / "fresh")


def edit(source: Path, step: int) -> None:
    """A change before each killed build that makes it read and write every
    page (so each kill point is reached): every essay's prose; at step 3 an
    essay deleted, at step 6 one added."""
    for essay in (source / "essays").rglob("*.md"):
        if essay.name != "index.md":
            essay.write_text(essay.read_text() + f"\nEdit number {step}.\n")
    if step == 3:
        (source / "essays/security/six.md").unlink()
    if step == 6:
        (source / "essays/security/seven.md").write_text(
            "---\ntopic: security\ntags: [identity]\n"
            "summary: The summary of Essay Seven.\ndate: 2026-04-01\n---\n\n"
            "# Essay Seven\n\nIt links {doc}`five`.\n"
        )


def test_a_build_killed_anywhere_leaves_the_site_and_the_next_build_exact(
    site: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    source, target, doctrees = site
    assert staged_build(source, target, doctrees).returncode == 0
    rng = random.Random(SEED)
    # Each edit re-reads and rewrites every essay (one is deleted at step 3);
    # other pages are rewritten only when what they show changed.
    essays = len([p for p in source.rglob("essays/*/*.md") if p.name != "index.md"])
    points = [
        *(f"source-read:{n}" for n in rng.sample(range(1, essays), 3)),
        *(f"html-page-context:{n}" for n in rng.sample(range(1, essays), 4)),
        "build-finished:1",
        "publish:exchange",
        "publish:cleanup",
    ]
    rng.shuffle(points)
    assert len(points) == POINTS
    for step, point in enumerate(points, 1):
        published = file_bytes(target)
        edit(source, step)
        killed = staged_build(source, target, doctrees, ESSAYS_FAULT=point)
        assert killed.returncode == -9, (point, killed.stderr)
        fresh = fresh_build(source, tmp_path / f"fresh-{step}")
        if point == "publish:cleanup":
            # Killed after the swap: the new site is published, whole.
            assert file_bytes(target) == fresh, point
        else:
            assert file_bytes(target) == published, f"killed at {point}"
        assert staged_build(source, target, doctrees).returncode == 0, point
        assert file_bytes(target) == fresh, f"the build after a kill at {point}"


def test_a_second_build_at_once_refuses_with_one_line(
    site: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    source, target, doctrees = site
    first = subprocess.Popen(
        [*COMMAND, str(target), str(doctrees), "--", *OPTIONS, str(source)],
        env={**os.environ, "ESSAYS_PAUSE": "source-read:1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lock = target.with_name("html.lock")
    deadline = time.monotonic() + 30
    while not (lock.exists() and lock.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    second = staged_build(source, target, doctrees)
    _, errors = first.communicate(timeout=120)
    assert first.returncode == 0, errors
    assert second.returncode == 1
    assert second.stderr.strip().splitlines() == [
        f"{target}: another build is running (process {first.pid}); wait for it"
        " to finish or stop it, then build again"
    ]
    assert file_bytes(target) == fresh_build(source, tmp_path / "fresh")
