"""Measure builds of synthetic corpora: ours against the floor.

    python benchmarks/run.py --sizes 100 1000 --repeat 3 --jobs 2

Every variant builds the same corpus. For each size and each variant it
times, in the same run, with the variants alternating within each repeat:

* ``ours``: the real site's configuration, every knowledge feature on
  (backlinks, related essays, previews, maps, citations, essay search, the
  essays sidebar);
* ``floor``: Sphinx and stock furo with furo's per-page navigation tree
  switched off and no knowledge layer (``corpus.FLOOR``), what reading and
  writing the same pages costs before any of our work;
* ``stock``: ours with furo's own navigation, slow past a few hundred
  essays, so only on request.

What it times and weighs:

* a full build, a no-change rebuild, a rebuild after editing one essay's
  body and a rebuild after renaming one essay's title (medians of --repeat);
* the median and largest essay page, and the search index: the time the
  build spent writing it and its size on disk;
* what a phone downloads for a first query typed in the sidebar box and for
  the search page, with its layout shift (``search_payload.py``);
* peak memory (the largest resident set of the build processes).

Results go to ``benchmarks/results.json`` and ``benchmarks/results.md``, and a
plot to ``docs/_static/benchmarks.{svg,pdf}`` for ``docs/about/benchmarks.md``.
This is a benchmark, not a test: nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from corpus import generate
from search_payload import measure as search_payload

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
HERE = Path(__file__).resolve().parent

#: A first query that matches most synthetic essays: the worst case for what
#: the browser fetches.
QUERY = "latency budget"

#: What sphinx_essays.search logs when it has written the index.
INDEXED = re.compile(r"search: indexed \d+ essays and \d+ glossary terms in ([\d.]+) s")


#: Runs one build in a fresh process and reports that process tree's peak RSS.
BUILD = """
import resource, sys
from sphinx.cmd.build import main
status = main(sys.argv[1:])
peak = max(resource.getrusage(r).ru_maxrss
           for r in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
print(peak, file=sys.stderr)
sys.exit(status)
"""


def build(source: Path, out: Path, jobs: int) -> tuple[float, int, float]:
    """Run one ``sphinx-build``; return its seconds, its peak RSS in KiB and
    the seconds it spent writing the search index (0 when it wrote none)."""
    start = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            BUILD,
            "-j",
            str(jobs),
            "-b",
            "html",
            "-d",
            str(out / "doctrees"),
            str(source),
            str(out / "html"),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    indexed = INDEXED.search(done.stdout)
    return (
        seconds,
        int(done.stderr.strip().splitlines()[-1]),
        float(indexed.group(1)) if indexed else 0.0,
    )


def touch_body(source: Path) -> None:
    essay = source / "essays/observability/essay-0004.md"
    essay.write_text(
        essay.read_text().replace("## Section 5", "## Section 5\n\nAn edit.")
    )


def rename_title(source: Path, n: int) -> None:
    essay = source / "essays/observability/essay-0008.md"
    text = essay.read_text()
    essay.write_text(text.replace("# Synthetic Essay 0008", f"# Renamed Essay {n}", 1))


def attempt(size: int, variant: str, n: int, jobs: int, work: Path) -> dict:
    """One full build of a fresh corpus and its three rebuilds."""
    source = generate(
        work / f"{variant}-{size}",
        size,
        DOCS,
        sidebar=variant == "ours",
        citations=True,
        floor=variant == "floor",
    )
    out = work / f"{variant}-{size}" / "out"
    full, peak, index = build(source, out, jobs)
    nochange = build(source, out, jobs)[0]
    touch_body(source)
    edit = build(source, out, jobs)[0]
    rename_title(source, n)
    rename = build(source, out, jobs)[0]
    return {
        "full": full,
        "peak": peak,
        "index": index,
        "nochange": nochange,
        "edit": edit,
        "rename": rename,
        "html": out / "html",
    }


def summarise(size: int, variant: str, runs: list[dict]) -> dict:
    """Medians of the runs, and what the last run's pages and search weigh."""

    def median(key: str) -> float:
        return statistics.median(run[key] for run in runs)

    html = runs[-1]["html"]
    pages = sorted(p.stat().st_size for p in html.glob("essays/*/essay-*.html"))
    # Listings, indexes and the glossary grow with the corpus; essays do not.
    largest = max(html.rglob("*.html"), key=lambda p: p.stat().st_size)
    payload = search_payload(html, QUERY)
    # Ours writes a sharded index under _search/; Sphinx's own, searchindex.js.
    index_files = [p for p in (html / "_search").rglob("*") if p.is_file()] or [
        html / "searchindex.js"
    ]
    return {
        "essays": size,
        "variant": variant,
        "runs": len(runs),
        "full_s": median("full"),
        "nochange_s": median("nochange"),
        "edit_s": median("edit"),
        "rename_s": median("rename"),
        "per_essay_ms": 1000 * median("full") / size,
        "page_median_kb": statistics.median(pages) / 1024,
        "page_max_kb": pages[-1] / 1024,
        "site_max_kb": largest.stat().st_size / 1024,
        "site_max_page": largest.relative_to(html).as_posix(),
        "index_s": median("index"),
        "index_share": median("index") / median("full"),
        "index_mb": sum(p.stat().st_size for p in index_files) / 1024**2,
        "index_files": len(index_files),
        "first_query_kb": payload["first_query"]["kb"],
        "first_query_requests": payload["first_query"]["requests"],
        "search_page_kb": payload["search_page"]["kb"],
        "search_page_requests": payload["search_page"]["requests"],
        "search_page_cls": payload["search_page"]["cls"],
        "peak_rss_mb": max(run["peak"] for run in runs) / 1024,
    }


def _largest(result: dict) -> str:
    """The largest HTML page of any kind, and which it is (rows from before
    this was measured have neither)."""
    if "site_max_kb" not in result:
        return "n/a"
    return f"{result['site_max_kb']:.0f} (`{result['site_max_page']}`)"


def table(results: list[dict]) -> str:
    head = (
        "| essays | variant | full build (s) | per essay (ms) | no change (s) | "
        "one edit (s) | title rename (s) | page median (KB) | page max (KB) | "
        "largest page of the site (KB) | peak RSS (MB) | ratio to the floor |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    floor = {r["essays"]: r["full_s"] for r in results if r["variant"] == "floor"}
    rows = []
    for r in results:
        base = floor.get(r["essays"])
        ratio = f"{r['full_s'] / base:.2f}x" if base else ""
        rows.append(
            f"| {r['essays']} | {r['variant']} | {r['full_s']:.1f} | "
            f"{r['per_essay_ms']:.0f} | {r['nochange_s']:.1f} | {r['edit_s']:.1f} | "
            f"{r['rename_s']:.1f} | {r['page_median_kb']:.0f} | "
            f"{r['page_max_kb']:.0f} | {_largest(r)} | {r['peak_rss_mb']:.0f} | "
            f"{ratio} |"
        )
    return head + "\n".join(rows) + "\n" + search_table(results)


def search_table(results: list[dict]) -> str:
    """Search's own figures: the index's cost to the build, and what a phone
    downloads (first query in the sidebar box, and the search page)."""
    head = (
        f"\nSearch, first query {QUERY!r}:\n\n"
        "| essays | variant | index time (s) | share of full build | index on disk "
        "(MB, files) | first query (KB, requests) | search page (KB, requests) | "
        "search page CLS |\n|---|---|---|---|---|---|---|---|\n"
    )
    rows = [
        f"| {r['essays']} | {r['variant']} | {index_time(r)} | {index_share(r)} | "
        f"{r['index_mb']:.1f}, {r['index_files']} | "
        f"{r['first_query_kb']:.0f}, {r['first_query_requests']} | "
        f"{r['search_page_kb']:.0f}, {r['search_page_requests']} | "
        f"{r['search_page_cls']:.3f} |"
        for r in results
        if "index_s" in r
    ]
    return head + "\n".join(rows) + "\n"


def index_time(result: dict) -> str:
    """Ours logs the seconds it spent indexing; Sphinx's own index does not."""
    return "n/a" if result["variant"] == "floor" else f"{result['index_s']:.2f}"


def index_share(result: dict) -> str:
    """:func:`index_time` as a share of the full build."""
    if result["variant"] == "floor":
        return "n/a"
    return f"{100 * result['index_share']:.1f}%"


LABELS = {
    "stock": "stock furo navigation",
    "floor": "floor: Sphinx and furo, no navigation tree, no knowledge layer",
    "ours": "ours: the essays sidebar",
}


def plot(results: list[dict], target: Path) -> None:
    import matplotlib

    matplotlib.use("svg")
    import matplotlib.pyplot as plt

    matplotlib.rcParams["svg.hashsalt"] = "infrastructure-essays"
    matplotlib.rcParams["svg.fonttype"] = "none"
    figure, axis = plt.subplots(figsize=(6.4, 3.6))
    for variant, style in (("stock", "o--"), ("floor", "^:"), ("ours", "s-")):
        points = sorted(
            (r["essays"], r["full_s"]) for r in results if r["variant"] == variant
        )
        if points:
            axis.plot(*zip(*points, strict=True), style, label=LABELS[variant])
    axis.set_xlabel("essays")
    axis.set_ylabel("full build, seconds (-j 2)")
    axis.set_title("Full build time against corpus size")
    axis.grid(True, alpha=0.3)
    axis.legend()
    figure.tight_layout()
    svg = target.with_suffix(".svg")
    figure.savefig(svg, metadata={"Date": None})
    # EPUB readers (and epubcheck) refuse a DOCTYPE that names an external DTD.
    svg.write_text(re.sub(r"<!DOCTYPE[^>]*>\s*", "", svg.read_text(), count=1))
    figure.savefig(target.with_suffix(".pdf"), metadata={"CreationDate": None})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--variants", nargs="+", default=["floor", "ours"], choices=list(LABELS)
    )
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / ".work")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the saved results of sizes not measured in this run",
    )
    args = parser.parse_args()
    results = []
    saved = HERE / "results.json"
    if args.merge and saved.exists():
        results = [
            r
            for r in json.loads(saved.read_text())["results"]
            if r["essays"] not in args.sizes
        ]
    for size in args.sizes:
        # The variants alternate within each repeat, so a change in the
        # machine's load shifts both alike.
        runs: dict[str, list[dict]] = {variant: [] for variant in args.variants}
        for n in range(args.repeat):
            for variant in args.variants:
                runs[variant].append(attempt(size, variant, n, args.jobs, args.work))
        for variant in args.variants:
            result = summarise(size, variant, runs[variant])
            print(json.dumps(result), flush=True)
            results.append(result)
    order = {"stock": 0, "floor": 1, "ours": 2}
    results.sort(key=lambda r: (r["essays"], order.get(r["variant"], 2)))
    meta = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": __import__("os").cpu_count(),
        "jobs": args.jobs,
    }
    (HERE / "results.json").write_text(
        json.dumps({"meta": meta, "results": results}, indent=2) + "\n"
    )
    (HERE / "results.md").write_text(table(results))
    plot(results, DOCS / "_static" / "benchmarks")
    print(table(results))


if __name__ == "__main__":
    main()
