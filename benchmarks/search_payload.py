"""What a reader's browser downloads to search a built site.

    python benchmarks/search_payload.py path/to/html [more/html ...]

For each site it serves the HTML locally and, in headless Chromium at a phone
width (390 x 844), measures two things a Lighthouse run would:

* **first query**: open an essay page, type a query (``sampling`` unless
  told) in the sidebar box (or, on a site with Sphinx's own search, submit
  it) and count the bytes and requests until the network is quiet, three
  seconds at most;
* **search page**: load ``search.html?q=sampling`` and count the bytes,
  requests and the cumulative layout shift until results are shown.

``benchmarks/run.py`` calls :func:`measure` on each corpus it builds; run
this file by hand to compare two builds (say, before and after a change).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

QUERY = "sampling"
PHONE = {"width": 390, "height": 844}
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

#: Sums layout shifts not caused by input, as Lighthouse's CLS does.
OBSERVE_SHIFTS = """() => {
  window.essaysShifts = 0;
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if (!e.hadRecentInput) window.essaysShifts += e.value;
    }
  }).observe({ type: "layout-shift", buffered: true });
}"""


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    handler = functools.partial(Quiet, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def an_essay(html: Path) -> str:
    pages = sorted(html.glob("essays/*/*.html"))
    essays = [p for p in pages if p.name != "index.html"]
    return essays[len(essays) // 2].relative_to(html).as_posix()


def body_size(request: Any) -> int:
    """The bytes of a finished request's response body."""
    return int(request.sizes()["responseBodySize"])


def recorder(sizes: list[int]) -> Any:
    """A ``requestfinished`` handler that adds each body's size to *sizes*.

    A request that finishes as its page closes is past the measured window,
    and its size can no longer be asked for: it is left out. (At 10,000
    essays, such a request once ended the benchmark after an hour.)"""
    from playwright.sync_api import Error

    def record(request: Any) -> None:
        with contextlib.suppress(Error):
            sizes.append(body_size(request))

    return record


def _settle(page: Any) -> None:
    with contextlib.suppress(Exception):
        page.wait_for_load_state("networkidle", timeout=3_000)


def measure(html: Path, query: str = QUERY) -> dict[str, Any]:
    """Bytes, requests and layout shift of a first query on the site at *html*."""
    from playwright.sync_api import sync_playwright

    with serve(html) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)

        # Each measurement starts with an empty cache, as a new reader does.
        def fresh() -> Any:
            return browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)

        # The first query, from the sidebar box of an essay page.
        page = fresh().new_page()
        page.goto(base + an_essay(html))
        page.wait_for_load_state("networkidle")
        sizes: list[int] = []
        record = recorder(sizes)
        page.on("requestfinished", record)
        # Open the sidebar: our header's button, or stock furo's label.
        page.locator(
            '[data-drawer="__navigation"], label.nav-overlay-icon[for="__navigation"]'
        ).first.click()
        box = page.locator("input[name=q]").first
        box.type(query, delay=30)
        if page.locator("#essays-search-results").count():
            with contextlib.suppress(Exception):
                page.locator("#essays-search-results [role=option]").first.wait_for(
                    state="visible", timeout=3_000
                )
        else:
            box.press("Enter")  # Sphinx's own search has no as-you-type list
            page.wait_for_url("**/search.html*")
        _settle(page)
        page.remove_listener("requestfinished", record)
        first = {"kb": sum(sizes) / 1024, "requests": len(sizes)}
        page.close()

        # The search page, loaded cold with the query in its address.
        page = fresh().new_page()
        page.add_init_script(f"({OBSERVE_SHIFTS})()")
        sizes = []
        page.on("requestfinished", recorder(sizes))
        page.goto(f"{base}search.html?q={query}")
        _settle(page)
        results = page.evaluate(
            "document.querySelectorAll('.essays-search-page-results li,"
            " #search-results li').length"
        )
        search_page = {
            "kb": sum(sizes) / 1024,
            "requests": len(sizes),
            "cls": round(page.evaluate("window.essaysShifts"), 3),
            "results": results,
        }
        browser.close()
    return {"first_query": first, "search_page": search_page}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("html", type=Path, nargs="+")
    parser.add_argument("--query", default=QUERY)
    args = parser.parse_args()
    for html in args.html:
        print(json.dumps({"site": str(html), **measure(html, args.query)}), flush=True)


if __name__ == "__main__":
    main()
