"""Search: relevance on real reader queries, the as-you-type box, the search
page, what a query downloads, and what is (not) indexed."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest
from test_every_page import AXE, AXE_OPTIONS, READERS

from conftest import DOCS, ESSAYS
from sphinx_essays.search import INDEX_DIR, shard_of, words

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

    from conftest import Site

TRACING = "essays/observability/distributed-tracing.html"
SIGNALS = "essays/observability/metrics-logs-traces-and-events.html"
PROMETHEUS = "essays/observability/prometheus-and-opentelemetry.html"
SECURITY = "essays/security/security-is-infrastructure.html"
WEB3 = "essays/infrastructure/web3-is-just-infrastructure-with-a-hoodie.html"
DATABASE = "essays/infrastructure/design-me-a-highly-resilient-database.html"
PUPPETS = "essays/infrastructure/puppets-and-octopi.html"
TEAMS = "essays/teams/the-best-dog-trainer-in-the-world.html"

#: What a reader types, and the essay that is about it. Written from what a
#: reader looking for each subject would type, not from the ranking.
QUERIES = {
    "traceparent header": TRACING,
    "tail sampling": TRACING,
    "head-based sampling": TRACING,
    "context propagation": TRACING,
    "span links kafka": TRACING,
    "orphaned spans": TRACING,
    "baggage": TRACING,
    "clock skew": TRACING,
    "difference between logs metrics and traces": SIGNALS,
    "cardinality explosion": SIGNALS,
    "canonical log line": SIGNALS,
    "wide events": SIGNALS,
    "exemplars": SIGNALS,
    "kubernetes events": SIGNALS,
    "target_info": PROMETHEUS,
    "delta temporality": PROMETHEUS,
    "staleness": PROMETHEUS,
    "pushgateway": PROMETHEUS,
    "prometheus otlp receiver": PROMETHEUS,
    "scrape versus push": PROMETHEUS,
    "IMDSv2": SECURITY,
    "github actions oidc trust policy": SECURITY,
    "SLSA provenance": SECURITY,
    "Equifax breach": SECURITY,
    "break-glass access": SECURITY,
    "phishing-resistant MFA": SECURITY,
    "wallet signature": WEB3,
    "EIP-712 typed data": WEB3,
    "nonce replacement transaction": WEB3,
    "chain reorg": WEB3,
    "MEV": WEB3,
    "light client": WEB3,
    "Bybit": WEB3,
    "synchronous replication": DATABASE,
    "Patroni failover": DATABASE,
    "restore drill pgbackrest": DATABASE,
    "RPO RTO": DATABASE,
    "PACELC": DATABASE,
    "pg_rewind": DATABASE,
    "push versus pull configuration management": PUPPETS,
    "reconciliation loop": PUPPETS,
    "ansible serial": PUPPETS,
    "server-side apply": PUPPETS,
    "argo cd self heal": PUPPETS,
    "CFEngine": PUPPETS,
    "Deming": TEAMS,
    "control chart": TEAMS,
    "blameless postmortem": TEAMS,
    "Cynefin": TEAMS,
    "MTTR": TEAMS,
    "substitution test": TEAMS,
    "red bead experiment": TEAMS,
}


def results_page(page: Page, base_url: str, query: str) -> list[str]:
    """The essays the search page lists for *query*, in order."""
    page.goto(f"{base_url}search.html?q={quote(query)}")
    page.locator(".essays-search-page-status").filter(has_text="match").wait_for()
    links = page.locator(".essays-search-page-results .essays-search-title")
    return [
        (link.get_attribute("href") or "").split("#")[0].replace(base_url, "")
        for link in links.all()
    ]


def test_the_right_essay_comes_first_for_what_readers_type(
    browser: Browser, base_url: str
) -> None:
    page = browser.new_page()
    ranks = {}
    for query, essay in QUERIES.items():
        found = results_page(page, base_url, query)
        ranks[query] = found.index(essay) + 1 if essay in found else None
    page.close()
    top1 = [q for q, r in ranks.items() if r == 1]
    top3 = [q for q, r in ranks.items() if r is not None and r <= 3]
    report = f"top-1 {len(top1)}/{len(QUERIES)}, top-3 {len(top3)}/{len(QUERIES)}"
    print(report)
    missed = {q: r for q, r in ranks.items() if r is None or r > 3}
    assert len(top3) >= 0.9 * len(QUERIES), (report, missed)
    assert len(top1) >= 0.8 * len(QUERIES), (
        report,
        {q: r for q, r in ranks.items() if r != 1},
    )


def sidebar(page: Page) -> tuple[object, object]:
    box = page.locator("form.essays-search-form input[name=q]")
    listbox = page.locator("#essays-search-results")
    return box, listbox


def test_as_you_type_with_the_keyboard_lands_on_the_section(
    browser: Browser, base_url: str
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(base_url + "index.html")
    box, listbox = sidebar(page)
    # "/" focuses the box from anywhere on the page.
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.name") == "q"
    box.type("head-based samp", delay=30)  # partial last word, as while typing
    options = listbox.locator("[role=option]")
    options.first.wait_for(state="visible")
    assert box.get_attribute("aria-expanded") == "true"
    first = options.first
    assert "Distributed Tracing" in first.inner_text()
    assert first.locator("mark").count() >= 1, "the matching words are marked"
    status = page.locator(".essays-search-status")
    assert re.search(r"\d+ essays? for head-based samp", status.inner_text())
    # ArrowDown makes the first option active; Enter opens its section.
    page.keyboard.press("ArrowDown")
    assert box.get_attribute("aria-activedescendant") == first.get_attribute("id")
    assert first.get_attribute("aria-selected") == "true"
    href = first.get_attribute("data-href") or ""
    assert "#" in href, "a hit names the section it matched"
    page.keyboard.press("Enter")
    page.wait_for_url("**/" + TRACING + "#*")
    page.wait_for_load_state("load")
    anchor = page.url.split("#")[1]
    heading = page.locator(f"[id='{anchor}'] > h2, [id='{anchor}'] > h1").first
    page.wait_for_function(
        "(e) => Math.abs(e.getBoundingClientRect().top) < 200",
        arg=heading.element_handle(),
        timeout=5_000,
    )
    # Escape closes the list and leaves the focus in the box.
    box, listbox = sidebar(page)
    box.click()
    box.type("Deming", delay=30)
    listbox.locator("[role=option]").first.wait_for(state="visible")
    page.keyboard.press("Escape")
    assert listbox.is_hidden()
    assert box.get_attribute("aria-expanded") == "false"
    assert page.evaluate("document.activeElement.name") == "q"
    assert errors == []
    page.close()


def test_a_query_that_names_a_term_shows_its_definition_first(
    browser: Browser, base_url: str
) -> None:
    page = browser.new_page()
    page.goto(base_url + TEAMS)
    box, listbox = sidebar(page)
    box.click()
    box.type("Cynefin", delay=30)
    answer = listbox.locator("[role=option]").first
    answer.wait_for(state="visible")
    assert answer.get_attribute("id") == "essays-search-answer"
    assert "Glossary" in answer.inner_text()
    assert "sense-making" in answer.inner_text()
    assert (answer.get_attribute("data-href") or "").endswith(
        "glossary.html#term-Cynefin"
    )
    # The search page shows it too, above the essays.
    page.goto(base_url + "search.html?q=Cynefin")
    box_answer = page.locator(".essays-search-page-answer")
    box_answer.wait_for(state="visible")
    assert "Glossary: Cynefin" in box_answer.inner_text()
    page.close()


def test_the_search_page_filters_by_topic_and_tag(
    browser: Browser, base_url: str
) -> None:
    page = browser.new_page()
    unfiltered = results_page(page, base_url, "sampling")
    assert TRACING in unfiltered and SIGNALS in unfiltered
    page.goto(base_url + "search.html?q=postmortem&topic=teams")
    page.locator(".essays-search-page-status").filter(has_text="match").wait_for()
    found = [
        link.get_attribute("href") or ""
        for link in page.locator(
            ".essays-search-page-results .essays-search-title"
        ).all()
    ]
    assert found and all("/teams/" in href for href in found), found
    assert page.locator("select[name=topic]").input_value() == "teams"
    page.goto(base_url + "search.html?q=replication&tag=postgresql")
    page.locator(".essays-search-page-status").filter(has_text="match").wait_for()
    hrefs = [
        link.get_attribute("href") or ""
        for link in page.locator(
            ".essays-search-page-results .essays-search-title"
        ).all()
    ]
    assert hrefs and all(DATABASE in href for href in hrefs)
    page.close()


def test_a_filter_without_a_query_lists_its_essays_newest_first(
    browser: Browser, base_url: str
) -> None:
    """Where a long list on another page links its rest (overflow.py)."""
    dated = []
    for path in sorted((DOCS / "essays" / "observability").glob("*.md")):
        found = re.search(r"^date: (\S+)$", path.read_text(), re.MULTILINE)
        if found:
            dated.append((found[1], f"essays/observability/{path.stem}.html"))
    newest = [href for _, href in sorted(dated, key=lambda d: d[0], reverse=True)]
    page = browser.new_page()
    page.goto(base_url + "search.html?topic=observability")
    status = page.locator(".essays-search-page-status")
    status.filter(has_text="newest first").wait_for()
    assert status.inner_text() == "3 essays in Observability, newest first."
    links = page.locator(".essays-search-page-results .essays-search-title")
    hrefs = [(a.get_attribute("href") or "").replace(base_url, "") for a in links.all()]
    assert hrefs == newest
    # A month comes only from the address; a chosen tag keeps it.
    month = dated[0][0][:7]
    page.goto(base_url + f"search.html?month={month}")
    status.filter(has_text="newest first").wait_for()
    assert f"from {month}" in status.inner_text()
    page.locator("select[name=tag]").select_option("tracing")
    page.wait_for_url(lambda url: "tag=tracing" in url)
    assert f"month={month}" in page.url
    page.close()


def test_without_javascript_the_form_opens_the_search_page(
    browser: Browser, base_url: str
) -> None:
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(base_url + TRACING)
    page.locator("form.essays-search-form input[name=q]").fill("baggage")
    page.locator("form.essays-search-form button[type=submit]").click()
    page.wait_for_url("**/search.html?q=baggage")
    assert "needs JavaScript" in page.locator("noscript").first.inner_text() or (
        "needs JavaScript" in page.content()
    )
    context.close()


def test_a_first_query_downloads_little_and_moves_nothing(
    browser: Browser, base_url: str
) -> None:
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(base_url + TRACING)
    page.wait_for_load_state("networkidle")
    page.evaluate(
        """() => {
          window.shifts = 0;
          new PerformanceObserver((list) => {
            for (const e of list.getEntries()) {
              if (!e.hadRecentInput) window.shifts += e.value;
            }
          }).observe({ type: "layout-shift", buffered: true });
        }"""
    )
    sizes: list[int] = []
    page.on("requestfinished", lambda r: sizes.append(r.sizes()["responseBodySize"]))
    page.locator('[data-drawer="__navigation"]').click()
    box = page.locator("form.essays-search-form input[name=q]")
    box.type("sampling", delay=30)
    page.locator("#essays-search-results [role=option]").first.wait_for(state="visible")
    page.wait_for_load_state("networkidle")
    assert sum(sizes) < 150_000, sizes
    assert len(sizes) <= 20, sizes
    assert page.evaluate("window.shifts") < 0.1
    page.close()


@pytest.mark.parametrize("reader", list(READERS))
def test_open_results_have_no_axe_violation_and_are_announced(
    browser: Browser, base_url: str, reader: str
) -> None:
    """The open list and the search page, for each of the four readers: no
    axe violation, and the live status line says what was found."""
    settings: dict[str, Any] = READERS[reader]
    width, height = settings["viewport"]
    phone = settings.get("phone", False)
    context = browser.new_context(
        color_scheme=settings["color_scheme"],
        viewport={"width": width, "height": height},
        is_mobile=phone,
        has_touch=phone,
    )
    page = context.new_page()
    page.goto(base_url + TRACING)
    page.wait_for_load_state("networkidle")
    if phone:
        page.locator('[data-drawer="__navigation"]').click()
    box, listbox = sidebar(page)
    box.click()
    box.type("sampling", delay=30)
    listbox.locator("[role=option]").first.wait_for(state="visible")
    page.keyboard.press("ArrowDown")
    status = page.locator(".essays-search-status")
    assert status.get_attribute("aria-live") == "polite"
    assert re.fullmatch(
        r"(a glossary definition and )?\d+ essays? for sampling", status.inner_text()
    ), status.inner_text()
    found = AXE.run(page, options=AXE_OPTIONS).response["violations"]
    assert [v["id"] for v in found] == [], found
    page.goto(base_url + "search.html?q=sampling")
    page_status = page.locator(".essays-search-page-status")
    page_status.filter(has_text="match").wait_for()
    assert page_status.get_attribute("role") == "status"
    found = AXE.run(page, options=AXE_OPTIONS).response["violations"]
    assert [v["id"] for v in found] == [], found
    context.close()


# -- What the index holds --------------------------------------------------------


def index_file(site: Site, name: str) -> object:
    return json.loads((site.html / INDEX_DIR / name).read_text())


def postings_of(site: Site, word: str) -> list[int]:
    (stem,) = words(word)
    shard = index_file(site, f"p/{shard_of(stem)}.json")
    assert isinstance(shard, dict)
    flat: list[int] = shard.get(stem, [])
    return flat


def items(site: Site) -> list[list[object]]:
    meta = index_file(site, "index.json")
    assert isinstance(meta, dict)
    found: list[list[object]] = []
    for block in range(0, meta["items"], meta["block"]):
        chunk = index_file(site, f"i/{block // meta['block']}.json")
        assert isinstance(chunk, list)
        found.extend(chunk)
    return found


def test_only_what_an_essay_says_is_indexed(site: Site) -> None:
    everything = items(site)
    titles = [item[1] for item in everything if item[0] == "essay"]
    assert sorted(titles) == sorted(essay.title for essay in ESSAYS)
    assert not {"Glossary", "Browse", "Bibliography", "Index"} & set(titles)
    texts = [
        (site.html / INDEX_DIR / f"t/{i}/{n}.json").read_text()
        for i, item in enumerate(everything)
        if item[0] == "essay"
        for n in range(len(item[5]))  # type: ignore[arg-type]
    ]
    # Every essay page shows these generated blocks; no indexed text has them.
    for generated in (
        "Cite this essay",
        "Referenced by",
        "Related essays",
        "checked on 2026",
        "min read",
    ):
        assert not any(generated in text for text in texts), generated
    # Nor the definitions its term previews copy from the glossary.
    definitions = [
        json.loads((site.html / INDEX_DIR / f"t/{i}/0.json").read_text())[:80]
        for i, item in enumerate(everything)
        if item[0] == "term"
    ]
    assert not any(d in text for d in definitions if len(d) == 80 for text in texts)


def test_every_glossary_term_is_an_item_with_its_definition(site: Site) -> None:
    terms = [item for item in items(site) if item[0] == "term"]
    assert len(terms) > 100
    names = {item[1] for item in terms}
    assert {"Span", "Cynefin", "PACELC", "traceparent"} <= names


@pytest.mark.parametrize(
    ("word", "expected"),
    [("Sampling", "sampl"), ("the", None), ("x", None), ("42", None), ("1024", "1024")],
)
def test_words_are_stemmed_and_filtered_as_the_browser_does(
    word: str, expected: str | None
) -> None:
    assert words(word) == ([expected] if expected else [])
