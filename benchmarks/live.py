"""Measure save-to-page-rewritten under live preview: stock against warm.

    python benchmarks/live.py SOURCEDIR --label "real site" [--edits 5]

Starts a live server on a free loopback port (stock ``sphinx-autobuild``, then
``tools/warm_autobuild.py``), waits for the first build, then appends a word
to one essay and times until that essay's HTML file is rewritten, --edits
times. Prints the median and the maximum for each, as JSON, and records them
under --label in ``benchmarks/live.json`` and ``benchmarks/live.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(path: Path, newer_than: float, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_mtime > newer_than:
            return time.time()
        time.sleep(0.02)
    raise TimeoutError(path)


def wait_until_quiet(folder: Path, quiet: float, timeout: float) -> None:
    """Wait until nothing under *folder* has changed for *quiet* seconds: the
    build is over. Editing while the first build still runs would race it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        newest = 0.0
        # A staged build renames folders while we look: skip what vanished
        # (os.walk ignores folders it can no longer list).
        for parent, _, files in os.walk(folder):
            for name in files:
                with contextlib.suppress(FileNotFoundError):
                    newest = max(newest, os.stat(os.path.join(parent, name)).st_mtime)
        if time.time() - newest > quiet:
            return
        time.sleep(0.5)
    raise TimeoutError(folder)


def measure(command: list[str], source: Path, essay: str, edits: int) -> dict:
    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "html"
        page = out / (essay.removesuffix(".md") + ".html")
        server = subprocess.Popen(
            [
                *command,
                "--host",
                "127.0.0.1",
                "--port",
                str(free_port()),
                "-d",
                str(Path(work) / "doctrees"),
                str(source),
                str(out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        target = source / essay
        original = target.read_text()
        try:
            wait_for(page, 0, timeout=1800)
            wait_until_quiet(out, quiet=5, timeout=1800)
            timings = []
            for n in range(edits):
                before = page.stat().st_mtime
                saved = time.time()
                target.write_text(original + f"\nEdit number {n}.\n")
                timings.append(wait_for(page, before, timeout=300) - saved)
                wait_until_quiet(out, quiet=2, timeout=300)
        finally:
            # Whatever stopped the run, the essay is put back as it was: an
            # edit left behind once stayed in a published essay for two days.
            target.write_text(original)
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:  # mid-build, it may not stop
                server.kill()
                server.wait()
    return {
        "median_s": statistics.median(timings),
        "max_s": max(timings),
        "edits": edits,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path)
    parser.add_argument(
        "--essay", default="essays/observability/distributed-tracing.md"
    )
    parser.add_argument("--edits", type=int, default=5)
    parser.add_argument("--label", default="real site")
    args = parser.parse_args()
    results = {
        "stock": measure(
            [sys.executable, "-m", "sphinx_autobuild"],
            args.source,
            args.essay,
            args.edits,
        ),
        "warm": measure(
            [sys.executable, str(ROOT / "tools" / "warm_autobuild.py")],
            args.source,
            args.essay,
            args.edits,
        ),
    }
    print(json.dumps(results))
    record(args.label, results)


def record(label: str, results: dict) -> None:
    store = HERE / "live.json"
    runs = json.loads(store.read_text()) if store.exists() else {}
    runs[label] = results
    store.write_text(json.dumps(runs, indent=2, sort_keys=True) + "\n")
    rows = [
        "| corpus | stock sphinx-autobuild, median (max) "
        "| warm process, median (max) |",
        "|---|---|---|",
    ]
    for name, run in sorted(runs.items()):
        stock, warm = run["stock"], run["warm"]
        rows.append(
            f"| {name} | {stock['median_s']:.2f} s ({stock['max_s']:.2f} s) | "
            f"{warm['median_s']:.2f} s ({warm['max_s']:.2f} s) |"
        )
    (HERE / "live.md").write_text("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
