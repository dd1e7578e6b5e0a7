"""A real reader: Debian's Chromium, driven by Playwright, against the built site.

The site is served with its strict Content Security Policy (conftest.CSP), so
search, previews and the sidebar are proved to work under it."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from playwright.sync_api import Browser, expect

if TYPE_CHECKING:
    from conftest import Site


def test_search_finds_the_tracing_essay(browser: Browser, base_url: str) -> None:
    page = browser.new_page()
    errors: list[str] = []
    page.on(
        "console",
        lambda m: (
            errors.append(f"{m.text} at {m.location.get('url')}")
            if m.type == "error"
            else None
        ),
    )
    page.on("pageerror", lambda e: errors.append(str(e)))

    page.goto(base_url + "index.html")
    box = page.locator("input.sidebar-search")
    box.fill("traceparent")
    box.press("Enter")
    page.wait_for_url("**/search.html?q=traceparent*")
    results = page.locator(".essays-search-page-results .essays-search-title")
    results.first.wait_for(timeout=15_000)
    hrefs = [results.nth(i).get_attribute("href") or "" for i in range(results.count())]
    assert any("essays/observability/distributed-tracing.html" in h for h in hrefs), (
        hrefs
    )
    assert errors == []
    page.close()


def test_term_and_essay_previews_on_hover_and_focus(
    browser: Browser, base_url: str
) -> None:
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(base_url + "essays/observability/distributed-tracing.html")
    tooltip = page.locator("#kb-tooltip")

    term = page.locator("article span.kb-ref a[href*='glossary.html#term-Span']").first
    preview_id = term.get_attribute("aria-describedby")
    assert preview_id and preview_id.startswith("kb-preview-")
    definition = page.locator(f"#{preview_id}").text_content() or ""
    assert "One timed operation" in definition

    term.hover()
    tooltip.wait_for(state="visible")
    assert "One timed operation" in tooltip.inner_text()
    page.mouse.move(2, 2)
    tooltip.wait_for(state="hidden")

    term.focus()
    tooltip.wait_for(state="visible")
    assert "One timed operation" in tooltip.inner_text()
    page.keyboard.press("Escape")
    tooltip.wait_for(state="hidden")

    essay = page.locator(
        "article span.kb-ref a[href*='metrics-logs-traces-and-events.html']"
    ).first
    essay.focus()
    tooltip.wait_for(state="visible")
    assert "Metrics, Logs, Traces, and Events" in tooltip.inner_text()
    assert errors == []
    page.close()


def test_a_term_defined_on_the_page_is_previewed_from_its_definition(
    browser: Browser, base_url: str, site: Site
) -> None:
    """The glossary's "See also" links show the definition already on the
    page, not a copy of it, which the page no longer carries."""
    html = (site.html / "glossary.html").read_text()
    assert 'class="kb-ref kb-ref-here"' in html
    assert 'id="term-Span-definition"' in html
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    page.goto(base_url + "glossary.html")
    copies = page.locator(".kb-preview .kb-preview-title").all_inner_texts()
    terms = page.locator("dl.glossary > dt").all_inner_texts()
    assert not {t.strip("¶ \n") for t in terms} & {c.strip() for c in copies}
    link = page.locator("dd span.kb-ref-here a[href='#term-Span']").first
    assert link.get_attribute("aria-describedby") == "term-Span-definition"
    link.hover()
    tooltip = page.locator("#kb-tooltip")
    tooltip.wait_for(state="visible")
    text = tooltip.inner_text()
    assert text.startswith("Span")
    assert "One timed operation" in text
    assert "Used in" not in text
    page.close()


def test_links_inside_a_preview_work(browser: Browser, base_url: str) -> None:
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    page.goto(base_url + "essays/observability/distributed-tracing.html")
    term = page.locator("article span.kb-ref a[href*='term-Sampling']").first
    term.hover()
    inner = page.locator("#kb-tooltip a").first
    inner.wait_for(state="visible")
    target = inner.get_attribute("href") or ""
    inner.click()
    expect(page).to_have_url(re.compile(re.escape(target.replace("../../", "")) + "$"))
    page.close()


def test_sidebar_is_plain_links_reachable_by_keyboard(
    browser: Browser, base_url: str
) -> None:
    """The sidebar has no expand toggles (furo#940): every entry is a link,
    the current topic is expanded, and Tab reaches each link in order."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(base_url + "essays/observability/distributed-tracing.html")
    nav = page.locator(".sidebar-drawer nav.essays-nav")
    assert nav.locator("input, label, button").count() == 0
    links = nav.locator("a")
    hrefs = [links.nth(i).get_attribute("href") for i in range(links.count())]
    assert "metrics-logs-traces-and-events.html" in hrefs  # the topic is open
    assert not any("security-is-infrastructure" in (h or "") for h in hrefs)
    current = nav.locator("li.current-page > a")
    assert current.get_attribute("href") == "#" or "distributed-tracing" in (
        current.get_attribute("href") or ""
    )

    reached: list[str] = []
    page.locator("body").focus()
    for _ in range(60):
        page.keyboard.press("Tab")
        inside = page.evaluate(
            "() => document.activeElement.closest('nav.essays-nav') !== null"
        )
        if inside:
            reached.append(
                page.evaluate("() => document.activeElement.getAttribute('href')")
            )
        elif reached:
            break
    assert reached == hrefs
    page.close()
