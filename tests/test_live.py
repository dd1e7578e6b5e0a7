"""Live preview: the warm sphinx-autobuild serves the site and rebuilds on save."""

from __future__ import annotations

import http.client
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Error as PlaywrightError

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

    from conftest import Site


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode("utf-8"))


def wait_for(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():  # type: ignore[operator]
                return True
        except (OSError, http.client.HTTPException):
            # Not up yet, or the page was read while Sphinx rewrote it.
            pass
        time.sleep(0.2)
    return False


@pytest.fixture(params=[()], ids=["plain"])
def live_site(request, rootdir: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    source = tmp_path / "src"
    shutil.copytree(rootdir / "test-essays-valid", source)
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).parent.parent / "tools" / "warm_autobuild.py"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "-b",
            "html",
            *request.param,
            str(source),
            str(tmp_path / "out"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield source, f"http://127.0.0.1:{port}/"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_saving_an_essay_rebuilds_the_served_page(live_site) -> None:  # type: ignore[no-untyped-def]
    source, url = live_site
    page = url + "essays/observability/sample-essay.html"
    assert wait_for(lambda: "A Sample Essay" in fetch(page), timeout=60)
    assert "websocket-reload" in fetch(page), "the page has no live-reload script"

    essay = source / "essays/observability/sample-essay.md"
    essay.write_text(
        essay.read_text().replace("makes a claim", "makes a fresh claim"),
        encoding="utf-8",
    )
    assert wait_for(lambda: "makes a fresh claim" in fetch(page), timeout=30)

    # A second edit proves the warm process builds more than once.
    essay.write_text(
        essay.read_text().replace("makes a fresh claim", "makes a third claim"),
        encoding="utf-8",
    )
    assert wait_for(lambda: "makes a third claim" in fetch(page), timeout=30)


def test_ten_saves_in_two_seconds_end_with_a_fresh_builds_page(
    live_site,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    """A burst of saves (an editor's autosave, a formatter) may land while a
    rebuild runs; the last rebuild must still show the final text, exactly as a
    fresh build writes it."""
    source, url = live_site
    name = "essays/observability/sample-essay"
    page = url + name + ".html"
    assert wait_for(lambda: "A Sample Essay" in fetch(page), timeout=60)
    essay = source / f"{name}.md"
    text = essay.read_text()
    for save in range(1, 11):
        essay.write_text(text.replace("makes a claim", f"makes claim {save}"))
        time.sleep(0.2)
    assert wait_for(lambda: "makes claim 10" in fetch(page), timeout=60)
    served = tmp_path / "out" / f"{name}.html"
    settled = wait_for(lambda: time.time() - served.stat().st_mtime > 3, timeout=60)
    assert settled, "the preview kept rebuilding"

    fresh = fresh_build(source, tmp_path / "fresh")
    assert served.read_bytes() == (fresh / f"{name}.html").read_bytes()


def fresh_build(source: Path, copy: Path) -> Path:
    """Build a copy of *source* afresh, with ``sphinx-build``; return its HTML."""
    shutil.copytree(source, copy)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-q",
            "-b",
            "html",
            str(copy),
            str(copy / "out"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return copy / "out"


def open_settled(browser: Browser, url: str) -> Page:
    """A new page at *url*, loaded once the preview has stopped reloading: the
    live-reload script reloads open pages after each rebuild, which aborts a
    navigation that is under way."""
    page = browser.new_page()
    for attempt in range(5):
        try:
            page.goto(url)
            page.wait_for_load_state("networkidle")
            break
        except PlaywrightError:
            if attempt == 4:
                raise
            time.sleep(1)
    time.sleep(1)
    page.wait_for_load_state("networkidle")
    return page


#: What `nox -s live` adds to the build: drafts, and problems in the browser.
AS_NOX_LIVE = ("-D", "essays_drafts=1", "-D", "essays_live=1")


@pytest.mark.parametrize("live_site", [AS_NOX_LIVE], ids=["nox-live"], indirect=True)
def test_a_broken_save_shows_its_problem_over_the_last_good_page(
    live_site,  # type: ignore[no-untyped-def]
    browser: Browser,
    tmp_path: Path,
) -> None:
    source, url = live_site
    name = "essays/observability/sample-essay"
    page_url = url + name + ".html"
    assert wait_for(lambda: "A Sample Essay" in fetch(page_url), timeout=60)
    page = open_settled(browser, page_url)
    assert page.locator(".essays-live-problems").count() == 0
    page.close()

    essay = source / f"{name}.md"
    good = essay.read_text()
    essay.write_text(good.replace("topic: observability", "topic: nowhere"))
    problems = url + "_live/problems.json"
    assert wait_for(lambda: "nowhere" in fetch(problems), timeout=60)
    page = open_settled(browser, page_url)
    panel = page.locator(".essays-live-problems")
    panel.wait_for(timeout=10_000)
    text = panel.inner_text()
    assert f"{name}.md:2" in text
    assert "topic 'nowhere' is not a topic of this knowledge base" in text
    assert "Fix: use one of: observability" in text
    # The last good rendering stays, header and all, under the panel.
    assert page.locator(".essay-header .essay-summary").count() == 1
    assert page.get_by_role("heading", name="A Sample Essay").count() == 1
    # A region, not a dialog: the page keeps the focus order it had.
    assert panel.get_attribute("aria-labelledby") == "essays-live-title"
    assert page.locator("[role=dialog], dialog").count() == 0

    essay.write_text(good)
    assert wait_for(lambda: fetch(problems).strip() == "[]", timeout=60)
    page.close()
    page = open_settled(browser, page_url)
    assert page.locator(".essays-live-problems").count() == 0
    page.close()


def test_published_builds_have_no_problems_panel(site: Site) -> None:
    assert not (site.html / "_live").exists()
    pages = [p.read_text() for p in site.html.rglob("*.html")]
    assert not [p for p in pages if "essays-live.js" in p]


def test_a_problem_stands_until_its_file_is_saved_or_its_page_rewritten(
    tmp_path: Path,
) -> None:
    """Sphinx warns about a file only when it reads or writes it; a rebuild
    for another save must not clear a problem that still stands."""
    from sphinx_essays.live import Problem, carry_over

    src, out = tmp_path / "src", tmp_path / "out"
    (src / "essays").mkdir(parents=True)
    (out / "essays").mkdir(parents=True)
    broken = src / "essays/broken.md"
    broken.write_text("---\ntopic: nowhere\n---\n")
    (out / "essays/broken.html").write_text("last good page")
    problem = Problem("essays/broken.md", 2, "topic 'nowhere' is not a topic", "")
    reported = {problem.file: broken.stat().st_mtime}
    since = time.time() + 10  # nothing below was written by the next rebuild

    assert carry_over([problem], [], src, out, since, reported) == [problem]
    # Saved again: the rebuild read it, and its own warnings are the truth.
    assert carry_over([problem], [], src, out, since, {problem.file: 0.0}) == []
    # Its page written again without a warning: it was fixed elsewhere.
    assert carry_over([problem], [], src, out, 0.0, reported) == []
    # Reported again: once, as this rebuild says it.
    assert carry_over([problem], [problem], src, out, since, reported) == [problem]


def test_the_warm_application_is_kept_between_rebuilds_and_builds_as_fresh(
    rootdir: Path, tmp_path: Path
) -> None:
    """Rebuilds reuse one application and the environment it holds in memory
    (no unpickling), write what a fresh build writes, and start again from
    disk after ``conf.py`` changes or a build fails."""
    sys.path.insert(0, str(Path(__file__).parent.parent / "tools"))
    from warm_autobuild import WarmSphinx

    source, out = tmp_path / "src", tmp_path / "out"
    shutil.copytree(rootdir / "test-essays-valid", source)
    args = ["-q", "-b", "html", "-d", str(tmp_path / "doctrees"), str(source), str(out)]
    warm = WarmSphinx()
    try:
        check_warm_rebuilds(warm, args, source, out, tmp_path)
    finally:
        # Its docutils registrations would otherwise outlive the test.
        warm.close()


def check_warm_rebuilds(
    warm: Any, args: list[str], source: Path, out: Path, tmp_path: Path
) -> None:
    assert warm.build(args) == 0
    first = warm.app
    assert first is not None

    essay = source / "essays/observability/sample-essay.md"
    essay.write_text(essay.read_text().replace("makes a claim", "makes a warm claim"))
    assert warm.build(args) == 0
    assert warm.app is first, "the rebuild made a new application"
    assert warm.warnings.getvalue() == ""
    page = out / "essays/observability/sample-essay.html"
    assert "makes a warm claim" in page.read_text()

    fresh_out = fresh_build(source, tmp_path / "fresh")
    pages = {p.relative_to(out).as_posix() for p in out.rglob("*.html")}
    assert pages == {
        p.relative_to(fresh_out).as_posix() for p in fresh_out.rglob("*.html")
    }
    differ = [
        name
        for name in sorted(pages)
        if (out / name).read_bytes() != (fresh_out / name).read_bytes()
    ]
    assert differ == []

    # A warning is this build's alone: the next clean build reports none.
    essay.write_text(
        essay.read_text().replace("topic: observability", "topic: nowhere")
    )
    assert warm.build(args) == 0
    assert "topic 'nowhere' is not a topic" in warm.warnings.getvalue()
    essay.write_text(
        essay.read_text().replace("topic: nowhere", "topic: observability")
    )
    assert warm.build(args) == 0
    assert warm.warnings.getvalue() == ""
    assert warm.app is first

    # A changed conf.py makes a new application.
    conf = source / "conf.py"
    conf.write_text(conf.read_text() + "\n# changed\n")
    assert warm.build(args) == 0
    assert warm.app is not first

    # A failed build drops the application; the next one starts from disk.
    good = conf.read_text()
    conf.write_text(good + "\nthis is not python\n")
    assert warm.build(args) == 2
    assert warm.app is None
    conf.write_text(good + "\n# fixed\n")
    assert warm.build(args) == 0
    assert warm.app is not None
