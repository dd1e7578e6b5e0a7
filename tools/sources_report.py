"""List the sources not checked for a while, with the essays that rely on them.

    python tools/sources_report.py DOCTREES [--max-age DAYS] [--today YYYY-MM-DD]

DOCTREES is the doctree folder of a build of ``docs/`` (``nox -s lint`` and
``nox -s sources`` make one with the ``dummy`` builder). A source is stale
when its ``urldate``, the day its claim was last checked against it, is more
than DAYS before today (``essays_sources_max_age`` in ``docs/conf.py``, 365
unless set). The report lists the stale sources oldest first, each with its
place in the ``.bib`` file and every essay line that cites it, so an author
knows what to re-read. It is a report, not a check: the exit status is 0
whatever it finds, and the site build never depends on today's date.
"""

from __future__ import annotations

import argparse
import datetime as dt
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sphinx_essays.sources import plain_text, scan_bibfile

DEFAULT_MAX_AGE = 365


@dataclass(frozen=True)
class Stale:
    """A source last checked *age* days ago, and where it is cited."""

    key: str
    title: str
    checked: dt.date
    age: int
    entry: str
    """Where the entry starts, ``path:line``."""
    cited_at: tuple[str, ...]
    """Each citing place, ``path:line``."""


def _shown(path: Path, relative_to: Path) -> str:
    path = path.resolve()
    return (
        path.relative_to(relative_to).as_posix()
        if path.is_relative_to(relative_to)
        else str(path)
    )


def stale_sources(
    env: Any, today: dt.date, max_age: int, relative_to: Path
) -> list[Stale]:
    """The sources of the pickled environment *env* checked more than
    *max_age* days before *today*, oldest first."""
    entries = env.domaindata["cite"]["bibdata"].data.entries
    citations: dict[str, list[dict[str, Any]]] = env.domaindata["essay"]["citations"]
    places: dict[str, list[tuple[str, int]]] = {}
    for docname in sorted(citations):
        path = _shown(Path(env.doc2path(docname)), relative_to)
        for citation in citations[docname]:
            for key in citation["keys"]:
                places.setdefault(key, []).append((path, citation["line"]))
    starts: dict[str, str] = {}
    for name in env.config.bibtex_bibfiles or []:
        bib = (Path(env.srcdir) / name).resolve()
        for entry in scan_bibfile(bib, name):
            starts.setdefault(entry.key, f"{_shown(bib, relative_to)}:{entry.line}")
    found = []
    for key, entry in entries.items():
        try:
            checked = dt.date.fromisoformat(str(entry.fields.get("urldate", "")))
        except ValueError:
            continue  # the build itself reports a missing urldate
        age = (today - checked).days
        if age <= max_age:
            continue
        title = plain_text(entry.fields.get("title", ""))
        cited = tuple(f"{p}:{line}" for p, line in sorted(set(places.get(key, []))))
        found.append(Stale(key, title, checked, age, starts.get(key, "?"), cited))
    return sorted(found, key=lambda s: (s.checked, s.key))


def report(found: list[Stale], today: dt.date, max_age: int) -> str:
    """The report as an author reads it."""
    if not found:
        return f"Every source was checked within {max_age} days of {today}."
    lines = [
        f"{len(found)} source{'s' if len(found) != 1 else ''} last checked more "
        f"than {max_age} days before {today}, oldest first. Re-read each against "
        "the sentences that cite it, then set its urldate to the day you did:",
    ]
    for stale in found:
        lines.append("")
        lines.append(
            f"{stale.entry}: {stale.key}, checked on {stale.checked} "
            f"({stale.age} days ago): {stale.title}"
        )
        lines.extend(f"  cited at {place}" for place in stale.cited_at)
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("doctrees", type=Path)
    parser.add_argument("--max-age", type=int, help="days (default: conf.py's)")
    parser.add_argument("--today", type=dt.date.fromisoformat, default=dt.date.today())
    args = parser.parse_args(argv)
    with (args.doctrees / "environment.pickle").open("rb") as file:
        env = pickle.load(file)
    max_age = args.max_age
    if max_age is None:
        max_age = getattr(env.config, "essays_sources_max_age", DEFAULT_MAX_AGE)
    found = stale_sources(env, args.today, max_age, Path.cwd().resolve())
    print(report(found, args.today, max_age))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
