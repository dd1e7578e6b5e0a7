"""What the essays' social preview images cost a full build.

    python benchmarks/social_cards.py --size 1000 --repeat 3 --jobs 2

Three full builds of the same synthetic corpus, in the same run, each into a
new output folder and a new doctree folder: with the images drawn from
nothing, without them (``essays_social_cards = False``, the baseline, run
second so that a change in the machine's load shifts both comparisons
alike), and with them copied from a card cache (the first build's
``social/``, the only thing its new doctree folder holds; the build's other
caches, such as drawn diagrams, start empty as in the other two). It also
times drawing one card on its own.
Reports medians and each variant's cost as a share of the baseline, both in
wall-clock seconds and in CPU seconds (user and system, of the build and its
worker processes). The CPU figure is the one to read on a shared machine: the
other processes' load stretches wall-clock time but not the build's own CPU
time. This is a benchmark, not a test: nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from corpus import generate

from sphinx_essays.social import draw_card

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def cpu_seconds() -> float:
    """User and system time of every child process that has ended so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def build(
    source: Path, out: Path, doctrees: Path, jobs: int, *extra: str
) -> tuple[float, float]:
    """One build's wall-clock seconds and CPU seconds, into a new *out*; what
    *doctrees* holds beforehand is up to the caller."""
    if out.exists():
        shutil.rmtree(out)
    cpu = cpu_seconds()
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-q",
            "-j",
            str(jobs),
            "-b",
            "html",
            "-d",
            str(doctrees),
            *extra,
            str(source),
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start, cpu_seconds() - cpu


def summary(medians: dict[str, float], unit: str) -> dict[str, float]:
    """Each variant's median, and the images' cost as a share of the baseline."""
    return {
        **{f"{name}{unit}_s": round(value, 2) for name, value in medians.items()},
        **{
            f"{name}{unit}_share": round(medians[name] / medians["baseline"] - 1, 3)
            for name in ("fresh", "cached")
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / ".work")
    args = parser.parse_args()
    names = ("baseline", "fresh", "cached")
    times: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    work = args.work / f"social-{args.size}"
    source = generate(work, args.size, DOCS, sidebar=True)
    off = ("-D", "essays_social_cards=0")

    def doctrees(name: str) -> Path:
        folder = work / f"doctrees-{name}"
        if folder.exists():
            shutil.rmtree(folder)
        return folder

    for attempt in range(args.repeat):
        # The baseline runs between the other two, so a change in the
        # machine's load during a run shifts both comparisons alike.
        fresh = build(source, work / "on", doctrees("fresh"), args.jobs)
        baseline = build(source, work / "off", doctrees("off"), args.jobs, *off)
        cached = doctrees("cached")
        shutil.copytree(work / "doctrees-fresh" / "social", cached / "social")
        runs = {
            "fresh": fresh,
            "baseline": baseline,
            "cached": build(source, work / "on", cached, args.jobs),
        }
        for name, (wall, used) in runs.items():
            times[name].append(wall)
            cpu[name].append(used)
        print(json.dumps({"attempt": attempt, **runs}), flush=True)
    medians = {name: statistics.median(values) for name, values in times.items()}
    cpu_medians = {name: statistics.median(values) for name, values in cpu.items()}
    started = time.perf_counter()
    for number in range(200):
        draw_card(
            "Infrastructure Essays", "Observability", f"Title {number}", "A " * 60
        )
    draw_ms = (time.perf_counter() - started) / 200 * 1000
    result = {
        "essays": args.size,
        "runs": args.repeat,
        "jobs": args.jobs,
        **summary(medians, ""),
        **summary(cpu_medians, "_cpu"),
        "draw_ms_per_card": round(draw_ms, 1),
    }
    print(json.dumps(result, indent=2))
    (ROOT / "benchmarks" / "social_cards.json").write_text(
        json.dumps(result, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
