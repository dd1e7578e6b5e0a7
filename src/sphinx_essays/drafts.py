"""Drafts: essays whose front matter says ``status: draft``.

A draft is an essay still being written. ``nox -s live`` builds drafts
(``essays_drafts = True``) and marks each with a "Draft" badge under its
title; every other build leaves them out before Sphinx reads anything, by
adding their files to ``exclude_patterns``: no page, no place in the sidebar,
the indexes, the feed, the sitemap, search, the PDF or the EPUB, and none of
the essay standard's checks (``nox -s lint`` reads what a published build
reads). Publishing is deleting the ``status`` line, or writing
``status: published``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sphinx_essays import config as essays_config
from sphinx_essays.metadata import FrontMatter, split_front_matter

if TYPE_CHECKING:
    from sphinx.application import Sphinx
    from sphinx.config import Config


def drafts(srcdir: Path, root: str) -> list[str]:
    """The essay files under *srcdir*/*root* that are drafts, as paths
    relative to *srcdir* (what ``exclude_patterns`` matches)."""
    found = []
    for path in sorted((srcdir / root).glob("**/*.md")):
        with path.open(encoding="utf-8") as handle:
            head = handle.read(4096)
        if not head.startswith("---"):
            continue
        front = split_front_matter(head if "\n---" in head[3:] else path.read_text())
        if isinstance(front, FrontMatter) and front.values.get("status") == "draft":
            found.append(path.relative_to(srcdir).as_posix())
    return found


def _leave_out_drafts(app: Sphinx, config: Config) -> None:
    settings = essays_config.from_sphinx(config)
    if settings.drafts:
        return
    left_out = drafts(Path(app.srcdir), settings.root)
    if left_out:
        config.exclude_patterns = [*config.exclude_patterns, *left_out]


def setup(app: Sphinx) -> None:
    app.connect("config-inited", _leave_out_drafts)
