"""The book's downloads on the website: links that always lead somewhere.

``essays_downloads`` lists each format as ``(label, target, how to build)``.
A target that is an address (``https://...``, what Read the Docs serves) is
linked as it is. A target that is a path, relative to the source directory
(``_build/pdf/infrastructure-essays.pdf``), is copied into the site as
``_downloads/book/<name>`` when that file exists, and linked there; when it
does not, the sidebar says which command builds it, and links nothing.

Which files exist is part of the HTML configuration: when a PDF appears,
changes or goes, every page is written again (nothing is re-read), so an
incremental build shows the same links as a fresh one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sphinx.errors import ConfigError

from sphinx_essays.book import on_the_web

if TYPE_CHECKING:
    from sphinx.application import Sphinx
    from sphinx.config import Config

#: Where local files go in the site.
FOLDER = "_downloads/book"


@dataclass(frozen=True)
class Download:
    """One format of the book, as the sidebar shows it."""

    label: str
    href: str | None
    """An address, a site path, or None when there is nothing to link."""
    build: str
    """The command that builds it, shown when there is no file."""
    source: Path | None = None
    """The local file to copy into the site."""


def _is_address(target: str) -> bool:
    return target.startswith(("https://", "http://"))


def resolve(config: Config, srcdir: Path) -> list[Download]:
    """What each entry of ``essays_downloads`` links, given the files here."""
    found = []
    for entry in config.essays_downloads:
        if not (isinstance(entry, (tuple, list)) and len(entry) == 3):
            msg = (
                "essays_downloads: each entry is (label, address or path, "
                f"command that builds it); got {entry!r}"
            )
            raise ConfigError(msg)
        label, target, build = entry
        if _is_address(target):
            found.append(Download(label, target, build))
            continue
        source = (srcdir / target).resolve()
        if source.is_file():
            found.append(Download(label, f"{FOLDER}/{source.name}", build, source))
        else:
            found.append(Download(label, None, build))
    return found


def _fingerprint(app: Sphinx, config: Config) -> None:
    """Record what the downloads link, as an HTML-only config value."""
    digest = hashlib.sha256()
    for download in resolve(config, Path(app.srcdir)):
        digest.update(f"{download.label}\0{download.href}\0".encode())
        if download.source is not None:
            digest.update(hashlib.sha256(download.source.read_bytes()).digest())
    config.essays_downloads_state = digest.hexdigest()


def _page_context(
    app: Sphinx,
    pagename: str,
    templatename: str,
    context: dict[str, Any],
    doctree: object,
) -> None:
    if not on_the_web(app):
        return
    links = []
    for download in resolve(app.config, Path(app.srcdir)):
        href = download.href
        if href is not None and not _is_address(href):
            href = context["pathto"](href, 1)
        links.append({"label": download.label, "href": href, "build": download.build})
    context["essays_downloads"] = links


def _copy(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or not on_the_web(app):
        return
    for download in resolve(app.config, Path(app.srcdir)):
        if download.source is None or download.href is None:
            continue
        target = Path(app.builder.outdir, download.href)
        data = download.source.read_bytes()
        if target.exists() and target.read_bytes() == data:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".tmp")
        partial.write_bytes(data)
        partial.replace(target)


def setup(app: Sphinx) -> None:
    app.add_config_value("essays_downloads", (), "html", types=(tuple, list))
    app.add_config_value("essays_downloads_state", "", "html", types=(str,))
    app.connect("config-inited", _fingerprint)
    app.connect("html-page-context", _page_context)
    app.connect("build-finished", _copy)
