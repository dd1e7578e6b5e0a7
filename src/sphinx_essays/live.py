"""Build problems shown in the browser during live preview.

With ``essays_live`` on (``nox -s live`` sets it), every page loads
``essays-live.js``, which reads ``_live/problems.json`` from the site root
and, when the last rebuild had warnings, shows them above the page: file,
line, what is wrong and the fix, as the terminal does. The panel is a
labelled region, not a dialog: it takes no focus and traps none, and a
button dismisses it until the problems change. It is gone after the next
clean rebuild. ``tools/warm_autobuild.py`` writes the file after each
rebuild (:func:`write_problems`), and keeps the last good page of a source
whose rebuild warned. Published builds neither load the script nor have the
file.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sphinx_essays import config as essays_config

if TYPE_CHECKING:
    from sphinx.application import Sphinx

#: Where the problems of the last rebuild are, in the site.
PROBLEMS = "_live/problems.json"
#: One warning as Sphinx writes it to a ``-w`` file.
WARNING = re.compile(
    r"^(?P<file>[^:\n]+?)(?::(?P<line>\d+))?: (?:WARNING|ERROR|CRITICAL): "
    r"(?P<text>.*?)(?: \[(?P<kind>[\w.-]+)\])?$"
)


@dataclass(frozen=True)
class Problem:
    """One warning of a rebuild, for the panel."""

    file: str
    line: int | None
    message: str
    fix: str


def parse(warnings: str, srcdir: Path) -> list[Problem]:
    """The warnings of a ``-w`` file, with paths relative to *srcdir*. A
    message's fix is what follows its first semicolon, as this extension
    writes them ("...; use one of ...")."""
    found = []
    for line in warnings.splitlines():
        match = WARNING.match(line.strip())
        if match is None:
            continue
        path = Path(match["file"])
        if path.is_absolute() and path.is_relative_to(srcdir):
            path = path.relative_to(srcdir)
        message, _, fix = match["text"].partition("; ")
        number = int(match["line"]) if match["line"] else None
        found.append(Problem(path.as_posix(), number, message, fix))
    return found


def carry_over(
    previous: list[Problem],
    current: list[Problem],
    srcdir: Path,
    outdir: Path,
    since: float,
    reported: dict[str, float],
) -> list[Problem]:
    """The problems to show after a rebuild: this rebuild's, and those of
    earlier rebuilds that still stand. Sphinx warns about a source only when
    it reads or writes it, so a later rebuild for another save says nothing
    about a file that is still broken. An earlier problem stands while its
    source is unchanged since it was reported (*reported*: file to
    modification time) and its page was not written again by this rebuild
    (written after *since*)."""
    named = {problem.file for problem in current}
    kept = []
    for problem in previous:
        source = srcdir / problem.file
        page = outdir / (problem.file.rsplit(".", 1)[0] + ".html")
        if (
            problem.file in named
            or not source.exists()
            or source.stat().st_mtime != reported.get(problem.file)
            or (page.exists() and page.stat().st_mtime >= since)
        ):
            continue
        kept.append(problem)
    return [*current, *kept]


def write_problems(outdir: Path, problems: list[Problem]) -> None:
    """Replace the site's problems file in one step."""
    target = outdir / PROBLEMS
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".tmp")
    partial.write_text(json.dumps([asdict(p) for p in problems]), encoding="utf-8")
    partial.replace(target)


def _add_panel(app: Sphinx) -> None:
    if essays_config.from_sphinx(app.config).live and app.builder.format == "html":
        app.add_css_file("essays-live.css")
        app.add_js_file("essays-live.js", loading_method="defer")


def setup(app: Sphinx) -> None:
    app.connect("builder-inited", _add_panel)
