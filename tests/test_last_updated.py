""" "Last updated" dates come from git; a source export builds without them.

A ``git archive`` of the sources (what a GitHub "Download ZIP" or an sdist
holds) has no history: the build still passes ``-nW`` and leaves the dates
out, where sphinx-last-updated-by-git alone warns once per folder.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tarfile
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

ROOT = "test-essays-full"
PAGE = "essays/observability/one.html"
GIT = ("git", "-c", "user.name=Test", "-c", "user.email=test@example.org")


def build(source: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-nW", "-b", "html", str(source), str(out)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_checkout_shows_dates_and_its_export_builds_without(
    rootdir: Path, tmp_path: Path
) -> None:
    checkout = tmp_path / "checkout"
    shutil.copytree(rootdir / ROOT, checkout)
    for command in (("init", "-q"), ("add", "-A"), ("commit", "-q", "-m", "Essays")):
        subprocess.run([*GIT, *command], cwd=checkout, check=True)
    done = build(checkout, tmp_path / "from-git")
    assert done.returncode == 0, done.stderr
    assert 'class="last-updated"' in (tmp_path / "from-git" / PAGE).read_text()

    archive = subprocess.run(
        [*GIT, "archive", "--format=tar", "HEAD"],
        cwd=checkout,
        capture_output=True,
        check=True,
    ).stdout
    export = tmp_path / "export"
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(export, filter="data")
    assert not (export / ".git").exists()
    done = build(export, tmp_path / "from-export")
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr
    assert "not in a git work tree" in done.stdout
    page = (tmp_path / "from-export" / PAGE).read_text()
    assert 'class="last-updated"' not in page
    assert "Essay One" in page
