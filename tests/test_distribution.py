"""How readers get the essays: Read the Docs, the EPUB, search engines and
social previews, a 404 page, copy buttons, the PDF link, honest dates and a
print stylesheet. Each is checked in the real output, parsed."""

from __future__ import annotations

import re
import subprocess
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml
from bs4 import BeautifulSoup

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
        assert meta["twitter:card"] == "summary"


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


def test_navigation_links_the_pdf(site: Site) -> None:
    pdf = f"{BASE.replace('/en/latest/', '/_/downloads/en/latest/')}pdf/"
    for path in ("index.html", "essays/teams/the-best-dog-trainer-in-the-world.html"):
        links = soup(site.html / path).select(".sidebar-drawer a.essays-pdf")
        assert [str(a["href"]) for a in links] == [pdf]
        assert links[0].get_text() == "Download PDF"


def git_date(path: Path) -> str | None:
    """The committer date of *path*'s last commit, or None in a shallow clone."""
    shallow = subprocess.run(
        ["git", "rev-parse", "--is-shallow-repository"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if shallow == "true":
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
