"""The ``essay`` domain: the one place where essay metadata lives.

Sphinx pickles a domain's ``data`` with the environment, clears a document's
entries before it is re-read (:meth:`EssayDomain.clear_doc`) and merges the
entries that parallel readers collected (:meth:`EssayDomain.merge_domaindata`).
Keeping all state here is what makes incremental and ``-j N`` builds correct.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from sphinx.domains import Domain
from sphinx.util import logging

if TYPE_CHECKING:
    from collections.abc import Set

    from sphinx.application import Sphinx

logger = logging.getLogger(__name__)


class EssayDomain(Domain):
    """Holds each essay's validated metadata, keyed by docname."""

    name = "essay"
    label = "Essays"
    initial_data: ClassVar[dict[str, Any]] = {"essays": {}}
    #: Bump when the shape of an essay's stored record changes.
    data_version = 1

    @property
    def essays(self) -> dict[str, dict[str, Any]]:
        """``docname -> record`` with title, topic, tags, summary, date, words."""
        essays: dict[str, dict[str, Any]] = self.data["essays"]
        return essays

    def note_essay(self, docname: str, record: dict[str, Any]) -> None:
        self.essays[docname] = dict(record)

    def clear_doc(self, docname: str) -> None:
        self.essays.pop(docname, None)

    def merge_domaindata(self, docnames: Set[str], otherdata: dict[str, Any]) -> None:
        for docname, record in otherdata["essays"].items():
            if docname in docnames:
                self.essays[docname] = record

    def check_consistency(self) -> None:
        """Warn about two essays that share a slug or a title."""
        seen_slugs: dict[str, str] = {}
        seen_titles: dict[str, str] = {}
        for docname in sorted(self.essays):
            record = self.essays[docname]
            slug = docname.rsplit("/", 1)[-1]
            if slug in seen_slugs:
                logger.warning(
                    "essay slug %r is already used by '%s'; rename this file so "
                    "every essay has its own slug",
                    slug,
                    seen_slugs[slug],
                    location=(docname, 1),
                    type="essays",
                    subtype="duplicate",
                )
            else:
                seen_slugs[slug] = docname
            title = record.get("title")
            if title is None:
                continue
            if title in seen_titles:
                logger.warning(
                    "essay title %r is already used by '%s'; give this essay a "
                    "title of its own",
                    title,
                    seen_titles[title],
                    location=(docname, record.get("title_line", 1)),
                    type="essays",
                    subtype="duplicate",
                )
            else:
                seen_titles[title] = docname


def setup(app: Sphinx) -> None:
    app.add_domain(EssayDomain)
