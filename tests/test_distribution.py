"""How readers get the essays: Read the Docs, the EPUB, search engines and
social previews, a 404 page, copy buttons, the PDF link, honest dates and a
print stylesheet. Each is checked in the real output, parsed."""

from __future__ import annotations

import io
import re
import subprocess
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml
from bs4 import BeautifulSoup
from PIL import Image

from conftest import DOCS, ESSAYS, ROOT, sphinx_build

if TYPE_CHECKING:
    from playwright.sync_api import Browser

    from conftest import Site

BASE = "https://infrastructure-essays.readthedocs.io/en/latest/"
EPUBCHECK_JAR = "/usr/share/java/epubcheck.jar"

#: The options Read the Docs documents for version 2 of .readthedocs.yaml
#: (docs.readthedocs.com/platform/stable/config-file/v2.html).
RTD_KEYS = {
    "version",
    "build",
    "sphinx",
    "mkdocs",
    "formats",
    "python",
    "conda",
    "submodules",
    "search",
}
RTD_BUILD_KEYS = {"os", "tools", "apt_packages", "jobs", "commands"}
RTD_JOBS = {
    "post_checkout",
    "pre_system_dependencies",
    "post_system_dependencies",
    "pre_create_environment",
    "create_environment",
    "post_create_environment",
    "pre_install",
    "install",
    "post_install",
    "pre_build",
    "build",
    "post_build",
}
RTD_OS = {"ubuntu-20.04", "ubuntu-22.04", "ubuntu-24.04", "ubuntu-lts-latest"}


def soup(path: Path) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


# -- Read the Docs -------------------------------------------------------------


def test_readthedocs_config_uses_only_documented_options() -> None:
    config = yaml.safe_load((ROOT / ".readthedocs.yaml").read_text())
    assert config["version"] == 2
    assert set(config) <= RTD_KEYS
    build = config["build"]
    assert set(build) <= RTD_BUILD_KEYS
    assert build["os"] in RTD_OS
    assert re.fullmatch(r"3\.\d+", build["tools"]["python"])
    assert set(build["jobs"]) <= RTD_JOBS
    assert all(isinstance(p, str) for p in build["apt_packages"])
    assert set(config["formats"]) == {"pdf", "epub"}
    assert config["sphinx"]["fail_on_warning"] is True
    assert config["sphinx"]["builder"] in {"html", "dirhtml", "singlehtml"}


def test_readthedocs_config_names_paths_that_exist() -> None:
    config = yaml.safe_load((ROOT / ".readthedocs.yaml").read_text())
    assert (ROOT / config["sphinx"]["configuration"]).is_file()
    for step in config["python"]["install"]:
        assert set(step) <= {"method", "path", "extra_requirements", "requirements"}
        assert (ROOT / step["path"] / "pyproject.toml").is_file()


# -- EPUB ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def epub(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("epub")
    result = sphinx_build(
        "-nW", "-b", "epub", "-d", str(out / "doctrees"), str(DOCS), str(out / "epub")
    )
    assert result.returncode == 0, result.stderr
    return out / "epub" / "InfrastructureEssays.epub"


def test_epub_passes_epubcheck(epub: Path) -> None:
    assert Path(EPUBCHECK_JAR).is_file(), "epubcheck is missing: use nox -s tests"
    done = subprocess.run(
        ["java", "-jar", EPUBCHECK_JAR, str(epub)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 fatals / 0 errors / 0 warnings" in done.stdout + done.stderr


def test_epub_has_title_contents_every_essay_glossary_and_index(epub: Path) -> None:
    with zipfile.ZipFile(epub) as book:
        first = book.infolist()[0]
        assert first.filename == "mimetype"
        assert first.compress_type == zipfile.ZIP_STORED
        assert book.read("mimetype") == b"application/epub+zip"
        opf = ET.fromstring(book.read("content.opf"))
        names = set(book.namelist())
        nav = ET.fromstring(book.read("nav.xhtml"))
    dc = "{http://purl.org/dc/elements/1.1/}"
    contents = {
        "".join(a.itertext()) for a in nav.iter("{http://www.w3.org/1999/xhtml}a")
    }
    assert opf.findtext(f".//{dc}title") == "Infrastructure Essays"
    for essay in ESSAYS:
        assert f"{essay.docname}.xhtml" in names
        # Sphinx's EPUB builder always "educates" quotes in its table of
        # contents (sphinx_smarty_pants), whatever smartquotes says.
        plain = {re.sub("[\u201c\u201d]", '"', text) for text in contents}
        assert essay.title in plain, essay.title
    assert {"glossary.xhtml", "genindex.xhtml", "essay-topics.xhtml"} <= names
    assert "search.xhtml" not in names


def test_epub_has_a_drawn_cover_front_matter_and_back_matter(epub: Path) -> None:
    with zipfile.ZipFile(epub) as book:
        opf = ET.fromstring(book.read("content.opf"))
        names = set(book.namelist())
        cover_page = book.read("epub-cover.xhtml").decode()
        cover = book.read("_static/essays-cover.png")
        landing = book.read("index.xhtml").decode()
        nav = ET.fromstring(book.read("nav.xhtml"))
    opf_ns = "{http://www.idpf.org/2007/opf}"
    dc = "{http://purl.org/dc/elements/1.1/}"
    # The cover image is declared as the cover and shown on the first page.
    items = {item.get("id"): item.get("href") for item in opf.iter(f"{opf_ns}item")}
    declared = opf.find(f".//{opf_ns}meta[@name='cover']")
    assert declared is not None
    assert items[declared.get("content")] == "_static/essays-cover.png"
    assert "_static/essays-cover.png" in cover_page
    with Image.open(io.BytesIO(cover)) as image:
        assert image.size == (1600, 2560)
    spine = opf.find(f".//{opf_ns}spine")
    assert spine is not None
    assert items[spine[0].get("idref")] == "epub-cover.xhtml"
    assert opf.findtext(f".//{dc}description") == (
        "Observability, platforms, security and the teams that run them"
    )
    # Front matter: the preface on the opening page, none of the web's cards.
    assert "Preface" in landing and "sd-card" not in landing
    # Back matter, and no authors' pages.
    contents = [
        " ".join("".join(a.itertext()).split())
        for a in nav.iter("{http://www.w3.org/1999/xhtml}a")
    ]
    for back in ("Glossary", "Bibliography"):
        assert any(text.startswith(back) for text in contents), back
    generated = {"essay-topics", "essay-tags", "essay-archive", "essay-sources"}
    assert {f"{name}.xhtml" for name in generated} <= names
    assert not {n for n in names if n.startswith("about/")}
    assert "browse.xhtml" not in names and "concept-map.xhtml" not in names


# -- Discovery -----------------------------------------------------------------


def test_sitemap_lists_every_page(site: Site) -> None:
    tree = ET.parse(site.html / "sitemap.xml").getroot()
    ns = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
    listed = {loc.text for loc in tree.iter(f"{ns}loc")}
    pages = {
        BASE + p.relative_to(site.html).as_posix()
        for p in site.html.rglob("*.html")
        if p.name not in {"search.html", "genindex.html", "404.html"}
    }
    assert listed == pages


def test_every_essay_has_open_graph_and_twitter_card_metadata(site: Site) -> None:
    for essay in ESSAYS:
        page = soup(site.html / f"{essay.docname}.html")
        meta = {
            str(m.get("property") or m.get("name")): str(m.get("content"))
            for m in page.find_all("meta")
        }
        assert meta["og:title"] == essay.title
        assert meta["og:description"] == essay.front.values["summary"]
        assert meta["description"] == essay.front.values["summary"]
        assert meta["og:url"] == f"{BASE}{essay.docname}.html"
        assert meta["og:site_name"] == "Infrastructure Essays"
        assert meta["og:type"] == "article"
        assert meta["twitter:card"] == "summary_large_image"
        assert meta["og:image"] == f"{BASE}_social/{essay.docname}.png"
        assert meta["og:image:alt"].startswith(essay.title)
        image = site.html / "_social" / f"{essay.docname}.png"
        assert 0 < image.stat().st_size < 100_000, image


def test_pages_other_than_essays_have_no_large_card(site: Site) -> None:
    for name in ("index.html", "glossary.html", "essays/security/index.html"):
        page = soup(site.html / name)
        card = page.find("meta", attrs={"name": "twitter:card"})
        assert card is not None and card.get("content") == "summary", name
        assert page.find("meta", attrs={"property": "og:image"}) is None, name


def test_404_page_links_from_the_site_root(site: Site) -> None:
    page = soup(site.html / "404.html")
    assert page.h1 is not None and "not found" in page.h1.get_text().lower()
    urls = [str(t.get("href")) for t in page.find_all(["a", "link"], href=True)]
    urls += [str(t.get("src")) for t in page.find_all(["script", "img"], src=True)]
    local = [u for u in urls if not u.startswith(("http", "#", "mailto:", "data:"))]
    assert local, "the 404 page links nothing of the site"
    assert all(u.startswith("/") for u in local), local


def test_404_page_works_at_any_depth(browser: Browser, site: Site) -> None:
    """Served for a missing page deep in the site, it still finds its styles."""
    from conftest import serve

    with serve(site.html, not_found="404.html") as base_url:
        page = browser.new_page()
        failed: list[str] = []
        page.on("requestfailed", lambda r: failed.append(r.url))
        page.on(
            "response",
            lambda r: (
                failed.append(r.url)
                if r.status >= 400 and not r.url.endswith("missing.html")
                else None
            ),
        )
        response = page.goto(base_url + "essays/observability/missing.html")
        assert response is not None and response.status == 404
        assert "not found" in page.locator("h1").inner_text().lower()
        assert failed == []
        page.close()


def test_code_blocks_have_copy_buttons(browser: Browser, base_url: str) -> None:
    page = browser.new_page()
    page.goto(base_url + "essays/observability/distributed-tracing.html")
    blocks = page.locator("div.highlight pre").count()
    page.locator("button.copybtn").first.wait_for(state="attached")
    assert page.locator("button.copybtn").count() == blocks > 0
    page.close()


def test_navigation_offers_the_book_and_no_link_leads_nowhere(site: Site) -> None:
    """The PDF and the EPUB: a copy in the site when they were built here,
    or a note saying which command builds them."""
    built = {
        "PDF": DOCS / "_build/pdf/infrastructure-essays.pdf",
        "EPUB": DOCS / "_build/epub/InfrastructureEssays.epub",
    }
    for path in ("index.html", "essays/teams/the-best-dog-trainer-in-the-world.html"):
        block = soup(site.html / path).select_one(".sidebar-drawer .essays-downloads")
        assert block is not None, path
        items = block.find_all("li")
        assert len(items) == len(built)
        for item, (label, source) in zip(items, built.items(), strict=True):
            link = item.find("a")
            if source.is_file():
                assert link is not None and link.get_text() == label
                target = (site.html / path).parent / str(link["href"])
                assert target.read_bytes() == source.read_bytes()
            else:
                assert link is None
                assert item.get_text().startswith(f"{label}: not built yet")


def git_date(path: Path) -> str | None:
    """The committer date of *path*'s last commit, or None in a shallow clone
    or in a copy of the project that is not a git checkout."""
    shallow = subprocess.run(
        ["git", "rev-parse", "--is-shallow-repository"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if shallow.returncode != 0 or shallow.stdout.strip() == "true":
        return None
    return subprocess.run(
        ["git", "log", "-1", "--format=%cs", "--", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_last_updated_dates_come_from_git(site: Site) -> None:
    for essay in ESSAYS:
        page = soup(site.html / f"{essay.docname}.html")
        shown = page.select_one(".last-updated")
        expected = git_date(essay.path)
        if not expected:  # shallow clone, or a file never committed
            assert shown is None
            continue
        assert shown is not None
        assert shown.get_text().split()[-1] == expected


# -- Print ---------------------------------------------------------------------


def test_printing_an_essay_shows_only_the_essay(
    browser: Browser, base_url: str
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(base_url + "essays/observability/distributed-tracing.html")
    page.emulate_media(media="print")
    hidden = [
        ".sidebar-drawer",
        ".toc-drawer",
        ".mobile-header",
        ".theme-toggle-container",
        ".related-pages",
        "button.copybtn",
        ".back-to-top",
    ]
    for selector in hidden:
        for element in page.locator(selector).all():
            assert not element.is_visible(), f"{selector} is printed"
    article = page.locator("article").bounding_box()
    assert article is not None and article["width"] > 0.85 * 1280
    url = page.evaluate(
        """() => getComputedStyle(
            document.querySelector('article a.reference.external'), '::after'
        ).content"""
    )
    assert "http" in url, "printed links show where they go"
    page.close()
