"""What the sources (citations, references, the sources index) cost a build.

    python benchmarks/citations.py --size 1000 --repeat 3 --jobs 2

Two pairs of full builds, alternating within each repeat so that a change in
the machine's load shifts both sides alike:

* **the real site**: ``docs/`` as it is, against a copy whose essays cite
  nothing (every ``{cite:p}`` and ``{cite:t}`` role removed) and whose
  bibliography is empty;
* **a synthetic corpus** of ``--size`` essays (``corpus.py``): each essay
  citing five of 200 sources, against the same corpus without citations.

Reports the median of each and the ratio of cited to uncited. This is a
benchmark, not a test: nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from corpus import generate

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SPHINX = (sys.executable, "-m", "sphinx", "-q", "-E", "-b", "html")
#: An inline citation, with the space before it.
CITATION = re.compile(r" ?\{cite:[pt]\}`[^`]*`")


def build(source: Path, out: Path, jobs: int) -> float:
    """One full build (-E) with -q, timed."""
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    doctrees = out.with_name(out.name + ".doctrees")
    subprocess.run(
        [*SPHINX, "-j", str(jobs), "-d", str(doctrees), str(source), str(out)],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def uncited_copy(target: Path) -> Path:
    """``docs/`` with no citation and an empty bibliography."""
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(DOCS, target, ignore=shutil.ignore_patterns("_build"))
    for essay in (target / "essays").rglob("*.md"):
        essay.write_text(CITATION.sub("", essay.read_text()))
    (target / "references.bib").write_text("")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / ".work")
    args = parser.parse_args()
    work = args.work / "citations"
    sources = {
        "site_cited": DOCS,
        "site_uncited": uncited_copy(work / "site-uncited"),
        "synthetic_cited": generate(
            work / "cited", args.size, DOCS, sidebar=True, citations=True
        ),
        "synthetic_uncited": generate(work / "uncited", args.size, DOCS, sidebar=True),
    }
    times: dict[str, list[float]] = {name: [] for name in sources}
    for _ in range(args.repeat):
        for name, source in sources.items():
            times[name].append(build(source, work / f"out-{name}", args.jobs))
    medians = {name: statistics.median(values) for name, values in times.items()}
    result = {
        "essays": args.size,
        "runs": args.repeat,
        "jobs": args.jobs,
        **{f"{name}_s": round(value, 2) for name, value in medians.items()},
        "site_ratio": round(medians["site_cited"] / medians["site_uncited"], 3),
        "synthetic_ratio": round(
            medians["synthetic_cited"] / medians["synthetic_uncited"], 3
        ),
    }
    print(json.dumps(result, indent=2))
    (ROOT / "benchmarks" / "citations.json").write_text(
        json.dumps(result, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
