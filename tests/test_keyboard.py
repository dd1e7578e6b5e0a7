"""A reader with only a keyboard: every control is reachable and works, the
skip link comes first, and focus is always visible. Served under the strict
Content Security Policy, like every browser test."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import expect

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import Browser, Page

ESSAY = "essays/observability/distributed-tracing.html"

#: Wait until the focused element stops moving: furo scrolls smoothly and
#: slides the skip link in, so a rectangle read at once is one in flight. A
#: smooth scroll may start a frame or two after focus moves (later on a busy
#: machine), so the element and the page must hold still for five frames.
SETTLE = """async () => {
  let last = "";
  let still = 0;
  for (let frame = 0; frame < 240 && still < 5; frame++) {
    await new Promise((resolve) => requestAnimationFrame(resolve));
    const element = document.activeElement;
    const rect = element ? JSON.stringify(element.getBoundingClientRect()) : "";
    const now = rect + ":" + scrollX + "," + scrollY;
    still = now === last ? still + 1 : 0;
    last = now;
  }
}"""

#: Whether the focused element can be seen, and how its focus shows.
FOCUS_STATE = """() => {
  const element = document.activeElement;
  if (!element || element === document.body) return null;
  const rect = element.getBoundingClientRect();
  const style = getComputedStyle(element);
  const inView = rect.width > 0 && rect.height > 0 && rect.bottom > 0 &&
    rect.right > 0 && rect.top < innerHeight && rect.left < innerWidth;
  let shown = false;
  for (let node = element; node && node !== document.body; node = node.parentElement) {
    const s = getComputedStyle(node);
    if (s.visibility === "hidden" || s.display === "none") { shown = false; break; }
    shown = true;
  }
  const ring = (style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0)
    || style.boxShadow !== "none";
  return {
    label: element.tagName.toLowerCase() + " " +
      (element.getAttribute("href") || element.getAttribute("aria-label") ||
       element.className || element.textContent.trim().slice(0, 40)),
    visible: inView && shown && parseFloat(style.opacity) > 0,
    ring,
  };
}"""


@pytest.fixture(params=["desktop", "phone"])
def page(request: pytest.FixtureRequest, browser: Browser) -> Iterator[Page]:
    width, height = (1400, 900) if request.param == "desktop" else (390, 844)
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    yield page
    context.close()


def tab_stops(page: Page, limit: int = 400) -> list[dict[str, object]]:
    """Press Tab from the top until focus leaves the page; record each stop."""
    stops: list[dict[str, object]] = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        page.evaluate(SETTLE)
        state = page.evaluate(FOCUS_STATE)
        if state is None:
            break
        stops.append(state)
    return stops


def test_skip_link_comes_first_and_jumps_to_the_content(
    page: Page, base_url: str
) -> None:
    page.goto(base_url + ESSAY)
    page.keyboard.press("Tab")
    page.evaluate(SETTLE)
    skip = page.locator("a.skip-to-content")
    assert skip.evaluate("e => e === document.activeElement")
    assert skip.is_visible()
    page.keyboard.press("Enter")
    # The fragment navigation lands a moment after the key on a busy machine.
    expect(page).to_have_url(re.compile(r"#furo-main-content$"))
    page.keyboard.press("Tab")
    inside = page.evaluate(
        "() => document.activeElement.closest('#furo-main-content') !== null"
    )
    assert inside, "the next Tab after the skip link must land in the content"


def test_every_tab_stop_is_visible_with_a_focus_ring(page: Page, base_url: str) -> None:
    page.goto(base_url + ESSAY)
    stops = tab_stops(page)
    assert len(stops) > 30  # sidebar, essay links, terms, previews, footer
    hidden = [s["label"] for s in stops if not s["visible"]]
    ringless = [s["label"] for s in stops if not s["ring"]]
    assert hidden == [], "Tab reached something the reader cannot see"
    assert ringless == [], "focus is not visible on these"


def test_theme_switcher_works_from_the_keyboard(page: Page, base_url: str) -> None:
    page.goto(base_url + ESSAY)
    toggle = page.locator("button.theme-toggle:visible").first
    before = page.evaluate("() => document.body.dataset.theme")
    assert before == "auto"  # essays-theme.js ran, under the CSP
    for _ in range(60):
        page.keyboard.press("Tab")
        if toggle.evaluate("e => e === document.activeElement"):
            break
    else:
        pytest.fail("Tab never reached the theme switcher")
    page.keyboard.press("Enter")
    after = page.evaluate("() => document.body.dataset.theme")
    assert after != before
    assert page.evaluate("() => localStorage.getItem('theme')") == after
    page.reload()
    assert page.evaluate("() => document.body.dataset.theme") == after


def test_drawers_open_and_close_from_the_keyboard_on_a_phone(
    browser: Browser, base_url: str
) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto(base_url + ESSAY)
    for drawer, button_class in (
        ("essays-site-navigation", "nav-overlay-icon"),
        ("essays-page-contents", "toc-header-icon"),
    ):
        button = page.locator(f"button.{button_class}")
        aside = page.locator(f"#{drawer}")
        assert not aside.is_visible(), "a closed drawer must be hidden"
        for _ in range(20):
            page.keyboard.press("Tab")
            if button.evaluate("e => e === document.activeElement"):
                break
        else:
            pytest.fail(f"Tab never reached the {button_class} button")
        assert button.get_attribute("aria-expanded") == "false"
        page.keyboard.press("Enter")
        assert button.get_attribute("aria-expanded") == "true"
        aside.wait_for(state="visible")
        inside = f"document.getElementById('{drawer}').contains(document.activeElement)"
        page.wait_for_function(f"() => {inside}")
        page.keyboard.press("Escape")
        assert button.get_attribute("aria-expanded") == "false"
        assert button.evaluate("e => e === document.activeElement")
        aside.wait_for(state="hidden")
    context.close()
