"""Memory that stays in proportion to one page, not to the whole site.

Sphinx keeps the pickled bytes of every doctree it loads for the write phase
(``BuildEnvironment._pickled_doctree_cache``) until the build ends, so that a
second :meth:`~sphinx.environment.BuildEnvironment.get_doctree` of the same
page need not read the file again. In a parallel build the main process loads
every page this way, so the cache ends up holding the whole site's doctrees:
about 100 KB a page, or a gigabyte at 10,000 essays. Nothing reads a page's
doctree again once the page is resolved, so this module drops its bytes then.
A later read of the same page, if any, loads the file from disk again.

The parallel write had a second leak that grew with the site. The main process
resolves the pages a chunk at a time and hands each chunk to a worker, but
Sphinx's :class:`~sphinx.util.parallel.ParallelTasks` queues a chunk without
waiting when every worker is busy. Resolving is faster than writing, so the
main process runs ahead and holds the resolved doctrees of every chunk still
in the queue: at 500 synthetic essays with ``-j 2`` that was 142 MB of live
objects by the last chunk, against 4 MB once the queue had drained. With
:class:`BoundedTasks` in its place, adding a chunk first waits for a free
worker, so at most one chunk per worker is written while the next is
resolved. The pages, and the order they are written in, are the same.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import sphinx.builders
from sphinx.util.parallel import ParallelTasks

if TYPE_CHECKING:
    from collections.abc import Callable

    from docutils import nodes
    from sphinx.application import Sphinx


class BoundedTasks(ParallelTasks):
    """Sphinx's parallel tasks, with no queue of tasks waiting for a worker."""

    def add_task(
        self,
        task_func: Callable[[Any], Any] | Callable[[], Any],
        arg: Any = None,
        result_func: Callable[[Any, Any], Any] | None = None,
    ) -> None:
        try:
            while self._pworking >= self.nproc:
                if not self._join_one():
                    time.sleep(0.02)
        except Exception:
            self.terminate()
            raise
        super().add_task(task_func, arg, result_func)


def _release(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    # A private attribute of Sphinx (since 7.2); getattr keeps this a no-op
    # should a later Sphinx drop it.
    cache = getattr(app.env, "_pickled_doctree_cache", None)
    if cache is not None:
        cache.pop(docname, None)


def setup(app: Sphinx) -> None:
    # Sphinx's builders look the class up in their own module when they read
    # or write in parallel; nothing else there changes.
    builders = vars(sphinx.builders)
    if builders.get("ParallelTasks") is ParallelTasks:
        builders["ParallelTasks"] = BoundedTasks
    # Last, after every other handler has used the resolved page.
    app.connect("doctree-resolved", _release, priority=900)
