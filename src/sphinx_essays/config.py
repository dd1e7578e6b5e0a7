"""The ``essays_*`` configuration values, as one dataclass.

Every field of :class:`EssaysConfig` becomes a Sphinx config value named
``essays_<field>``. The values are checked once, at ``config-inited``, so a
typo in ``conf.py`` stops the build before any essay is read.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sphinx.errors import ConfigError

if TYPE_CHECKING:
    from sphinx.application import Sphinx
    from sphinx.config import Config

PREFIX = "essays_"
#: The licences the book can state, by SPDX identifier: name, short name and
#: the address of the licence's deed.
LICENCES = {
    "CC-BY-4.0": (
        "Creative Commons Attribution 4.0 International",
        "CC BY 4.0",
        "https://creativecommons.org/licenses/by/4.0/",
    ),
    "CC-BY-SA-4.0": (
        "Creative Commons Attribution-ShareAlike 4.0 International",
        "CC BY-SA 4.0",
        "https://creativecommons.org/licenses/by-sa/4.0/",
    ),
    "CC0-1.0": (
        "Creative Commons Zero 1.0 Universal",
        "CC0 1.0",
        "https://creativecommons.org/publicdomain/zero/1.0/",
    ),
}
SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


@dataclass(frozen=True)
class EssaysConfig:
    """Settings for the essays extension (``essays_<name>`` in ``conf.py``)."""

    topics: tuple[str, ...] = ("observability", "infrastructure", "security", "teams")
    """The allowed values of an essay's ``topic``; each is a folder under
    :attr:`root`."""

    root: str = "essays"
    """The folder, relative to the source directory, that holds
    ``<topic>/<slug>.md`` essay files."""

    words_per_minute: int = 230
    """Reading speed used to turn a word count into a reading time."""

    related_count: int = 3
    """How many related essays to list at the end of each essay."""

    list_limit: int = field(default=8, metadata={"rebuild": "html"})
    """How many items a generated list on a web page shows before it links to
    the rest (:mod:`.overflow`): essays under a topic, a tag or a month, the
    essays that use a glossary term, the sentences that cite a source. The
    PDF and the EPUB list everything."""

    index_page_kb: int = field(default=64, metadata={"rebuild": "html"})
    """How many kilobytes of rows one page of a generated index holds on the
    website before the rest go on further pages (:mod:`.paging`)."""

    feed_filename: str = "atom.xml"
    """Where the Atom feed is written, relative to the HTML output folder."""

    sidebar: bool = True
    """Replace furo's sidebar, which renders the whole site on every page, with
    one computed once per build (``False`` keeps furo's, as a baseline)."""

    drafts: bool = False
    """Build the essays whose front matter says ``status: draft``, each with a
    "Draft" badge (``nox -s live`` sets it). Other builds leave drafts out:
    the site, the feed, the sitemap, search, the PDF and the EPUB."""

    live: bool = False
    """This build is live preview's (``nox -s live`` sets it): every page
    carries the build-problems panel (:mod:`.live`). Published builds never
    do."""

    social_cards: bool = True
    """Draw each essay's social preview image, its ``og:image`` (``False``
    draws none: the benchmark's baseline)."""

    web_only: tuple[str, ...] = ()
    """Documents (glob patterns of docnames, such as ``about/*``) that belong
    to the website only: the PDF and the EPUB leave them out (:mod:`.book`)."""

    book_subtitle: str = ""
    """The subtitle on the book's title page (PDF and EPUB)."""

    book_edition: str = ""
    """The edition the title page names, such as ``December 2026``; a date
    written in conf.py, so the build never depends on today's date."""

    licence: str = ""
    """The licence of the essays, by its SPDX identifier (``CC-BY-4.0``),
    stated on the book's copyright page and in the PDF's metadata."""

    sources_max_age: int = field(default=365, metadata={"rebuild": ""})
    """Days after which the freshness report (``nox -s sources``) lists a
    source whose ``urldate`` is older. Only the report reads it, so changing
    it rebuilds nothing."""

    def validate(self) -> None:
        """Raise :class:`~sphinx.errors.ConfigError` naming the bad value."""
        if not self.topics:
            raise ConfigError(f"{PREFIX}topics must name at least one topic")
        for topic in self.topics:
            if not isinstance(topic, str) or not SLUG_RE.match(topic):
                raise ConfigError(
                    f"{PREFIX}topics: {topic!r} is not a lowercase slug "
                    "(letters, digits and single hyphens)"
                )
        if len(set(self.topics)) != len(self.topics):
            raise ConfigError(f"{PREFIX}topics lists a topic twice: {self.topics!r}")
        root = self.root.strip("/")
        if not root or root.startswith(".") or "\\" in root:
            raise ConfigError(
                f"{PREFIX}root must be a folder relative to the source directory, "
                f"not {self.root!r}"
            )
        for name in (
            "words_per_minute",
            "related_count",
            "list_limit",
            "index_page_kb",
            "sources_max_age",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(
                    f"{PREFIX}{name} must be a positive integer, not {value!r}"
                )
        for pattern in self.web_only:
            if not isinstance(pattern, str) or not pattern or pattern.startswith("/"):
                raise ConfigError(
                    f"{PREFIX}web_only: {pattern!r} is not a docname pattern "
                    "relative to the source directory (such as 'about/*')"
                )
        if self.licence and self.licence not in LICENCES:
            raise ConfigError(
                f"{PREFIX}licence: {self.licence!r} is not one of "
                f"{', '.join(sorted(LICENCES))}"
            )
        if not self.feed_filename.endswith(".xml") or "/" in self.feed_filename:
            raise ConfigError(
                f"{PREFIX}feed_filename must be a file name ending in .xml, "
                f"not {self.feed_filename!r}"
            )


def from_sphinx(config: Config) -> EssaysConfig:
    """Build an :class:`EssaysConfig` from Sphinx's config object."""
    values: dict[str, Any] = {}
    for option in dataclasses.fields(EssaysConfig):
        value = getattr(config, PREFIX + option.name)
        if option.name in ("topics", "web_only"):
            value = tuple(value)
        values[option.name] = value
    return EssaysConfig(**values)


def _check_config(app: Sphinx, config: Config) -> None:
    from_sphinx(config).validate()


def setup(app: Sphinx) -> None:
    for option in dataclasses.fields(EssaysConfig):
        default = option.default
        app.add_config_value(
            PREFIX + option.name,
            default,
            option.metadata.get("rebuild", "env"),
            types=(tuple, list)
            if option.name in ("topics", "web_only")
            else type(default),
            description=f"essays extension: {option.name}",
        )
    app.connect("config-inited", _check_config)
