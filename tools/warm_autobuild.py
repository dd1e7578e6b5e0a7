"""sphinx-autobuild, with one Sphinx application kept warm across rebuilds.

Stock sphinx-autobuild starts ``python -m sphinx`` for every save, so each
rebuild pays for a new interpreter, for importing Sphinx, docutils, MyST, furo
and the extensions, and for unpickling the environment from scratch, which at
thousands of essays takes longer than everything else a one-essay edit needs.
Here the server builds in its own process, on one worker thread, with one
:class:`sphinx.application.Sphinx` that lives from one save to the next: each
rebuild is ``app.build()`` on the environment the last one left in memory,
as Sphinx's own tests rebuild an application. Sphinx still reads only what
changed and still pickles the environment after reading, so a restart, or a
build from the command line, starts from where the preview left off.

The application is made again (and the environment read from disk) when
``conf.py`` changes or a rebuild failed, so a broken build never leaves a
half-updated environment in use. Changes to extension code need a restart,
as with any long-running process; essays, configuration, templates and
static files are picked up on every save. Everything else (watching,
ignoring, serving, reloading) is sphinx-autobuild.

After each rebuild it writes the rebuild's warnings to the site as
``_live/problems.json``, which the pages of a live build (``essays_live``)
show in a panel (``sphinx_essays.live``). A page whose source warned keeps
its last good rendering: it is put back from ``OUTDIR.good/``, where every
page is copied whenever a rebuild writes it without a warning.

    python tools/warm_autobuild.py [sphinx-autobuild options] SOURCEDIR OUTDIR
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import sphinx._cli.util.errors
import sphinx_autobuild.__main__ as autobuild
import watchfiles
from sphinx.application import Sphinx
from sphinx.cmd import build as sphinx_build
from sphinx.util._io import TeeStripANSI
from sphinx.util.docutils import docutils_namespace, patch_docutils
from sphinx_autobuild.build import Builder
from sphinx_autobuild.server import RebuildServer
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


class WarmSphinx:
    """One Sphinx application, made from ``sphinx-build`` arguments and kept
    for the next build while they and ``conf.py`` stay the same."""

    def __init__(self) -> None:
        self.app: Sphinx | None = None
        self.made_for: tuple[object, ...] = ()
        self.namespaces = contextlib.ExitStack()
        #: This build's warnings, as ``sphinx-build -w`` would write them.
        self.warnings = io.StringIO()

    def build(self, argv: Sequence[str]) -> int:
        """Build as ``sphinx-build ARGV`` does; return its exit status."""
        parser = sphinx_build.get_parser()
        args = parser.parse_args(list(argv))
        confdir = sphinx_build._parse_confdir(
            args.noconfig, args.confdir, args.sourcedir
        )
        conf = Path(confdir or args.sourcedir, "conf.py")
        made_for = (tuple(argv), conf.stat().st_mtime_ns if conf.exists() else 0)
        self.warnings.seek(0)
        self.warnings.truncate()
        try:
            if self.app is None or made_for != self.made_for:
                self.close()
                self.app = self._make(parser, args, confdir)
                self.made_for = made_for
            app = self.app
            # Counted per build, as a new sphinx-build would count them.
            app._warncount = 0
            app.statuscode = 0
            app.build(args.force_all, args.filenames)
            return int(app.statuscode)
        except (Exception, KeyboardInterrupt) as exc:
            failed = self.app
            sphinx._cli.util.errors.handle_exception(
                exc,
                stderr=sys.stderr,
                use_pdb=False,
                print_traceback=bool(args.verbosity or args.traceback),
                message_log=failed.messagelog if failed is not None else (),
                extensions=failed.extensions.values() if failed is not None else (),
            )
            # What it left in memory may be half done: read from disk next time.
            self.close()
            return 2

    def _make(
        self,
        parser: argparse.ArgumentParser,
        a: argparse.Namespace,
        confdir: str | None,
    ) -> Sphinx:
        sphinx_build._validate_colour_support(a.color)
        status: TextIO | None = None if a.quiet or a.really_quiet else sys.stdout
        warning: TextIO | None = None
        if not a.really_quiet:
            warning = TeeStripANSI(sys.stderr, self.warnings)  # type: ignore[assignment]
        self.namespaces.enter_context(patch_docutils(confdir or a.sourcedir))
        self.namespaces.enter_context(docutils_namespace())
        return Sphinx(
            srcdir=a.sourcedir,
            confdir=confdir,
            outdir=a.outputdir,
            doctreedir=sphinx_build._parse_doctreedir(a.doctreedir, a.outputdir),
            buildername=a.builder,
            confoverrides=sphinx_build._parse_confoverrides(
                parser,
                a.define,
                a.htmldefine,
                a.nitpicky,
            ),
            status=status,
            warning=warning,
            freshenv=a.freshenv,
            warningiserror=a.warningiserror,
            tags=a.tags,
            verbosity=a.verbosity,
            parallel=a.jobs,
            keep_going=False,
            pdb=False,
            exception_on_warning=a.exception_on_warning,
        )

    def close(self) -> None:
        """Drop the application, and the docutils registrations it made."""
        self.app = None
        self.made_for = ()
        self.namespaces.close()
        self.namespaces = contextlib.ExitStack()


class WarmServer(RebuildServer):  # type: ignore[misc]
    """sphinx-autobuild's server, running each rebuild on a thread of this
    process (one at a time, as it does) instead of in a new process pool,
    whose worker would forget the application when it exits."""

    async def watch(self) -> None:
        async for changes in watchfiles.awatch(
            *self.paths,
            watch_filter=lambda _, path: not self.ignore(path),
        ):
            changed_paths = [Path(path).resolve() for (_, path) in changes]
            await asyncio.to_thread(self.change_callback, changed_paths=changed_paths)
            self.flag.set()


class WarmBuilder(Builder):  # type: ignore[misc]
    """A sphinx-autobuild builder that builds in this process."""

    #: The problems shown now, and each one's source time when reported.
    problems: list[Problem] = []  # noqa: RUF012  (replaced, never mutated)
    reported: dict[str, float] = {}  # noqa: RUF012

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        #: The application every rebuild uses.
        self.sphinx = WarmSphinx()

    def __call__(self, *, changed_paths: Sequence[Path]) -> None:
        if changed_paths:
            names = ", ".join(p.name for p in list(changed_paths)[:5])
            show_message(f"Detected changes ({names})")
        started = time.perf_counter()
        since = time.time() - 1  # file times can be a little behind the clock
        arguments = sphinx_build.get_parser().parse_args(list(self.sphinx_args))
        srcdir, outdir = Path(arguments.sourcedir), Path(arguments.outputdir)
        status = self.sphinx.build(self.sphinx_args)
        current = parse(self.sphinx.warnings.getvalue(), srcdir.resolve())
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
        if status:
            print(f"Sphinx exited with status {status}; still serving the last build.")
        else:
            show_message(f"Rebuilt in {elapsed:.2f} s")
        show_message(f"Serving on {self.uri}")


def main(argv: Sequence[str] = ()) -> None:
    autobuild.Builder = WarmBuilder
    autobuild.RebuildServer = WarmServer
    autobuild.main(list(argv) or sys.argv[1:])


if __name__ == "__main__":
    main()
