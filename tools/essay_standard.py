"""Check every essay against the house standard; print each shortfall.

    python tools/essay_standard.py DOCTREES

DOCTREES is the doctree folder of a build of ``docs/`` (``nox -s lint`` makes
one with the ``dummy`` builder, which reads everything and writes nothing).
Each essay must have 2,000 to 4,000 words of prose, one *Key takeaways* box
with at least three points, *Further reading* as its last section with at
least three sources, links to at least three other essays inside paragraphs,
and at least ten distinct glossary terms. Every shortfall is printed as
``path: what is missing``; the exit status is 1 if there was any.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

from docutils import nodes
from sphinx import addnodes

from sphinx_essays.metadata import count_words, is_essay

MIN_WORDS, MAX_WORDS = 2000, 4000
MIN_TAKEAWAYS, MIN_SOURCES, MIN_ESSAY_LINKS, MIN_TERMS = 3, 3, 3, 10


def prose_words(tree: nodes.document) -> int:
    """Words of prose: not code, tables, the header or the sources."""
    tree = tree.deepcopy()
    for table in list(tree.findall(nodes.table)):
        table.parent.remove(table)
    for box in list(tree.findall(nodes.container)):
        if "essay-header" in box["classes"]:
            box.parent.remove(box)
    for section in list(tree.findall(nodes.section)):
        if section[0].astext().strip() == "Further reading":
            section.parent.remove(section)
    return count_words(tree)


def shortfalls(tree: nodes.document, essays: set[str], docname: str) -> list[str]:
    """What *docname*'s doctree lacks, one sentence each."""
    found = []
    words = prose_words(tree)
    if not MIN_WORDS <= words <= MAX_WORDS:
        found.append(
            f"{words} words of prose; write between {MIN_WORDS} and {MAX_WORDS}"
        )
    boxes = [
        n for n in tree.findall(nodes.admonition) if "key-takeaways" in n["classes"]
    ]
    if len(boxes) != 1:
        found.append(
            f"{len(boxes)} Key takeaways boxes; add exactly one "
            "(an admonition with :class: key-takeaways)"
        )
    elif len(list(boxes[0].findall(nodes.list_item))) < MIN_TAKEAWAYS:
        found.append(f"the Key takeaways box needs {MIN_TAKEAWAYS} or more points")
    sections = list(tree.findall(nodes.section))
    reading = [s for s in sections if s[0].astext() == "Further reading"]
    if not reading:
        found.append("no 'Further reading' section; end the essay with one")
    else:
        if reading[-1] is not sections[-1]:
            found.append("'Further reading' must be the last section")
        sources = len(list(reading[-1].findall(nodes.list_item)))
        if sources < MIN_SOURCES:
            found.append(
                f"{sources} sources under 'Further reading'; list {MIN_SOURCES} or more"
            )
    linked = {
        x["reftarget"].lstrip("/")
        for x in tree.findall(addnodes.pending_xref)
        if x["reftype"] == "doc" and isinstance(x.parent, nodes.paragraph)
    } & (essays - {docname})
    if len(linked) < MIN_ESSAY_LINKS:
        found.append(
            f"links {len(linked)} other essays in its prose; link "
            f"{MIN_ESSAY_LINKS} or more with {{doc}}"
        )
    terms = {
        x["reftarget"].lower()
        for x in tree.findall(addnodes.pending_xref)
        if x["reftype"] == "term"
    }
    if len(terms) < MIN_TERMS:
        found.append(
            f"links {len(terms)} glossary terms; link {MIN_TERMS} or more with {{term}}"
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
