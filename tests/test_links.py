"""Every internal link of the built site resolves, offline: each ``href`` and
``src`` to a file that exists, each ``#anchor`` to an id on its page, in the
essays and in the generated pages (indexes, search, glossary, feed)."""

from __future__ import annotations

import posixpath
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from bs4 import BeautifulSoup

if TYPE_CHECKING:
    from pathlib import Path

    from conftest import Site

#: Attributes that point somewhere, by element.
LINKS = {
    "a": ("href", "xlink:href"),
    "link": ("href",),
    "script": ("src",),
    "img": ("src",),
    "use": ("href", "xlink:href"),
}


def anchors(page: BeautifulSoup) -> set[str]:
    return {str(t["id"]) for t in page.find_all(id=True)} | {
        str(t["name"]) for t in page.find_all("a", attrs={"name": True})
    }


def broken_links(root: Path) -> tuple[int, list[str]]:
    """Check every relative link under *root*; return (links checked, broken)."""
    pages = {
        p.relative_to(root).as_posix(): BeautifulSoup(p.read_text(), "html.parser")
        for p in root.rglob("*.html")
    }
    ids = {path: anchors(page) for path, page in pages.items()}
    checked, broken = 0, []
    for path, page in pages.items():
        for tag, attributes in LINKS.items():
            for element in page.find_all(tag):
                for attribute in attributes:
                    url = element.get(attribute)
                    if not url:
                        continue
                    parts = urlsplit(str(url))
                    if parts.scheme or parts.netloc:
                        continue  # external: nox -s linkcheck
                    checked += 1
                    target = path
                    if parts.path.startswith("/"):  # from the site root (404.html)
                        target = posixpath.normpath(parts.path.lstrip("/"))
                    elif parts.path:
                        joined = posixpath.join(posixpath.dirname(path), parts.path)
                        target = posixpath.normpath(joined)
                        if parts.path.endswith("/"):
                            target += "/index.html"
                    if not (root / target).is_file():
                        broken.append(f"{path}: {url} (no {target})")
                    elif (
                        parts.fragment
                        and target.endswith(".html")
                        and unquote(parts.fragment) not in ids[target]
                    ):
                        broken.append(f"{path}: {url} (no #{parts.fragment})")
    return checked, broken


def test_every_internal_link_and_anchor_resolves(site: Site) -> None:
    checked, broken = broken_links(site.html)
    assert checked > 2000
    assert broken == []


def test_the_checker_finds_a_broken_link_and_a_broken_anchor(tmp_path: Path) -> None:
    (tmp_path / "a.html").write_text(
        '<a href="b.html#there">ok</a><a href="b.html#gone">x</a>'
        '<a href="missing.html">y</a><a href="#top">z</a><p id="top"></p>'
    )
    (tmp_path / "b.html").write_text('<h1 id="there">B</h1>')
    checked, broken = broken_links(tmp_path)
    assert checked == 4
    assert broken == [
        "a.html: b.html#gone (no #gone)",
        "a.html: missing.html (no missing.html)",
    ]


def test_feed_links_point_at_pages_of_the_site(site: Site) -> None:
    feed = ET.parse(site.html / "atom.xml").getroot()
    base = "https://infrastructure-essays.readthedocs.io/en/latest/"
    links = [
        str(link.get("href"))
        for link in feed.iter("{http://www.w3.org/2005/Atom}link")
        if str(link.get("href")).startswith(base)
    ]
    assert len(links) >= 8
    for href in links:
        page = urlsplit(href).path.removeprefix("/en/latest/") or "index.html"
        assert (site.html / page).is_file(), href
