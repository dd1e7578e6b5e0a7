"""Create a new essay: ``nox -s new -- "Title" --topic observability``.

Writes ``docs/essays/<topic>/<slug>.md`` with valid front matter (the topic,
today's date, a summary line and a tag to replace, and ``status: draft``),
the title as the only ``#`` heading, and the sections every essay needs, each
with a note on what goes there. A draft shows in ``nox -s live`` only, and the
essay standard leaves it alone until it is published: delete the ``status``
line. The slug comes from the title. It refuses an unknown topic, a
title that gives no slug, and a slug any essay already uses, and it never
overwrites a file. Exit status 2 and one line on stderr say what to change.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
from pathlib import Path

from sphinx_essays.config import EssaysConfig

DOCS = Path(__file__).resolve().parent.parent / "docs"

TEMPLATE = """\
---
topic: {topic}
tags: [{topic}]
summary: One or two sentences, in plain text, that say what this essay claims.
date: {date}
status: draft
---

# {title}

Open with the claim, in one paragraph a reader can quote. Cite each source
next to the claim it backs, with its key in docs/references.bib:
`` {{cite:p}}`key` ``.

## The mechanism

Explain how it works, with a real example, config or number.

## The strongest objection

State the best argument against the claim, and answer it.

## What to do

Close with what the reader should do on Monday.

:::{{admonition}} Key takeaways
:class: key-takeaways

- The claim, in one line.
:::
"""


def slugify(title: str) -> str:
    """Lowercase words joined by single hyphens: "Why X Fails" -> "why-x-fails"."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def topics(docs: Path) -> list[str]:
    """The topics of the knowledge base: ``essays_topics`` in conf.py, or
    the extension's default when conf.py does not set it."""
    namespace: dict[str, object] = {"__file__": str(docs / "conf.py")}
    exec((docs / "conf.py").read_text(encoding="utf-8"), namespace)
    found = namespace.get("essays_topics", EssaysConfig.topics)
    assert isinstance(found, (tuple, list))
    return [str(t) for t in found]


def create(title: str, topic: str, docs: Path, today: dt.date) -> Path:
    """Write the new essay and return its path; raise ValueError to refuse."""
    title = " ".join(title.split())
    known = topics(docs)
    if topic not in known:
        msg = f"unknown topic {topic!r}; use one of: {', '.join(known)}"
        raise ValueError(msg)
    slug = slugify(title)
    if not slug:
        msg = f"the title {title!r} has no letters or digits to make a slug from"
        raise ValueError(msg)
    for existing in sorted((docs / "essays").glob(f"*/{slug}.md")):
        msg = (
            f"slug {slug!r} is already used by {existing.relative_to(docs)}; "
            "choose a different title"
        )
        raise ValueError(msg)
    path = docs / "essays" / topic / f"{slug}.md"
    text = TEMPLATE.format(topic=topic, date=today.isoformat(), title=title)
    with path.open("x", encoding="utf-8") as file:  # never overwrite
        file.write(text)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("title", help="the essay's title, exactly as it should read")
    parser.add_argument("--topic", required=True, help="one of essays_topics")
    parser.add_argument("--docs", type=Path, default=DOCS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        path = create(args.title, args.topic, args.docs, dt.date.today())
    except (ValueError, FileExistsError) as error:
        print(f"new essay: {error}", file=sys.stderr)
        return 2
    print(
        f"Created {path} as a draft; preview it with: nox -s live. "
        "To publish it, delete its 'status: draft' line."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
