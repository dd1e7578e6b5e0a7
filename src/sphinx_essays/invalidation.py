"""Which pages to rewrite when something they show from other pages changed.

Sphinx rewrites a page when its own source changes. Our pages also show data
from other pages: the sidebar (titles of the newest essays in a topic), the
previous/next links, related essays, backlinks with their sentences, previews
of linked essays and glossary terms, the neighbourhood map, and, for listings,
glossaries and the concept map, every essay. For each page a fingerprint of
exactly that data is kept in the domain; after reading, ``env-get-updated``
returns the pages whose fingerprint changed, and Sphinx rewrites them without
re-reading anything. So an incremental build equals a fresh one, and writes
only the pages that really changed (sphinx-doc/sphinx#5506 is the stale-title
bug this avoids).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sphinx_essays import config as essays_config
from sphinx_essays import sources
from sphinx_essays.domain import get_domain
from sphinx_essays.navigation import topic_of

if TYPE_CHECKING:
    from collections.abc import Iterable, Set

    from sphinx.application import Sphinx
    from sphinx.environment import BuildEnvironment

#: Fields of an essay record that other pages show.
SHOWN = ("title", "summary", "date", "tags", "minutes", "topic", "links", "terms")


def digest(value: object) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def cited_entries(env: BuildEnvironment) -> dict[str, list[str]]:
    """Each bibliography key as pages show it: its label, as every citation of
    it prints, and its formatted entry, as references and previews print it.
    A label can change when another entry changes (2025a, 2025b)."""
    shown: dict[str, list[str]] = {}
    for citation in sources.cite_domain(env).citations:
        text = citation.formatted_entry.text.render_as("text")
        shown[citation.key] = [citation.formatted_entry.label, text]
    return shown


def _citation_parts(env: BuildEnvironment) -> dict[str, Any]:
    """What each page shows of the bibliography: the entries it cites, and
    for a page with a ``{bibliography}`` every entry it lists."""
    entries = cited_entries(env)
    parts: dict[str, Any] = {}
    for docname, found in get_domain(env).citations.items():
        keys = sorted({key for citation in found for key in citation["keys"]})
        parts[docname] = [[key, entries.get(key)] for key in keys]
    for bibliography in sources.cite_domain(env).bibliographies:
        parts.setdefault(bibliography.docname, [])
        parts[bibliography.docname].append(entries)
    return parts


def fingerprints(app: Sphinx, env: BuildEnvironment) -> dict[str, str]:
    """A fingerprint of the cross-page data each document shows."""
    domain = get_domain(env)
    essays = domain.complete()
    navigation = domain.data.get("navigation", {"sections": [], "topics": {}})
    shown = {d: {k: r.get(k) for k in SHOWN} for d, r in essays.items()}
    everything = digest([shown, {d: r.get("mentions") for d, r in essays.items()}])
    glossary = digest(domain.glossary)
    toctree = env.collect_relations()
    count = essays_config.from_sphinx(app.config).related_count
    relations = domain.relations()
    citations = _citation_parts(env)

    def title(docname: str | None) -> str | None:
        return env.titles[docname].astext() if docname in env.titles else None

    prints = {}
    for docname in env.found_docs:
        _parent, previous, following = toctree.get(docname, (None, None, None))
        topic = topic_of(docname, navigation)
        parts: list[Any] = [
            navigation["sections"],
            navigation["topics"].get(topic) if topic else None,
            [previous, title(previous), following, title(following)],
        ]
        if docname in domain.listings or docname in domain.glossary:
            parts.append(everything)
        if docname in essays:
            record = essays[docname]
            neighbours = set(record["links"]) | relations.links_in.get(docname, set())
            parts += [
                relations.related(docname, count),
                relations.referenced_by(docname),
                {n: shown[n] for n in sorted(neighbours) if n in shown},
                glossary if record["terms"] else None,
            ]
        if docname in citations:
            parts.append(citations[docname])
        prints[docname] = digest(parts)
    return prints


def site_digest(app: Sphinx, env: BuildEnvironment) -> str:
    """One digest of every input to any fingerprint: O(site), cheap."""
    domain = get_domain(env)
    essays = domain.complete()
    return digest(
        [
            {d: [r.get(k) for k in (*SHOWN, "mentions")] for d, r in essays.items()},
            domain.glossary,
            domain.data.get("navigation"),
            sorted(domain.listings),
            sorted(env.found_docs),
            {d: env.titles[d].astext() for d in sorted(env.titles)},
            env.toctree_includes,
            cited_entries(env),
            {d: [c["keys"] for c in found] for d, found in domain.citations.items()},
            sorted(b.docname for b in sources.cite_domain(env).bibliographies),
        ]
    )


def changed_pages(app: Sphinx, env: BuildEnvironment) -> Iterable[str]:
    """Pages to rewrite because what they show from other pages changed.

    When nothing any page shows from another has changed (the usual edit of
    an essay's prose), the per-page fingerprints are not recomputed at all."""
    domain = get_domain(env)
    old: dict[str, str] = domain.data.setdefault("fingerprints", {})
    site = site_digest(app, env)
    if old and domain.data.get("site_digest") == site:
        return []
    new = fingerprints(app, env)
    domain.data["fingerprints"] = new
    domain.data["site_digest"] = site
    return sorted(d for d, value in new.items() if old.get(d) != value)


def remove_deleted_pages(
    app: Sphinx,
    env: BuildEnvironment,
    added: Set[str],
    changed: Set[str],
    removed: Set[str],
) -> list[str]:
    """Delete the HTML of documents whose source is gone: Sphinx leaves it,
    so a deleted essay would stay online and differ from a fresh build."""
    builder = app.builder
    if builder.format == "html" and hasattr(builder, "get_output_path"):
        for docname in removed:
            builder.get_output_path(docname).unlink(missing_ok=True)
    return []


def remove_buildinfo_backup(app: Sphinx, exception: BaseException | None) -> None:
    """Delete the ``.buildinfo.bak`` Sphinx keeps when the configuration
    changed: every page has been written again, and a fresh build has none."""
    if exception is None and app.builder.format == "html":
        Path(app.outdir, ".buildinfo.bak").unlink(missing_ok=True)


def setup(app: Sphinx) -> None:
    app.connect("env-get-outdated", remove_deleted_pages)
    app.connect("build-finished", remove_buildinfo_backup)
    app.connect("env-get-updated", changed_pages)
