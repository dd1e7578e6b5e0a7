"""Search: a small sharded index of what each essay says, and the search UI.

Sphinx's own index scores a hit the same whatever the word's frequency,
indexes every page's generated text (previews, backlinks, related lists) as
if the page had said it, and makes a query download the whole index and
then each hit's page. This index keeps Sphinx's English language support
(its word splitting, stop words and Snowball stemmer, in Python and in
JavaScript) and changes the rest:

* **What is indexed.** Only what an essay says, read from its doctree: its
  title, summary, tags and the glossary terms it links (the essay's *card*,
  section 0), and each section's heading and text (sections 1..n). Listing
  pages, indexes and generated blocks are never indexed. Each glossary term
  is an item of its own, so a query that names a term can show its
  definition first.
* **How it ranks.** BM25 with field weights (:data:`FIELD_WEIGHTS`): a
  title, a heading or a summary counts more than body text, and a rare word
  more than a common one. The browser adds an essay's card score, its best
  section and a share of the rest, so the hit names the section it matched.
* **What a query downloads.** The index is cut into :data:`SHARDS` files by
  a hash of each stem's first three letters, so a word (or a prefix being
  typed) needs one shard; each stem keeps only its :data:`POSTINGS_KEPT`
  best postings, so a shard stays small at any size. Item titles come in
  blocks of :data:`ITEMS_PER_BLOCK`, and a hit's excerpt from one small text
  file per section. No page is fetched to show a result.
* **Exact builds.** Each page's sections are kept beside its doctree when
  it is read (in the parallel readers); the index is worked out whole at
  ``build-finished``, in a fixed order. So a serial build equals a ``-j 2``
  one, and an incremental build equals a fresh one.
* **Rebuilds write what changed.** The first build writes the index into a
  fresh folder that then replaces the old one. Each later build compares
  every file with the digests the last build recorded (:data:`MANIFEST`,
  beside the doctrees) and rewrites only those that differ, each replaced
  in one step, so a one-essay edit rewrites its own sections' files and the
  shards whose scores moved, not thousands. The record is deleted before
  the first file is touched and written after the last, so a build killed
  in between leaves no record, and the next build writes the whole index
  afresh. A warm process (live preview) also keeps each essay's sections
  and each section's stems in memory while the page is unchanged.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import re
import shutil
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from docutils import nodes
from sphinx import addnodes
from sphinx.search import IndexBuilder
from sphinx.search.en import SearchEnglish
from sphinx.util import logging

from sphinx_essays import pagetext
from sphinx_essays.domain import get_domain
from sphinx_essays.metadata import is_essay
from sphinx_essays.relations import is_citation

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sphinx.application import Sphinx
    from sphinx.builders import Builder
    from sphinx.environment import BuildEnvironment

logger = logging.getLogger(__name__)

#: Where the index lives, relative to the HTML output folder.
INDEX_DIR = "_search"
#: Format of the files; the browser refuses an index it does not know.
VERSION = 1
#: How many files the postings are spread over.
SHARDS = 512
#: How many postings each stem keeps: the best, which is all a result list
#: shows. It bounds every shard whatever the number of essays.
POSTINGS_KEPT = 300
#: How many items (essays, glossary terms) one title file holds.
ITEMS_PER_BLOCK = 8
#: How much of a section's text its excerpt file keeps.
TEXT_KEPT = 6000
#: How much a word counts in each field, against 1 for body text.
FIELD_WEIGHTS = {
    "title": 6.0,
    "summary": 3.0,
    "tags": 3.0,
    "terms": 2.0,
    "heading": 3.0,
    "body": 1.0,
}
#: BM25's term-frequency saturation and length normalisation.
K1, B = 1.2, 0.75
#: Nodes whose text is not what the page says.
NOT_SAID = (
    nodes.comment,
    nodes.raw,
    nodes.system_message,
    nodes.substitution_definition,
    addnodes.index,
)
#: Containers our extension adds while reading, by class.
NOT_SAID_CLASSES = {"essay-header", "kb-previews"}

LANGUAGE = SearchEnglish({})
#: Digits alone are kept from three (RFC 9110, EIP-1559, OTEP 4430).
WORD = re.compile(r"\w+")


@functools.cache
def stem(word: str) -> str | None:
    """The stem the index keeps for a lower-case *word*, or ``None`` for a
    stop word, a one-letter word or a number under three digits. Cached: a
    knowledge base uses a few tens of thousands of distinct words."""
    if word in LANGUAGE.stopwords or len(word) < 2:
        return None
    if word.isdigit() and len(word) < 3:
        return None
    return LANGUAGE.stem(word)


def words(text: str) -> list[str]:
    """The stems of *text* that the index keeps, in order."""
    return [s for s in map(stem, WORD.findall(text.lower())) if s is not None]


def shard_of(stem: str) -> int:
    """The shard file that holds *stem*: a hash (32-bit FNV-1a, which the
    browser computes the same way) of its first three letters, so every word
    a typed prefix can grow into is in that prefix's shard."""
    value = 0x811C9DC5
    for byte in stem[:3].encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value % SHARDS


# -- Reading: what each page says --------------------------------------------


def _said(node: nodes.Node) -> str:
    """The text of *node* that its page says (no generated blocks)."""
    parts: list[str] = []

    def walk(current: nodes.Node) -> None:
        if isinstance(current, NOT_SAID) or is_citation(current):
            return
        if isinstance(current, nodes.Element) and NOT_SAID_CLASSES & set(
            current.get("classes", [])
        ):
            return
        if "graphviz" in type(current).__name__:
            return
        if isinstance(current, nodes.Text):
            parts.append(current.astext())
            return
        for child in current.children:
            walk(child)
        if isinstance(current, (nodes.paragraph, nodes.title, nodes.literal_block)):
            parts.append("\n")

    walk(node)
    text = " ".join("".join(parts).split())
    # A citation left out leaves its space: "remove ." reads "remove."
    return re.sub(r"\s+([.,;:!?)\]])", r"\1", text)


def _sections(doctree: nodes.document) -> list[dict[str, Any]]:
    """The essay's opening (before its first ``##``) and each ``##`` section,
    with its anchor, heading and text; subsections belong to their section."""
    top = next(iter(doctree.findall(nodes.section)), None)
    if top is None:
        return []
    found = []
    opening = [
        c for c in top.children if not isinstance(c, (nodes.section, nodes.title))
    ]
    found.append(
        {
            "anchor": top["ids"][0] if top["ids"] else "",
            "heading": "",
            "text": " ".join(_said(child) for child in opening).strip(),
        }
    )
    for section in top.children:
        if not isinstance(section, nodes.section):
            continue
        title = section.next_node(nodes.title)
        body = [c for c in section.children if c is not title]
        found.append(
            {
                "anchor": section["ids"][0] if section["ids"] else "",
                "heading": _said(title) if title is not None else "",
                "text": " ".join(_said(child) for child in body).strip(),
            }
        )
    return found


def _read(app: Sphinx, doctree: nodes.document) -> None:
    """Keep each essay's sections for the index (runs in the readers)."""
    env = app.env
    record = get_domain(env).essays.get(env.docname)
    if record is None or "title" not in record:
        return
    if not is_essay(env.docname, app.config.essays_root):
        return
    pagetext.store(env, "sections", env.docname, _sections(doctree))


# -- The index ------------------------------------------------------------------


#: Each essay's sections as last loaded, with when the page was read: a warm
#: process (live preview) loads only the pages read again since.
_SECTIONS: dict[tuple[str, str], tuple[float, list[dict[str, Any]] | None]] = {}


def _sections_of(env: BuildEnvironment, docname: str) -> list[dict[str, Any]] | None:
    key = (str(env.doctreedir), docname)
    read = env.all_docs.get(docname, 0.0)
    kept = _SECTIONS.get(key)
    if kept is None or kept[0] != read:
        kept = _SECTIONS[key] = (read, pagetext.load(env, "sections", docname))
    return kept[1]


def _items(app: Sphinx, env: BuildEnvironment) -> list[dict[str, Any]]:
    """Every item the index knows, in a fixed order: essays by docname, then
    glossary terms in glossary order. Each has fields per section."""
    domain = get_domain(env)
    builder = app.builder
    items: list[dict[str, Any]] = []
    essays = sorted(domain.complete())
    here = str(env.doctreedir)
    for gone in {key for key in _SECTIONS if key[0] == here} - {
        (here, d) for d in essays
    }:
        del _SECTIONS[gone]
    for docname in essays:
        sections = _sections_of(env, docname)
        if sections is None:
            continue
        record = domain.essays[docname]
        card = {
            "title": record["title"],
            "summary": record["summary"],
            "tags": " ".join(tag.replace("-", " ") for tag in record["tags"]),
            "terms": " ".join(record["terms"]),
        }
        parts = [card]
        anchors, headings, texts = [""], [""], [record["summary"]]
        for section in sections:
            parts.append({"heading": section["heading"], "body": section["text"]})
            anchors.append(section["anchor"])
            headings.append(section["heading"])
            texts.append(section["text"])
        items.append(
            {
                "kind": "essay",
                "title": record["title"],
                "url": builder.get_target_uri(docname),
                "topic": record["topic"],
                "tags": list(record["tags"]),
                "date": record["date"],
                "parts": parts,
                "anchors": anchors,
                "headings": headings,
                "texts": texts,
            }
        )
    for glossary_doc in sorted(domain.glossary):
        page = builder.get_target_uri(glossary_doc)
        for term, _line, node_id, definition in domain.glossary[glossary_doc]:
            items.append(
                {
                    "kind": "term",
                    "title": term,
                    "url": f"{page}#{node_id}",
                    "topic": "",
                    "tags": [],
                    "date": "",
                    "parts": [{"title": term, "body": definition}],
                    "anchors": [node_id],
                    "headings": [""],
                    "texts": [definition],
                }
            )
    return items


def postings(items: list[dict[str, Any]]) -> dict[str, list[tuple[int, int, int]]]:
    """``stem -> [(item, section, score), ...]``, best first, at most
    :data:`POSTINGS_KEPT` each. Scores are BM25 with field weights, per
    section, times 100 and rounded, so the files hold small integers."""
    weighted: list[tuple[int, int, dict[str, float], float]] = []
    lengths: dict[bool, list[float]] = defaultdict(list)
    items_with: Counter[str] = Counter()
    for index, item in enumerate(items):
        seen: set[str] = set()
        for number, fields in enumerate(item["parts"]):
            counts, length = _weighted_stems(tuple(fields.items()))
            weighted.append((index, number, counts, length))
            lengths[number == 0].append(length)
            seen.update(counts)
        items_with.update(seen)
    average = {
        card: (sum(ls) / len(ls) if ls else 1.0) or 1.0 for card, ls in lengths.items()
    }
    total = len(items)
    found: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    for index, number, counts, length in weighted:
        norm = K1 * (1 - B + B * length / average[number == 0])
        for stem, tf in counts.items():
            df = items_with[stem]
            idf = math.log(1 + (total - df + 0.5) / (df + 0.5))
            score = idf * tf * (K1 + 1) / (tf + norm)
            found[stem].append((index, number, max(1, round(score * 100))))
    return {
        stem: sorted(hits, key=lambda hit: (-hit[2], hit[0], hit[1]))[:POSTINGS_KEPT]
        for stem, hits in found.items()
    }


#: How many sections' stems :func:`_weighted_stems` keeps: more than a
#: site of ten thousand essays has.
STEMS_KEPT = 200_000


@functools.lru_cache(maxsize=STEMS_KEPT)
def _weighted_stems(
    fields: tuple[tuple[str, str], ...],
) -> tuple[dict[str, float], float]:
    """Each stem of a section's *fields* with its weighted count, and the
    section's weighted length. Kept while the text is the same (the result
    is shared: never change it)."""
    counts: dict[str, float] = defaultdict(float)
    length = 0.0
    for field, text in fields:
        weight = FIELD_WEIGHTS[field]
        for stem in words(text):
            counts[stem] += weight
            length += weight
    return dict(counts), length


def _dump(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def facets(items: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """What the search page filters by. ``items`` holds each item's topic and
    tags as positions in ``topics`` and ``tags``; ``months`` the month each
    essay is from (a position in ``month_names``, -1 for a term); ``newest``
    the essays, newest first, which is the order of a list without a query
    (``search.html?tag=...``, where :mod:`.overflow` links)."""
    topics = sorted({item["topic"] for item in items if item["topic"]})
    tags = sorted({tag for item in items for tag in item["tags"]})
    months = sorted({item["date"][:7] for item in items if item["date"]})
    essays = [index for index, item in enumerate(items) if item["kind"] == "essay"]
    return {
        "topics": topics,
        "tags": tags,
        "items": [
            [topics.index(item["topic"]) if item["topic"] else -1]
            + [tags.index(tag) for tag in item["tags"]]
            for item in items
        ],
        "month_names": months,
        "months": [
            months.index(item["date"][:7]) if item["date"] else -1 for item in items
        ],
        "newest": sorted(essays, key=lambda index: (items[index]["date"], -index))[
            ::-1
        ],
    }


def index_files(items: list[dict[str, Any]]) -> dict[str, str]:
    """Every file of the index, by its path under :data:`INDEX_DIR`."""
    files: dict[str, str] = {}
    shards: dict[int, dict[str, list[int]]] = defaultdict(dict)
    for stem, hits in sorted(postings(items).items()):
        flat = [number for hit in hits for number in hit]
        shards[shard_of(stem)][stem] = flat
    for shard in range(SHARDS):
        files[f"p/{shard}.json"] = _dump(shards.get(shard, {}))
    for start in range(0, len(items), ITEMS_PER_BLOCK):
        block = [
            [
                item["kind"],
                item["title"],
                item["url"],
                item["topic"],
                item["tags"],
                item["anchors"],
                item["headings"],
            ]
            for item in items[start : start + ITEMS_PER_BLOCK]
        ]
        files[f"i/{start // ITEMS_PER_BLOCK}.json"] = _dump(block)
    for index, item in enumerate(items):
        for number, text in enumerate(item["texts"]):
            files[f"t/{index}/{number}.json"] = _dump(text[:TEXT_KEPT])
    files["facets.json"] = _dump(facets(items))
    files["index.json"] = _dump(
        {
            "version": VERSION,
            "shards": SHARDS,
            "block": ITEMS_PER_BLOCK,
            "items": len(items),
            "essays": sum(1 for item in items if item["kind"] == "essay"),
            "stopwords": sorted(LANGUAGE.stopwords),
            "weights": FIELD_WEIGHTS,
        }
    )
    return files


#: Where the fingerprint of the index last written is kept: beside the
#: doctrees, not in the output, which must not differ from a fresh build's.
STAMP = "essays-search.stamp"


def fingerprint(app: Sphinx, env: BuildEnvironment) -> str:
    """What the index is made of, without reading it: when each essay and
    glossary page was last read (a page is read again whenever what it says
    may have changed), the builder's addresses, and this module's code."""
    domain = get_domain(env)
    pages = sorted(domain.complete()) + sorted(domain.glossary)
    parts = [
        Path(__file__).read_text(encoding="utf-8"),
        app.builder.name,
        app.builder.get_target_uri("x"),
        *(f"{page}\0{env.all_docs.get(page, 0)}" for page in pages),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


#: The digest of every file of the index last written, by its path under
#: :data:`INDEX_DIR`: beside the doctrees, like :data:`STAMP`.
MANIFEST = "essays-search.files"


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _replace(path: Path, text: str) -> None:
    """Write *path* in one step: a reader sees the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.tmp")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def _write_fresh(outdir: Path, files: dict[str, str]) -> None:
    """The whole index into a fresh folder, which then replaces the old one."""
    target = outdir / INDEX_DIR
    fresh = outdir / f"{INDEX_DIR}.new"
    shutil.rmtree(fresh, ignore_errors=True)
    for name, text in files.items():
        path = fresh / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    old = outdir / f"{INDEX_DIR}.old"
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    fresh.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def _write_changes(
    target: Path, files: dict[str, str], digests: dict[str, str], before: dict[str, str]
) -> int:
    """Rewrite the files of the index in *target* whose digest differs from
    *before*, and delete those it no longer has; return how many changed."""
    changed = 0
    for name, text in files.items():
        if before.get(name) != digests[name]:
            _replace(target / name, text)
            changed += 1
    for name in sorted(before.keys() - files.keys()):
        path = target / name
        path.unlink(missing_ok=True)
        changed += 1
        with contextlib.suppress(OSError):  # a folder of section texts, now empty
            if path.parent != target:
                path.parent.rmdir()
    return changed


def _write_index(app: Sphinx, exception: BaseException | None) -> None:
    """Write the index; unless the index in the output was made of exactly
    what this build would use. See the module docstring for how."""
    if exception is not None or not builds_search(app.builder):
        return
    started = time.perf_counter()
    stamp = Path(app.doctreedir) / STAMP
    manifest = Path(app.doctreedir) / MANIFEST
    made_of = fingerprint(app, app.env)
    outdir = Path(app.outdir)
    target = outdir / INDEX_DIR
    if target.is_dir() and stamp.is_file() and stamp.read_text() == made_of:
        logger.info("search: the index is up to date")
        return
    items = _items(app, app.env)
    files = index_files(items)
    files["stemmer.js"] = stemmer_code(app)
    digests = {name: digest(text) for name, text in files.items()}
    before: dict[str, str] | None = None
    if target.is_dir() and manifest.is_file():
        with contextlib.suppress(ValueError):
            before = json.loads(manifest.read_text(encoding="utf-8"))
    # No record while the folder is being changed: a build killed meanwhile
    # makes the next one write the whole index.
    manifest.unlink(missing_ok=True)
    stamp.unlink(missing_ok=True)
    if before is None:
        _write_fresh(outdir, files)
        written = len(files)
    else:
        written = _write_changes(target, files, digests, before)
    manifest.write_text(_dump(digests), encoding="utf-8")
    stamp.write_text(made_of)
    essays = sum(1 for item in items if item["kind"] == "essay")
    logger.info(
        "search: indexed %d essays and %d glossary terms in %.2f s (%d files written)",
        essays,
        len(items) - essays,
        time.perf_counter() - started,
        written,
    )


def stemmer_code(app: Sphinx) -> str:
    """Sphinx's Snowball stemmer in JavaScript, which the browser runs."""
    return IndexBuilder(app.env, "en", {}, "").get_js_stemmer_code() + "\n"


# -- Pages ----------------------------------------------------------------------


def builds_search(builder: Builder) -> bool:
    """Whether *builder* writes the search index and page (and so whether a
    page may link them: :mod:`.overflow`)."""
    return builder.format == "html" and builder.name in {"html", "dirhtml"}


def _disable_sphinx_index(app: Sphinx) -> None:
    """Sphinx's own index and search page are replaced, so not built."""
    if builds_search(app.builder):
        app.builder.search = False  # type: ignore[attr-defined]


def _page_context(
    app: Sphinx,
    pagename: str,
    templatename: str,
    context: dict[str, Any],
    doctree: object,
) -> None:
    if builds_search(app.builder):
        context["essays_search"] = INDEX_DIR


def _search_page(app: Sphinx) -> Iterator[tuple[str, dict[str, Any], str]]:
    """The full results page (Sphinx's own is off with its index)."""
    if builds_search(app.builder):
        yield "search", {"title": "Search"}, "search.html"


def setup(app: Sphinx) -> None:
    app.add_css_file("essays-search.css")
    app.add_js_file("essays-search.js", loading_method="defer")
    app.connect("builder-inited", _disable_sphinx_index)
    app.connect("doctree-read", _read, priority=700)
    app.connect("html-page-context", _page_context)
    app.connect("html-collect-pages", _search_page)
    app.connect("build-finished", _write_index)
