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

    python tools/warm_autobuild.py [sphinx-autobuild options] SOURCEDIR OUTDIR
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import sphinx_autobuild.__main__ as autobuild
from sphinx.cmd.build import build_main
from sphinx_autobuild.build import Builder
from sphinx_autobuild.utils import show_message


class WarmBuilder(Builder):  # type: ignore[misc]
    """A sphinx-autobuild builder that builds in this process."""

    def __call__(self, *, changed_paths: Sequence[Path]) -> None:
        if changed_paths:
            names = ", ".join(p.name for p in list(changed_paths)[:5])
            show_message(f"Detected changes ({names})")
        started = time.perf_counter()
        status = build_main(list(self.sphinx_args))
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
