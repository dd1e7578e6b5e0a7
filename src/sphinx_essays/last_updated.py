""" "Last updated" dates where git has them, and builds from a source export.

sphinx-last-updated-by-git dates each page from its last commit. Sources
without git history (``git archive``, a "Download ZIP", an sdist) make it warn
once per folder, which fails a ``-nW`` build. When the source directory is not
in a git work tree, or git is not installed, every page is excluded from its
look-up instead: the build passes and the pages simply show no date.
"""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

from sphinx.util import logging

if TYPE_CHECKING:
    from pathlib import Path

    from sphinx.application import Sphinx
    from sphinx.config import Config

logger = logging.getLogger(__name__)

#: The extension whose look-up this module switches off.
EXTENSION = "sphinx_last_updated_by_git"


def in_git_work_tree(path: Path) -> bool:
    """Whether *path* is inside a git work tree that git itself can read."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--is-inside-work-tree"],
            cwd=path,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return False
    return done.returncode == 0 and done.stdout.strip() == "true"


def _without_git(app: Sphinx, config: Config) -> None:
    if EXTENSION not in app.extensions or in_git_work_tree(app.srcdir):
        return
    config.git_exclude_patterns = ["**"]
    logger.info(
        "the sources are not in a git work tree: pages show no 'last updated' date"
    )


def setup(app: Sphinx) -> None:
    # Before the extension reads its configuration (priority 500).
    app.connect("config-inited", _without_git, priority=400)
