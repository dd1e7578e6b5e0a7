"""Generate a synthetic knowledge base of N essays with the real structure.

Every essay has valid front matter, a title, five sections of about 1,500
words in all, ``{term}`` links into a generated glossary, links to three other
essays, a YAML and a Python code block, index entries and, for every tenth
essay, a Graphviz diagram. The site uses the real ``docs/conf.py`` settings.
The corpus is deterministic: the same N gives the same files.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

TOPICS = ("observability", "infrastructure", "security", "teams")
TAGS = [f"tag-{n:02d}" for n in range(40)]
TERMS = [f"Concept {chr(65 + n // 26)}{chr(65 + n % 26)}" for n in range(80)]
WORDS = [
    "system",
    "request",
    "latency",
    "service",
    "cost",
    "queue",
    "node",
    "cluster",
    "signal",
    "owner",
    "change",
    "failure",
    "budget",
    "alert",
    "deploy",
    "rollout",
    "replica",
    "quorum",
    "metric",
    "trace",
    "span",
    "label",
    "policy",
    "identity",
    "secret",
    "network",
    "boundary",
    "team",
    "method",
    "process",
    "design",
    "review",
]

CONF = """\
from pathlib import Path

# The real site's settings, executed afresh each build as Sphinx does conf.py.
exec(Path({conf!r}).read_text())

essays_sidebar = {sidebar!r}
html_baseurl = "https://essays.example.org/"
"""

#: The floor: the same corpus built by Sphinx and stock furo with furo's
#: per-page navigation tree switched off and without the knowledge layer
#: (``sphinx_essays``: no backlinks, related essays, previews, maps, essay
#: indexes, sidebar or essay search; Sphinx's own search instead). What is
#: left is Sphinx reading and writing the pages with the site's third-party
#: extensions, so ours over the floor is what the knowledge layer costs.
#: ``sphinx_last_updated_by_git`` goes too: the corpus is not in git, and
#: ours switches it off for that reason (``last_updated.py``).
FLOOR = """
import furo

furo._compute_navigation_tree = lambda context: ""
extensions = [
    e for e in extensions if e not in ("sphinx_essays", "sphinx_last_updated_by_git")
]
for _name in ("bibtex_default_style", "bibtex_reference_style"):
    globals().pop(_name, None)
"""


def sentence(rng: random.Random, words: int = 14) -> str:
    chosen = [rng.choice(WORDS) for _ in range(words)]
    return " ".join(chosen).capitalize() + "."


def paragraph(rng: random.Random, sentences: int = 5) -> str:
    return " ".join(sentence(rng) for _ in range(sentences))


def essay(
    n: int, count: int, rng: random.Random, *, citations: bool = False
) -> tuple[str, str]:
    topic = TOPICS[n % len(TOPICS)]
    slug = f"essay-{n:04d}"
    tags = sorted(rng.sample(TAGS, 3))
    others = rng.sample([m for m in range(count) if m != n], min(3, count - 1))
    terms = rng.sample(TERMS, 10)
    day = 1 + n % 28
    month = 1 + (n // 28) % 12
    lines = [
        "---",
        f"topic: {topic}",
        f"tags: [{', '.join(tags)}]",
        f"summary: Synthetic essay number {n}, about {rng.choice(WORDS)} and "
        f"{rng.choice(WORDS)}, used to measure how builds scale.",
        f"date: 2026-{month:02d}-{day:02d}",
        "---",
        "",
        f"# Synthetic Essay {n:04d}",
        "",
        f"This essay argues about {{term}}`{terms[0]}` and {{term}}`{terms[1]}`. "
        + paragraph(rng, 4),
        "",
    ]
    for section in range(5):
        lines += [f"## Section {section + 1}", ""]
        other = others[section % len(others)]
        other_topic = TOPICS[other % len(TOPICS)]
        cited = (n * 5 + section) % SOURCES
        lines.append(
            f"As {{doc}}`another essay </essays/{other_topic}/essay-{other:04d}>` "
            f"shows, {{term}}`{terms[2 + section]}` matters. "
            f"{{index}}`synthetic concept {n % 50}` "
            + paragraph(rng, 6)
            + (
                f" A source says so {{cite:p}}`source-{cited:03d}`."
                if citations
                else ""
            )
        )
        lines += ["", paragraph(rng, 7), "", paragraph(rng, 7), ""]
        if section == 1:
            lines += [
                "```yaml",
                "service:",
                f"  name: essay-{n}",
                "  replicas: 3",
                "```",
                "",
            ]
        if section == 2:
            lines += [
                "```python",
                f"def essay_{n}() -> int:",
                f"    return {n}",
                "```",
                "",
            ]
        if section == 3 and n % 10 == 0:
            lines += [
                "```{graphviz}",
                f":caption: Diagram of essay {n}.",
                ":alt: Three boxes in a row.",
                "",
                f"digraph e{n} {{ a -> b -> c; }}",
                "```",
                "",
            ]
    lines += [
        "```{admonition} Key takeaways",
        ":class: key-takeaways",
        "",
        f"- {sentence(rng)}",
        f"- {sentence(rng)}",
        f"- {{term}}`{terms[8]}` and {{term}}`{terms[9]}` connect.",
        "```",
        "",
        "## Further reading",
        "",
        "- A source.",
        "- Another source.",
        "- A third source.",
        "",
    ]
    return f"essays/{topic}/{slug}.md", "\n".join(lines)


#: Sources in a cited corpus's bibliography; each essay cites five of them.
SOURCES = 200


def bibliography(rng: random.Random) -> str:
    """A references.bib of :data:`SOURCES` entries of every kind."""
    kinds = ["spec", "paper", "docs", "book", "report", "article"]
    entries = []
    for n in range(SOURCES):
        entries.append(
            f"@misc{{source-{n:03d},\n"
            f"  author = {{Author {n}}},\n"
            f"  title = {{{sentence(rng, 6)[:-1]}}},\n"
            f"  year = {{{2000 + n % 26}}},\n"
            f"  url = {{https://example.org/sources/{n}}},\n"
            f"  urldate = {{2026-11-01}},\n"
            f"  kind = {{{kinds[n % len(kinds)]}}},\n}}\n"
        )
    return "\n".join(entries)


def generate(
    target: Path,
    count: int,
    docs: Path,
    *,
    sidebar: bool,
    citations: bool = False,
    floor: bool = False,
) -> Path:
    """Write a corpus of *count* essays under *target*; return its source dir.

    With *citations*, every essay cites five sources of a generated
    bibliography inline, and the site has a bibliography page; without, it
    has none (``bibtex_bibfiles`` is empty). With *floor* (and no *sidebar*),
    the build has no knowledge layer and furo draws no navigation tree: see
    :data:`FLOOR`."""
    if target.exists():
        shutil.rmtree(target)
    source = target / "src"
    rng = random.Random(count)
    (source / "_static").mkdir(parents=True)
    shutil.copy2(docs / "_static" / "essays.css", source / "_static")
    shutil.copy2(docs / "_static" / "favicon.svg", source / "_static")
    (source / "conf.py").write_text(
        CONF.format(conf=str(docs / "conf.py"), sidebar=sidebar)
        + ("" if citations else "bibtex_bibfiles = []\n")
        + (FLOOR if floor else "")
    )
    if citations:
        (source / "references.bib").write_text(bibliography(random.Random(0)))
        (source / "references.md").write_text(
            "# Bibliography\n\n```{bibliography}\n```\n"
        )
    (source / "index.md").write_text(
        "# Synthetic Essays\n\n```{essay-list}\n:limit: 4\n```\n\n"
        "```{toctree}\n:caption: Topics\n\n"
        + "".join(f"essays/{t}/index\n" for t in TOPICS)
        + "```\n\n```{toctree}\n:caption: Reference\n\nglossary\n"
        + ("references\n" if citations else "")
        + "General index <genindex>\nSearch <search>\n```\n"
    )
    glossary = ["# Glossary", "", "```{glossary}", ""]
    for term in TERMS:
        glossary += [term, f"  The definition of {term.lower()}, in one sentence.", ""]
    (source / "glossary.md").write_text("\n".join([*glossary, "```", ""]))
    for topic in TOPICS:
        folder = source / "essays" / topic
        folder.mkdir(parents=True)
        (folder / "index.md").write_text(
            f"# {topic.capitalize()}\n\nThe essays about {topic}.\n\n"
            f"```{{essay-list}}\n:topic: {topic}\n:sort: title\n```\n\n"
            "```{toctree}\n:glob:\n:hidden:\n\n*\n```\n"
        )
    for n in range(count):
        path, text = essay(n, count, rng, citations=citations)
        (source / path).write_text(text)
    return source
