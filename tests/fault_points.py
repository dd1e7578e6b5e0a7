"""A Sphinx extension for the fault-injection tests: it kills the build.

``ESSAYS_FAULT=<event>:<n>`` sends ``SIGKILL`` to the build the *n*-th time
Sphinx emits ``<event>`` (``source-read`` while reading, ``html-page-context``
while writing, ``build-finished`` while finishing), before any other handler
runs. ``ESSAYS_PAUSE=<event>:<n>`` sleeps two seconds there instead, so that a
test can start a second build meanwhile.
"""

from __future__ import annotations

import os
import signal
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sphinx.application import Sphinx

EVENTS = ("source-read", "html-page-context", "build-finished")


def _at(variable: str) -> tuple[str, int] | None:
    event, _, count = os.environ.get(variable, "").partition(":")
    return (event, int(count)) if event in EVENTS else None


def setup(app: Sphinx) -> dict[str, Any]:
    for variable, act in (
        ("ESSAYS_FAULT", lambda: os.kill(os.getpid(), signal.SIGKILL)),
        ("ESSAYS_PAUSE", lambda: time.sleep(2)),
    ):
        point = _at(variable)
        if point is None:
            continue
        event, count = point
        seen = [0]

        def maybe(
            *args: object, act: Any = act, count: int = count, seen: list[int] = seen
        ) -> None:
            seen[0] += 1
            if seen[0] == count:
                act()

        app.connect(event, maybe, priority=1)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
