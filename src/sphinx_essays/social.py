"""A social preview image for each essay: site, topic, title and summary.

sphinxext-opengraph writes the ``og:`` tags; this module gives each essay
page its own ``og:image``, drawn with Pillow (see :mod:`.drawing`). An image
is keyed by what it shows. It is drawn once into
``<doctreedir>/social/<key>.png`` and copied from there into the site as
``_social/<docname>.png``, so an unchanged essay is never redrawn and its
image changes only when its title, topic or summary does.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sphinx_essays import config as essays_config
from sphinx_essays import drawing
from sphinx_essays.book import on_the_web
from sphinx_essays.domain import get_domain

if TYPE_CHECKING:
    from collections.abc import Set

    from sphinx.application import Sphinx
    from sphinx.environment import BuildEnvironment

#: Open Graph's recommended size; X (Twitter) shows it as a large card.
WIDTH, HEIGHT = 1200, 630
CANVAS = drawing.Canvas(WIDTH, HEIGHT, paper=(251, 250, 247), ink=(21, 61, 46))
#: Where the images go in the site.
FOLDER = "_social"
MARGIN = 80


def topic_label(app: Sphinx, topic: str) -> str:
    """The title of the topic's page, or the topic itself."""
    root = essays_config.from_sphinx(app.config).root
    title = app.env.titles.get(f"{root}/{topic}/index")
    return title.astext() if title is not None else topic.capitalize()


def draw_card(site: str, topic: str, title: str, summary: str) -> bytes:
    """The PNG bytes of one essay's card."""
    image, draw = CANVAS.new()
    draw.rectangle((0, 0, 23, HEIGHT), fill=255)
    width = WIDTH - 2 * MARGIN
    y = drawing.text_block(
        draw,
        [f"{site.upper()}  ·  {topic.upper()}"],
        x=MARGIN,
        y=64,
        size=30,
        leading=40,
        level=175,
    )
    y = drawing.text_block(
        draw,
        drawing.wrap(title, 64, width, 3),
        x=MARGIN,
        y=y + 36,
        size=64,
        leading=78,
        level=255,
    )
    drawing.text_block(
        draw,
        drawing.wrap(summary, 34, width, 4),
        x=MARGIN,
        y=y + 30,
        size=34,
        leading=46,
        level=205,
    )
    return CANVAS.png(image)


def card_key(site: str, topic: str, title: str, summary: str) -> str:
    """What decides an image's pixels, hashed."""
    shown = json.dumps([drawing.VERSION, WIDTH, HEIGHT, site, topic, title, summary])
    return hashlib.sha256(shown.encode()).hexdigest()[:32]


def essay_card(app: Sphinx, docname: str, record: dict[str, Any]) -> Path | None:
    """Draw (or reuse) the card of *docname*; return its path in the site, or
    None for an essay without a title (the build has already warned)."""
    if not record.get("title"):
        return None
    site = app.config.project
    topic = topic_label(app, record["topic"])
    key = card_key(site, topic, record["title"], record["summary"])
    cache = Path(app.doctreedir, "social", f"{key}.png")
    if not cache.exists():
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_suffix(".tmp")
        partial.write_bytes(draw_card(site, topic, record["title"], record["summary"]))
        partial.replace(cache)
    target = Path(app.builder.outdir, FOLDER, f"{docname}.png")
    if not target.exists() or target.read_bytes() != cache.read_bytes():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cache, target)
    return target


def _set_image(
    app: Sphinx,
    pagename: str,
    templatename: str,
    context: dict[str, Any],
    doctree: object,
) -> None:
    """Before sphinxext-opengraph (priority 500) reads the page's fields."""
    if not on_the_web(app):
        return
    record = get_domain(app.env).essays.get(pagename)
    card = "summary" if record is None else "summary_large_image"
    tag = f'<meta name="twitter:card" content="{card}" />'
    context["metatags"] = context.get("metatags", "") + "\n    " + tag
    if record is None or not essays_config.from_sphinx(app.config).social_cards:
        return
    if essay_card(app, pagename, record) is None:
        return
    fields = dict(context.get("meta") or {})
    fields["og:image"] = f"{FOLDER}/{pagename}.png"
    fields["og:image:alt"] = f"{record['title']}: {record['summary']}"
    fields["og:image:width"] = str(WIDTH)
    fields["og:image:height"] = str(HEIGHT)
    context["meta"] = fields


def _remove_deleted_cards(
    app: Sphinx,
    env: BuildEnvironment,
    added: Set[str],
    changed: Set[str],
    removed: Set[str],
) -> list[str]:
    """Delete the cards of essays whose source is gone, as a fresh build
    would not have them."""
    for docname in removed:
        Path(app.outdir, FOLDER, f"{docname}.png").unlink(missing_ok=True)
    return []


def setup(app: Sphinx) -> None:
    app.connect("env-get-outdated", _remove_deleted_cards)
    app.connect("html-page-context", _set_image, priority=400)
