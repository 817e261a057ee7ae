"""A real browser (Debian's Chromium, driven by Playwright) against a real `serve()`.

The page is never touched by the test while it waits: every reload and overlay
comes from saving files, as an author would.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import STORY, chapter
from served_site import browser  # noqa: F401 (the Chromium fixture)
from generator.serve import Console, ServeOptions, serve

pytestmark = [pytest.mark.slow,
              # watchdog's notice when a new folder (the build's Markdown cache) gets its watch twice
              pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning")]

SCROLL_Y = 3000
WAIT_MS = 5000


def long_chapter(revision: str, title: str = "The Long One") -> str:
    sentence = "The tide came in over the shingle and went out again, as it always had. "
    paragraphs = [f"Paragraph {n}{revision if n == 60 else ''}. " + sentence * 6 for n in range(1, 121)]
    return chapter(title, body="\n\n".join(paragraphs))


def save(path: Path, text: str) -> None:
    """An editor's atomic save: temp file, then rename over the chapter."""
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text, "utf-8")
    os.replace(temp, path)


class Printed:
    """What serve() printed, with a way to wait for a line."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()

    def add(self, line: str) -> None:
        with self._changed:
            self.lines.append(line)
            self._changed.notify_all()

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 10) -> str:
        regex = re.compile(pattern)
        with self._changed:
            found = self._changed.wait_for(lambda: len([x for x in self.lines if regex.search(x)]) >= count, timeout)
            assert found, f"no {count}x {pattern!r} in {self.lines}"
            return [x for x in self.lines if regex.search(x)][-1]


@pytest.fixture
def served(make_site) -> Iterator[tuple[str, Path, Printed]]:
    """`serve()` running in a thread on a site with one long chapter: (chapter URL, chapter file, printed lines)."""
    site = make_site({
        "site.toml": 'title = "Browser Test"\n',
        "content/s/story.md": STORY,
        "content/s/1-long.md": long_chapter(""),
        "content/s/2-next.md": chapter("Next", date="2025-01-02"),
    })
    printed = Printed()
    stop = threading.Event()

    def run() -> None:
        try:
            serve(ServeOptions(site=site, port=0), Console(info=printed.add, error=printed.add), stop)
        except BaseException as exc:  # noqa: BLE001 (reported through the printed lines)
            printed.add(f"serve raised {exc!r}")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    line = printed.wait_for(r"^Serving |^serve raised ")
    url = re.search(r"http://127\.0\.0\.1:\d+/", line)
    assert url, printed.lines
    try:
        yield f"{url.group(0)}s/1-long/", site / "content/s/1-long.md", printed
    finally:
        stop.set()
        thread.join(10)


def test_saving_reloads_the_page_in_place_and_errors_show_in_an_overlay(browser: Any, served) -> None:
    from playwright.sync_api import expect

    url, source, printed = served
    page = browser.new_page(viewport={"width": 1000, "height": 700})
    try:
        page.goto(url)
        page.evaluate(f"window.scrollTo(0, {SCROLL_Y})")
        assert page.evaluate("window.scrollY") == SCROLL_Y
        page.evaluate("window.notReloaded = true")
        # Chromium restores the scroll position of a reload by itself (not reliably once the page
        # changes, and other browsers differ); turn that off so that the position kept is ours.
        page.evaluate("history.scrollRestoration = 'manual'")

        save(source, long_chapter(", revised"))
        expect(page.get_by_text("Paragraph 60, revised.")).to_be_visible(timeout=WAIT_MS)
        assert page.evaluate("window.notReloaded === undefined")  # it really was a reload
        page.wait_for_function(f"() => Math.abs(window.scrollY - {SCROLL_Y}) < 40", timeout=WAIT_MS)

        broken = long_chapter(", revised").replace("title: The Long One", "title: [The Long One")
        save(source, broken)
        errors = page.locator("#serialist-overlay .serialist-errors")
        expect(errors).to_contain_text(re.compile(r"1-long\.md:\d+: error: invalid YAML"), timeout=WAIT_MS)
        printed.wait_for(r"1-long\.md:\d+: error: invalid YAML")  # the same message as in the terminal
        expect(page.get_by_text("Paragraph 60, revised.")).to_be_visible()  # the last good page stays

        save(source, long_chapter(", fixed"))
        expect(page.get_by_text("Paragraph 60, fixed.")).to_be_visible(timeout=WAIT_MS)
        expect(page.locator("#serialist-overlay")).to_have_count(0)
        page.wait_for_function(f"() => Math.abs(window.scrollY - {SCROLL_Y}) < 40", timeout=WAIT_MS)
    finally:
        page.close()


def test_a_hidden_tab_stops_listening_and_catches_up_when_shown(browser: Any, served) -> None:
    from playwright.sync_api import expect

    url, source, printed = served
    page = browser.new_page()
    try:
        page.goto(url)
        page.evaluate("window.notReloaded = true")
        # Headless Chromium never hides a tab: switch the state the page sees and fire the real event.
        page.evaluate("""() => {
            Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "hidden" });
            document.dispatchEvent(new Event("visibilitychange"));
        }""")
        save(source, long_chapter(", while hidden"))
        printed.wait_for(r"1-long\.md changed: \d+ files written")
        page.wait_for_timeout(500)  # a hidden tab must not reload: give it the chance to misbehave
        assert page.evaluate("window.notReloaded === true")

        page.evaluate("""() => {
            Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "visible" });
            document.dispatchEvent(new Event("visibilitychange"));
        }""")
        expect(page.get_by_text("Paragraph 60, while hidden.")).to_be_visible(timeout=WAIT_MS)
    finally:
        page.close()
