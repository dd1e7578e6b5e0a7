"""Quiet builds: no output the author did not cause and cannot act on.

Three messages of every rebuild are about other code, not the essays:

* sphinxext-opengraph prints "matplotlib is not installed, social cards will
  not be generated" when it is imported. This site draws its own cards
  (:mod:`.social`), so the module is imported here first, with that line
  kept from the terminal.
* "The configuration has changed (3 options: 'html_static_path',
  'pygments_dark_style', 'templates_path')": furo and this extension set
  those values after Sphinx compared the configuration with the last
  build's, so they differ on every build. They are taken out of the line,
  which is dropped when nothing else is left; a change the author made to
  ``conf.py`` is still reported.
* myst-parser logs its whole parser configuration ("myst v5.2.0:
  MdParserConfig(...)"), which the author set in ``conf.py`` and did not
  change. It is dropped.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sphinx.application import Sphinx

#: Set by extensions after the comparison, so never changed by the author.
SET_BY_EXTENSIONS = frozenset(
    {"html_static_path", "pygments_dark_style", "templates_path"}
)
CHANGED = re.compile(r"^The configuration has changed \(")
NAME = re.compile(r"'([^']+)'")


MYST_CONFIG = re.compile(r"myst v[\d.]+:.* MdParserConfig\(")


class _OnlyTheAuthorsChanges(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not CHANGED.match(message):
            return True
        names = [
            name for name in NAME.findall(message) if name not in SET_BY_EXTENSIONS
        ]
        if not names:
            return False
        # Name only what the author changed.
        count = f"{len(names)} option{'s' if len(names) > 1 else ''}"
        record.msg = f"The configuration has changed ({count}: %s)"
        record.args = (", ".join(map(repr, names)),)
        return True


class _NoParserConfig(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not MYST_CONFIG.search(record.getMessage())


#: Each filter, on the logger whose records it judges.
FILTERS = (
    ("sphinx.sphinx.environment", _OnlyTheAuthorsChanges),
    ("sphinx.myst_parser.sphinx_ext.main", _NoParserConfig),
)


def _import_opengraph_quietly() -> None:
    if "sphinxext.opengraph" in sys.modules:
        return
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(ImportError):
        import sphinxext.opengraph  # type: ignore[import-untyped]  # noqa: F401


def setup(app: Sphinx) -> None:
    _import_opengraph_quietly()
    for name, kind in FILTERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, kind) for f in logger.filters):
            logger.addFilter(kind())
