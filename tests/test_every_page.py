"""Every page of the built site, as four readers see it: light and dark colour
schemes, at a desktop and a phone width, in Chromium under the site's strict
Content Security Policy (conftest.CSP).

One tour per reader loads each page once and records what axe-core finds
(WCAG 2.0/2.1 A and AA plus best practices), what HTML_CodeSniffer finds
(WCAG 2 AA errors; its rules differ from axe's), every request the page makes
and every console message; the tests below then judge the records. The Nu Html
Checker reads every page's markup as served.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from axe_playwright_python.sync_playwright import Axe

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

    from conftest import Site

#: The axe-core rule tags we hold every page to.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]

READERS = {
    "light-desktop": {"color_scheme": "light", "viewport": (1280, 900)},
    "dark-desktop": {"color_scheme": "dark", "viewport": (1280, 900)},
    "light-phone": {"color_scheme": "light", "viewport": (390, 844), "phone": True},
    "dark-phone": {"color_scheme": "dark", "viewport": (390, 844), "phone": True},
}


@dataclass
class Tour:
    """What one reader met on each page (keyed by path)."""

    pages: list[str]
    rules: int = 0
    violations: dict[str, list[str]] = field(default_factory=dict)
    codesniffer: dict[str, list[str]] = field(default_factory=dict)
    small_targets: dict[str, list[str]] = field(default_factory=dict)
    requests: dict[str, list[str]] = field(default_factory=dict)
    console: dict[str, list[str]] = field(default_factory=dict)


def pages_of(site: Site) -> list[str]:
    return sorted(
        p.relative_to(site.html).as_posix() for p in site.html.rglob("*.html")
    )


#: The page checkers package.json lists (`nox -s tests` runs `npm ci`).
NODE_MODULES = Path(__file__).resolve().parent.parent / "node_modules"
HTMLCS = NODE_MODULES / "html_codesniffer" / "build" / "HTMLCS.js"
VNU = NODE_MODULES / "vnu-jar" / "build" / "dist" / "vnu.jar"
VNU_COMMAND = ("java", "-jar")
VNU_OPTIONS = ("--errors-only", "--format", "json", "--skip-non-html")
#: HTML_CodeSniffer's errors (type 1) under WCAG 2 AA, as "code: message".
HTMLCS_RUN = """() => new Promise((resolve) => HTMLCS.process("WCAG2AA", document, () =>
  resolve(HTMLCS.getMessages().filter((m) => m.type === 1).map((m) =>
    `${m.code}: ${m.msg} ${(m.element.outerHTML || "").slice(0, 100)}`))))"""

#: Visible "On this page" links under 24 px tall (WCAG 2.2, 2.5.8).
SMALL_TARGETS = """() => Array.from(document.querySelectorAll(".toc-tree a.reference"))
  .filter((a) => a.offsetParent !== null && a.getBoundingClientRect().height < 24)
  .map((a) => a.textContent.trim())"""


def page_checker(path: Path) -> Path:
    assert path.exists(), f"{path} is missing: run `npm ci` (nox -s tests does)"
    return path


AXE = Axe()
AXE_OPTIONS = {
    "runOnly": {"type": "tag", "values": AXE_TAGS},
    "resultTypes": ["violations"],
}


def visit(page: Page, base_url: str, path: str, tour: Tour) -> None:
    """Load *path*, run axe on it and note its requests and console errors."""
    requests: list[str] = []
    console: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on(
        "console",
        lambda m: (
            console.append(f"{m.type}: {m.text}")
            if m.type in ("error", "warning")
            else None
        ),
    )
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    page.goto(base_url + path)
    page.wait_for_load_state("networkidle")
    results = AXE.run(page, options=AXE_OPTIONS).response
    tour.violations[path] = [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
        for v in results["violations"]
    ]
    rules = page.evaluate(f"axe.getRules({AXE_TAGS!r}).length")
    tour.rules = max(tour.rules, rules)
    # Evaluated through the DevTools protocol, as axe is, so the page's strict
    # CSP does not refuse the checker.
    tour.small_targets[path] = page.evaluate(SMALL_TARGETS)
    page.evaluate(page_checker(HTMLCS).read_text(encoding="utf-8"))
    tour.codesniffer[path] = page.evaluate(HTMLCS_RUN)
    tour.requests[path] = requests
    tour.console[path] = console
    page.close()


@pytest.fixture(scope="module", params=list(READERS), ids=list(READERS))
def tour(
    request: pytest.FixtureRequest, browser: Browser, site: Site, base_url: str
) -> Tour:
    reader: dict[str, Any] = READERS[request.param]
    width, height = reader["viewport"]
    context = browser.new_context(
        color_scheme=reader["color_scheme"],
        viewport={"width": width, "height": height},
        is_mobile=reader.get("phone", False),
        has_touch=reader.get("phone", False),
    )
    tour = Tour(pages=pages_of(site))
    for path in tour.pages:
        visit(context.new_page(), base_url, path, tour)
    context.close()
    return tour


def test_the_tour_covers_every_kind_of_page(tour: Tour) -> None:
    assert len(tour.pages) >= 20
    for kind in ("index.html", "glossary.html", "genindex.html", "search.html"):
        assert kind in tour.pages
    assert sum(p.startswith("essays/") for p in tour.pages) >= 12  # 8 + 4 topics
    assert tour.rules > 80, "axe ran far fewer rules than WCAG A/AA has"


def test_axe_finds_no_violation(tour: Tour) -> None:
    found = {path: v for path, v in tour.violations.items() if v}
    assert found == {}


def test_html_codesniffer_finds_no_error(tour: Tour) -> None:
    assert len(tour.codesniffer) == len(tour.pages)
    found = {path: errors for path, errors in tour.codesniffer.items() if errors}
    assert found == {}


def test_contents_links_are_targets_of_24_px(tour: Tour) -> None:
    assert {path: links for path, links in tour.small_targets.items() if links} == {}


def test_the_nu_html_checker_finds_no_error(site: Site) -> None:
    """Every page, as the build wrote it."""
    done = subprocess.run(
        [*VNU_COMMAND, str(page_checker(VNU)), *VNU_OPTIONS, str(site.html)],
        capture_output=True,
        text=True,
        check=False,
    )
    messages = json.loads(done.stderr)["messages"]
    errors = [
        f"{Path(m['url']).relative_to(site.html.resolve())}:{m.get('lastLine')}: "
        + m["message"]
        for m in messages
    ]
    assert errors == []
    assert done.returncode == 0


def test_no_request_leaves_the_site(tour: Tour, base_url: str) -> None:
    """Fonts, scripts, styles and images are all local: no third party
    learns who reads what."""
    elsewhere = {
        path: [url for url in urls if not url.startswith((base_url, "data:"))]
        for path, urls in tour.requests.items()
    }
    assert {path: urls for path, urls in elsewhere.items() if urls} == {}
    assert all(urls for urls in tour.requests.values()), "no request was seen"


def test_no_csp_violation_or_console_error(tour: Tour) -> None:
    """Chromium reports each refused script, style or load as a console error."""
    assert {path: lines for path, lines in tour.console.items() if lines} == {}
