"""What each essay says, kept beside its doctree, not in the environment.

Two things need an essay's whole text after it has been read: the search
index (:mod:`.search`, the text of each section) and the unlinked-term check
(:mod:`.glossary`, each prose paragraph and its line). Kept in the
environment, that text was nine tenths of it, about 20 KB a pickled essay.
Sphinx's parallel readers each send the whole environment back to the main
process, pickled, so a build's reading cost and memory grew with the square
of the site: at 10,000 essays a reader held 2 GB.

Each essay's text of each kind is instead one JSON file,
``<doctreedir>/essays-text/<kind>/<docname>.json``, written by the process
that read the page and replaced in one step (a killed build leaves no half
file). Sphinx purges a page before reading it again or when its source is
gone, and so does this module, so no file outlives what it describes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sphinx.application import Sphinx
    from sphinx.environment import BuildEnvironment

FOLDER = "essays-text"
#: The kinds of text kept, each by its own module.
KINDS = ("sections", "prose")


def path(env: BuildEnvironment, kind: str, docname: str) -> Path:
    return Path(env.doctreedir, FOLDER, kind, f"{docname}.json")


def store(env: BuildEnvironment, kind: str, docname: str, value: Any) -> None:
    """Keep *value* (JSON) as the *kind* text of *docname*."""
    target = path(env, kind, docname)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(value, ensure_ascii=False), encoding="utf-8")
    partial.replace(target)


def load(env: BuildEnvironment, kind: str, docname: str) -> Any | None:
    """The *kind* text of *docname*, or None if it has none."""
    try:
        return json.loads(path(env, kind, docname).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def _purge(app: Sphinx, env: BuildEnvironment, docname: str) -> None:
    for kind in KINDS:
        path(env, kind, docname).unlink(missing_ok=True)


def setup(app: Sphinx) -> None:
    app.connect("env-purge-doc", _purge)
