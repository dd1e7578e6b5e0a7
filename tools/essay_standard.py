"""Check every essay against the house standard; print each shortfall.

    python tools/essay_standard.py DOCTREES

DOCTREES is the doctree folder of a build of ``docs/`` (``nox -s lint`` makes
one with the ``dummy`` builder, which reads everything and writes nothing).
Each essay must have:

1. 2,500 to 5,500 words of prose (code, tables, the header and citations
   not counted);
2. one *Key takeaways* box with at least three points;
3. at least 20 inline citations (``{cite:p}`` roles) of at least 15
   distinct sources;
4. no hand-typed reference list: no section called *Further reading*,
   *References*, *Sources* or *Bibliography* (the build appends the essay's
   references itself);
5. links to at least three other essays inside paragraphs;
6. at least ten distinct glossary terms.

Every shortfall is printed as ``path: what is missing``, numbered as above;
the exit status is 1 if there was any.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

from docutils import nodes
from sphinx import addnodes

from sphinx_essays.metadata import count_words, is_essay

MIN_WORDS, MAX_WORDS = 2500, 5500
MIN_TAKEAWAYS, MIN_ESSAY_LINKS, MIN_TERMS = 3, 3, 10
MIN_CITATIONS, MIN_SOURCES = 20, 15
#: Section titles that mean a reference list was typed by hand.
HAND_TYPED = {"further reading", "references", "sources", "bibliography"}


def prose_words(tree: nodes.document) -> int:
    """Words of prose: not code, tables, the header or the sources."""
    tree = tree.deepcopy()
    for table in list(tree.findall(nodes.table)):
        table.parent.remove(table)
    for box in list(tree.findall(nodes.container)):
        if "essay-header" in box["classes"]:
            box.parent.remove(box)
    return count_words(tree)


def citations(tree: nodes.document) -> list[list[str]]:
    """The keys of each inline citation, in order."""
    return [
        [key.strip() for key in str(x["reftarget"]).split(",") if key.strip()]
        for x in tree.findall(addnodes.pending_xref)
        if x.get("refdomain") == "cite"
    ]


def shortfalls(tree: nodes.document, essays: set[str], docname: str) -> list[str]:
    """What *docname*'s doctree lacks, one sentence each."""
    found = []
    words = prose_words(tree)
    if not MIN_WORDS <= words <= MAX_WORDS:
        found.append(
            f"rule 1: {words} words of prose; write between {MIN_WORDS} and {MAX_WORDS}"
        )
    boxes = [
        n for n in tree.findall(nodes.admonition) if "key-takeaways" in n["classes"]
    ]
    if len(boxes) != 1:
        found.append(
            f"rule 2: {len(boxes)} Key takeaways boxes; add exactly one "
            "(an admonition with :class: key-takeaways)"
        )
    elif len(list(boxes[0].findall(nodes.list_item))) < MIN_TAKEAWAYS:
        found.append(
            f"rule 2: the Key takeaways box needs {MIN_TAKEAWAYS} or more points"
        )
    cited = citations(tree)
    sources = {key for keys in cited for key in keys}
    if len(cited) < MIN_CITATIONS or len(sources) < MIN_SOURCES:
        found.append(
            f"rule 3: {len(cited)} inline citations of {len(sources)} sources; cite "
            f"{MIN_CITATIONS} or more, of {MIN_SOURCES} or more sources, with "
            "{cite:p}`key` next to each claim a reader may want to check"
        )
    typed = [
        section[0].astext()
        for section in tree.findall(nodes.section)
        if section[0].astext().strip().casefold() in HAND_TYPED
    ]
    for title in typed:
        found.append(
            f"rule 4: a section called {title!r}; remove it and cite each source "
            "inline "
            "(the build appends the essay's references)"
        )
    linked = {
        x["reftarget"].lstrip("/")
        for x in tree.findall(addnodes.pending_xref)
        if x["reftype"] == "doc" and isinstance(x.parent, nodes.paragraph)
    } & (essays - {docname})
    if len(linked) < MIN_ESSAY_LINKS:
        found.append(
            f"rule 5: links {len(linked)} other essays in its prose; link "
            f"{MIN_ESSAY_LINKS} or more with {{doc}}"
        )
    terms = {
        x["reftarget"].lower()
        for x in tree.findall(addnodes.pending_xref)
        if x["reftype"] == "term"
    }
    if len(terms) < MIN_TERMS:
        found.append(
            f"rule 6: links {len(terms)} glossary terms; link {MIN_TERMS} or more "
            "with {term}"
        )
    return found


def check(doctrees: Path, root: str = "essays") -> list[str]:
    """Every shortfall of every essay under *doctrees*, as ``path: text``."""
    files = {
        path.relative_to(doctrees).with_suffix("").as_posix(): path
        for path in sorted(doctrees.rglob("*.doctree"))
    }
    essays = {docname for docname in files if is_essay(docname, root)}
    problems = []
    for docname in sorted(essays):
        tree = pickle.loads(files[docname].read_bytes())
        for text in shortfalls(tree, essays, docname):
            problems.append(f"docs/{docname}.md: {text}")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    problems = check(Path(argv[0]))
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
