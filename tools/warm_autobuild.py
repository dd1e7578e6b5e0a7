"""sphinx-autobuild, with each rebuild run in the server's own warm process.

Stock sphinx-autobuild starts ``python -m sphinx`` for every save, so each
rebuild pays for a new interpreter, for importing Sphinx, docutils, MyST, furo
and the extensions, and for unpickling the environment from scratch. Here the
same command line runs ``sphinx.cmd.build.build_main`` in-process instead:
Sphinx's own entry point, which builds inside ``docutils_namespace()`` so the
directives, roles and nodes each build registers are removed again afterwards.
Everything else (watching, ignoring, serving, reloading) is sphinx-autobuild.

Changes to extension code need a restart, as with any long-running process;
essays, configuration and templates are picked up on every save.

After each rebuild it writes the rebuild's warnings to the site as
``_live/problems.json``, which the pages of a live build (``essays_live``)
show in a panel (``sphinx_essays.live``). A page whose source warned keeps
its last good rendering: it is put back from ``OUTDIR.good/``, where every
page is copied whenever a rebuild writes it without a warning.

    python tools/warm_autobuild.py [sphinx-autobuild options] SOURCEDIR OUTDIR
"""

from __future__ import annotations

import gc
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import sphinx_autobuild.__main__ as autobuild
from sphinx.cmd.build import build_main, get_parser
from sphinx_autobuild.build import Builder
from sphinx_autobuild.utils import show_message

from sphinx_essays.live import Problem, carry_over, parse, write_problems


def keep_last_good(outdir: Path, problems: list[Problem], since: float) -> int:
    """Save the pages this rebuild wrote cleanly; put back the last good
    rendering of each page whose source warned. Returns how many it put back."""
    good = outdir.with_name(outdir.name + ".good")
    warned = {p.file.rsplit(".", 1)[0] for p in problems}
    restored = 0
    for page in outdir.rglob("*.html"):
        name = page.relative_to(outdir).as_posix()[: -len(".html")]
        kept = good / f"{name}.html"
        if name in warned:
            if kept.exists():
                shutil.copy2(kept, page)
                restored += 1
        elif page.stat().st_mtime >= since:
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(page, kept)
    return restored


class WarmBuilder(Builder):  # type: ignore[misc]
    """A sphinx-autobuild builder that builds in this process."""

    #: The problems shown now, and each one's source time when reported.
    problems: list[Problem] = []  # noqa: RUF012  (replaced, never mutated)
    reported: dict[str, float] = {}  # noqa: RUF012

    def __call__(self, *, changed_paths: Sequence[Path]) -> None:
        if changed_paths:
            names = ", ".join(p.name for p in list(changed_paths)[:5])
            show_message(f"Detected changes ({names})")
        started = time.perf_counter()
        since = time.time() - 1  # file times can be a little behind the clock
        arguments = get_parser().parse_args(list(self.sphinx_args))
        srcdir, outdir = Path(arguments.sourcedir), Path(arguments.outputdir)
        with tempfile.NamedTemporaryFile("r", suffix=".log") as warnings:
            status = build_main(["-w", warnings.name, *self.sphinx_args])
            current = parse(warnings.read(), srcdir.resolve())
        problems = carry_over(
            self.problems, current, srcdir, outdir, since, self.reported
        )
        self.problems = problems
        self.reported = {
            p.file: (srcdir / p.file).stat().st_mtime
            for p in problems
            if (srcdir / p.file).exists()
        }
        # Last good pages back first: once the problems file names a page,
        # a reader (or a test) may load it.
        kept = keep_last_good(outdir, problems, since)
        write_problems(outdir, problems)
        if kept:
            show_message(f"Kept the last good rendering of {kept} page(s)")
        elapsed = time.perf_counter() - started
        # Drop the finished build's application and environment now, so the
        # next build does not pay for collecting them.
        gc.collect()
        if status:
            print(f"Sphinx exited with status {status}; still serving the last build.")
        else:
            show_message(f"Rebuilt in {elapsed:.2f} s")
        show_message(f"Serving on {self.uri}")


def main(argv: Sequence[str] = ()) -> None:
    autobuild.Builder = WarmBuilder
    autobuild.main(list(argv) or sys.argv[1:])


if __name__ == "__main__":
    main()
