"""The freshness report: stale sources, oldest first, with where they are cited."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

from conftest import ROOT, sphinx_build

if TYPE_CHECKING:
    from pathlib import Path

REPORT = ROOT / "tools" / "sources_report.py"


def run_report(doctrees: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPORT), str(doctrees), *options],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )


def test_the_report_names_each_stale_source_and_the_lines_that_cite_it(
    rootdir: Path, tmp_path: Path
) -> None:
    doctrees = tmp_path / "doctrees"
    built = sphinx_build(
        "-q",
        "-b",
        "dummy",
        "-d",
        str(doctrees),
        str(rootdir / "test-sources"),
        str(tmp_path / "out"),
    )
    assert built.returncode == 0, built.stderr

    # The specification was checked on 2025-10-01, the paper on 2026-11-30.
    stale = run_report(doctrees, "--today", "2026-12-01")
    assert stale.returncode == 0, stale.stderr
    root = "tests/roots/test-sources"
    assert stale.stdout.splitlines() == [
        "1 source last checked more than 365 days before 2026-12-01, oldest first. "
        "Re-read each against the sentences that cite it, then set its urldate to "
        "the day you did:",
        "",
        f"{root}/references.bib:12: w3c-2021-trace-context, checked on 2025-10-01 "
        "(426 days ago): Trace Context",
        f"  cited at {root}/essays/observability/one.md:10",
        f"  cited at {root}/essays/observability/one.md:15",
        f"  cited at {root}/essays/observability/two.md:10",
    ]

    # A shorter age finds both, the older first; a later day changes nothing
    # in the build, only in the report.
    both = run_report(doctrees, "--today", "2026-12-01", "--max-age", "0")
    keys = [
        line.split(": ")[1].split(",")[0]
        for line in both.stdout.splitlines()
        if ".bib:" in line
    ]
    assert keys == ["w3c-2021-trace-context", "sigelman-2010-dapper"]

    fresh = run_report(doctrees, "--today", "2025-10-02")
    assert fresh.stdout.strip() == (
        "Every source was checked within 365 days of 2025-10-02."
    )
