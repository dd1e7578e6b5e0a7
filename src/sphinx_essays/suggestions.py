"""Broken links that say the fix: "did you mean" for terms and essays.

Sphinx reports a ``{term}`` missing from the glossary as "term not in
glossary" and a ``{doc}`` to a missing page as "unknown document", located
but with no way forward. For those two, this module writes the warning
instead (same place, same ``ref.term`` and ``ref.doc`` types, so
``suppress_warnings`` works as before): it names the glossary's file, offers
the closest existing terms or pages, and says how to write the link.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

from sphinx.util import logging
from sphinx.util.osutil import relpath

if TYPE_CHECKING:
    from docutils import nodes
    from sphinx.application import Sphinx
    from sphinx.domains import Domain
    from sphinx.environment import BuildEnvironment

logger = logging.getLogger(__name__)

#: How many suggestions a message offers, and how close they must be.
SUGGESTIONS = 3
CUTOFF = 0.6


def closest(word: str, candidates: list[str]) -> list[str]:
    """The candidates closest to *word*, case-insensitively, best first."""
    folded = {candidate.lower(): candidate for candidate in candidates}
    found = difflib.get_close_matches(word.lower(), folded, SUGGESTIONS, CUTOFF)
    return [folded[match] for match in found]


def _offer(names: list[str]) -> str:
    return "did you mean " + " or ".join(repr(name) for name in names) + "? "


def term_message(env: BuildEnvironment, target: str) -> str:
    terms: dict[str, str] = {}
    for (kind, name), (docname, _anchor) in env.domains["std"].objects.items():
        if kind == "term":
            terms[name] = docname
    where = sorted(set(terms.values()))
    glossary = (
        " or ".join(str(env.doc2path(docname, False)) for docname in where)
        or "a {glossary} directive"
    )
    offer = closest(target, list(terms))
    return (
        f"term {target!r} is not in the glossary ({glossary}); "
        + (_offer(offer) if offer else "")
        + f"link an existing term, or define {target!r} in the glossary"
    )


def doc_message(env: BuildEnvironment, refdoc: str, target: str) -> str:
    from sphinx.util import docname_join

    wanted = docname_join(refdoc, target.removesuffix(".md"))
    folder, _, name = wanted.rpartition("/")
    by_name: dict[str, list[str]] = {}
    for docname in sorted(env.found_docs):
        by_name.setdefault(docname.rpartition("/")[2], []).append(docname)
    # Names are compared, not whole paths, which share their folders; a page
    # in the folder the link points into comes first.
    offer = [
        docname
        for match in closest(name, list(by_name))
        for docname in sorted(by_name[match], key=lambda d: not d.startswith(folder))
    ][:SUGGESTIONS]
    shown = [relpath(name, refdoc.rpartition("/")[0] or ".") for name in offer]
    return (
        f"no page {target!r} (looked for {wanted!r}); "
        + (_offer(shown) if shown else "")
        + "write the path relative to this file, or from the source folder "
        "with a leading '/'"
    )


def _warn(app: Sphinx, domain: Domain | None, node: nodes.Element) -> bool | None:
    kind = node.get("reftype")
    if node.get("refdomain", "std") not in {"", "std"} or kind not in {"term", "doc"}:
        return None
    target = str(node["reftarget"])
    if kind == "term":
        message = term_message(app.env, target)
    else:
        message = doc_message(app.env, str(node.get("refdoc", "")), target)
    logger.warning(message, location=node, type="ref", subtype=kind)
    return True


def setup(app: Sphinx) -> None:
    app.connect("warn-missing-reference", _warn)
