"""A build holds one page's doctree at a time, not the whole site's, and a
parallel write one chunk of resolved pages per worker, not the whole queue."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest
import sphinx.builders
from sphinx.util.parallel import ParallelTasks

from sphinx_essays.footprint import BoundedTasks

if TYPE_CHECKING:
    from sphinx.testing.util import SphinxTestApp


@pytest.mark.sphinx("html", testroot="essays-site", freshenv=True, parallel=2)
def test_a_parallel_build_keeps_no_essay_doctree(app: SphinxTestApp) -> None:
    app.build()
    # The main process loaded and resolved every page; workers wrote them.
    assert app.builder.parallel_ok
    essays = set(app.env.domains["essay"].essays)
    assert len(essays) >= 4
    assert all((app.outdir / f"{name}.html").is_file() for name in essays)
    assert not essays & set(app.env._pickled_doctree_cache)


def _nap(arg: float) -> None:
    time.sleep(arg)


def most_held(tasks: ParallelTasks, chunks: int) -> int:
    """The most task arguments *tasks* held while *chunks* tasks were added
    as fast as possible, each taking half a second."""
    held = []
    for _ in range(chunks):
        tasks.add_task(_nap, 0.5)
        held.append(len(tasks._args))
    tasks.join()
    assert tasks._args == {}
    return max(held)


def test_queued_chunks_wait_for_a_free_worker() -> None:
    """With one worker and four chunks added faster than it can run them,
    Sphinx's own tasks hold the arguments of every chunk in the queue (in a
    parallel write, resolved doctrees); the bounded tasks hold the running
    chunk's only."""
    assert most_held(ParallelTasks(1), 4) > 1
    assert most_held(BoundedTasks(1), 4) == 1
    assert most_held(BoundedTasks(2), 4) == 2


@pytest.mark.sphinx("html", testroot="essays-site", freshenv=True, parallel=2)
def test_sphinx_builders_use_the_bounded_tasks(app: SphinxTestApp) -> None:
    assert vars(sphinx.builders)["ParallelTasks"] is BoundedTasks
