"""The reader script in a real browser (Playwright + Debian's Chromium): settings, continue reading, keys.

The built sample site is served over loopback HTTP under `/serialist/` (its
base path), with a second site under `/other/` on the same origin. Every page
opened here must log no console error and raise no script error.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import pytest

from served_site import OTHER_PATH, SITE_PATH, browser, site_url  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow

SETTINGS_KEY = SITE_PATH + "reader-settings"
SALT = "salt-and-signal"
CART = "the-cartographers-daughter"
SALT_CHAPTERS = ["1-static", "2-the-keeper", "3-what-the-tide-left"]
WARNINGS_CHAPTER = f"{CART}/02-soundings/"  # chapter warnings, a see-the-end link and end notes


def progress_key(story: str) -> str:
    return f"{SITE_PATH}progress:{story}"


def expect() -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect


def set_storage(settings: dict[str, Any] | None = None, **raw: Any) -> str:
    """An init script that saves reader settings (and other keys) before any page script runs."""
    items = dict(raw)
    if settings is not None:
        items[SETTINGS_KEY] = settings
    writes = "".join(f"localStorage.setItem({json.dumps(k)}, {json.dumps(json.dumps(v))});" for k, v in items.items())
    return f'if (location.protocol === "http:") {{ {writes} }}\n'  # (not on the first about:blank)


THROWING_STORAGE = {
    # Cookies and site data blocked: touching `localStorage` at all throws.
    "blocked": """Object.defineProperty(window, "localStorage", {configurable: true,
        get() { throw new DOMException("The operation is insecure.", "SecurityError"); }});""",
    # Storage there, but every call fails (Safari's old private mode threw QuotaExceededError on setItem).
    "failing": """for (const name of ["getItem", "setItem", "removeItem", "key", "clear"]) {
        Storage.prototype[name] = function () { throw new DOMException("No storage.", "QuotaExceededError"); };
    }""",
}


@pytest.fixture
def open_page(browser: Any, site_url: str) -> Iterator[Callable[..., Any]]:  # noqa: F811
    """`open_page(path, init_script=None, **context_options)` → a page at `site_url + path`.

    Each call makes a new browser context (its own storage). Console errors and uncaught script errors of
    every page are collected and must be none when the test ends.
    """
    contexts: list[Any] = []
    errors: list[str] = []

    def watch(page: Any) -> None:
        page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"page error: {e}"))

    def open_(path: str | None = "", init_script: str | None = None, **options: Any) -> Any:
        options.setdefault("viewport", {"width": 1000, "height": 700})
        context = browser.new_context(**options)
        contexts.append(context)
        context.on("page", watch)
        if init_script:
            context.add_init_script(init_script)
        page = context.new_page()
        if path is not None:
            page.goto(site_url + path)
        return page

    yield open_
    for context in contexts:
        context.close()
    assert errors == []


def html_data(page: Any) -> dict[str, str]:
    return page.evaluate("Object.assign({}, document.documentElement.dataset)")


# --- settings ------------------------------------------------------------------------------------------------

FIRST_FRAME = """
(() => {
  if (location.protocol !== "http:") return;
  const html = () => document.documentElement;
  const snapshot = () => ({
    data: Object.assign({}, html().dataset),
    js: html().classList.contains("js"),
    fontSize: getComputedStyle(html()).fontSize,
    bg: document.body ? getComputedStyle(document.body).backgroundColor : null,
    at: performance.now(),
  });
  // The moment the saved theme lands on <html>, and what the page looks like at its first rendered frame.
  // (The init script runs before <html> exists: watch the document.)
  new MutationObserver((records, observer) => {
    if (html() && html().dataset.theme && window.__themeSetAt === undefined) window.__themeSetAt = performance.now();
    if (document.body) { window.__atBody = snapshot(); observer.disconnect(); }
  }).observe(document, {attributes: true, childList: true, subtree: true});
  requestAnimationFrame(() => { window.__firstFrame = snapshot(); });
})();
"""


def test_saved_settings_are_applied_before_the_first_paint(open_page) -> None:
    saved = {"theme": "dark", "font": "dyslexia", "width": "wide", "size": 150, "notes": "hidden"}
    page = open_page(WARNINGS_CHAPTER, color_scheme="light", init_script=set_storage(saved) + FIRST_FRAME)
    page.wait_for_function("() => window.__firstFrame && performance.getEntriesByName('first-paint').length > 0")
    want = {"theme": "dark", "font": "dyslexia", "width": "wide", "size": "150", "notes": "hidden"}
    at_body = page.evaluate("window.__atBody")
    assert at_body["data"] == want and at_body["js"]  # before the body was even parsed
    first = page.evaluate("window.__firstFrame")
    assert first["data"] == want
    assert first["fontSize"] == "24px"  # 150% of 16px
    assert first["bg"] == "rgb(23, 22, 26)"  # the dark background, on a light system
    first_paint = page.evaluate("performance.getEntriesByName('first-paint')[0].startTime")
    assert page.evaluate("window.__themeSetAt") <= first_paint
    assert page.locator(".notes").count() > 0
    for note in page.locator(".notes, .see-end").all():
        expect()(note).to_be_hidden()


def test_settings_panel_changes_persist_across_reloads_and_reset(open_page) -> None:
    page = open_page(WARNINGS_CHAPTER, color_scheme="light")
    html = page.locator("html")
    assert html_data(page) == {}
    page.get_by_text("Reader settings").click()
    page.get_by_label("Text size").select_option("200")
    page.get_by_label("Dark").check()
    page.get_by_label("Sans-serif").check()
    page.get_by_label("Narrow").check()
    page.get_by_label("Show author's notes").uncheck()
    page.get_by_label("Show chapter warnings").uncheck()
    page.get_by_label(re.compile("keys go to the previous")).uncheck()
    want = {"size": "200", "theme": "dark", "font": "sans", "width": "narrow", "notes": "hidden",
            "warnings": "hidden", "keys": "off"}
    expect()(html).to_have_attribute("data-theme", "dark")
    assert html_data(page) == want

    page.reload()
    assert html_data(page) == want
    assert page.evaluate("getComputedStyle(document.documentElement).fontSize") == "32px"
    assert "system-ui" in page.evaluate("getComputedStyle(document.querySelector('.chapter-text')).fontFamily")
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(23, 22, 26)"
    expect()(page.locator(".notes-after")).to_be_hidden()
    page.get_by_text("Reader settings").click()
    expect()(page.get_by_label("Text size")).to_have_value("200")
    expect()(page.get_by_label("Dark")).to_be_checked()
    expect()(page.get_by_label("Sans-serif")).to_be_checked()
    expect()(page.get_by_label("Narrow")).to_be_checked()
    expect()(page.get_by_label("Show author's notes")).not_to_be_checked()
    # Everything is under the site's base path.
    keys = page.evaluate("Object.keys(localStorage)")
    assert keys and all(k.startswith(SITE_PATH) for k in keys), keys
    assert json.loads(page.evaluate(f"localStorage.getItem({json.dumps(SETTINGS_KEY)})"))["theme"] == "dark"

    page.get_by_role("button", name="Reset to defaults").click()
    assert html_data(page) == {}
    assert page.evaluate(f"localStorage.getItem({json.dumps(SETTINGS_KEY)})") is None
    expect()(page.get_by_label("Auto (as your system)")).to_be_checked()
    expect()(page.get_by_label("Text size")).to_have_value("100")
    page.reload()
    assert html_data(page) == {}


def test_auto_theme_follows_the_system(open_page) -> None:
    page = open_page("", color_scheme="dark")
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(23, 22, 26)"
    page.emulate_media(color_scheme="light")
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(253, 252, 248)"
    page = open_page("", color_scheme="dark", init_script=set_storage({"theme": "light"}))
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(253, 252, 248)"


def test_two_sites_on_one_origin_keep_their_own_settings(open_page, site_url: str) -> None:  # noqa: F811
    page = open_page("")
    page.get_by_text("Reader settings").click()
    page.get_by_label("Dark").check()
    other = site_url.replace(SITE_PATH, OTHER_PATH)
    page.goto(other)
    assert page.title() == "Lanternfall Serials" and urlsplit(page.url).path == OTHER_PATH
    assert html_data(page) == {}
    page.get_by_text("Reader settings").click()
    page.get_by_label("Text size").select_option("120")
    page.goto(site_url)
    assert html_data(page) == {"theme": "dark"}
    keys = sorted(page.evaluate("Object.keys(localStorage)"))
    assert keys == [OTHER_PATH + "reader-settings", SETTINGS_KEY]


@pytest.mark.parametrize("storage", list(THROWING_STORAGE))
def test_everything_works_when_storage_throws(open_page, storage: str) -> None:
    page = open_page(WARNINGS_CHAPTER, init_script=THROWING_STORAGE[storage])
    expect()(page.locator(".chapter-text")).to_be_visible()
    page.get_by_text("Reader settings").click()
    page.get_by_label("Dark").check()  # applies to this page, though it cannot be saved
    assert html_data(page) == {"theme": "dark"}
    page.get_by_label("Show chapter warnings").uncheck()
    page.get_by_role("button", name="Show warnings").click()
    expect()(page.locator(".chapter-warnings .warnings")).to_be_visible()
    page.locator("h1").click()
    page.keyboard.press("ArrowRight")
    expect()(page).to_have_url(re.compile(r"/03-true-north/"))
    assert html_data(page) == {}  # nothing was saved
    page.goto(page.url.rsplit("/", 2)[0] + "/")  # the story page: no continue link, no error
    expect()(page.locator(".continue-reading")).to_be_hidden()
    page.goto(page.url.rsplit("/", 2)[0] + "/")  # the home page
    expect()(page.locator(".blurb").first).to_be_visible()


# --- chapter warnings and notes ------------------------------------------------------------------------------

def test_hidden_warnings_are_revealed_by_their_button(open_page) -> None:
    page = open_page(WARNINGS_CHAPTER, init_script=set_storage({"warnings": "hidden"}))
    box = page.locator(".chapter-warnings")
    button = box.locator(".show-warnings")
    expect()(box.get_by_role("button", name="Show warnings")).to_be_visible()
    expect()(box.get_by_role("heading", name="Chapter warnings")).to_be_visible()
    expect()(box.locator(".warnings")).to_be_hidden()
    expect()(button).to_be_visible()
    expect()(button).to_have_attribute("aria-expanded", "false")
    button.click()
    expect()(box.locator(".warnings")).to_be_visible()
    expect()(box.locator(".warnings")).to_be_focused()
    expect()(box.get_by_text("Brief description of a drowning")).to_be_visible()
    expect()(button).to_be_hidden()
    expect()(button).to_have_attribute("aria-expanded", "true")


def test_warnings_and_notes_are_shown_by_default(open_page) -> None:
    page = open_page(WARNINGS_CHAPTER)
    expect()(page.locator(".chapter-warnings .warnings")).to_be_visible()
    expect()(page.get_by_role("button", name="Show warnings")).to_be_hidden()
    expect()(page.locator(".notes-after")).to_be_visible()
    expect()(page.locator(".see-end")).to_be_visible()


# --- continue reading ----------------------------------------------------------------------------------------

def test_continue_reading_from_home_and_story_page(open_page) -> None:
    page = open_page(f"{SALT}/2-the-keeper/", viewport={"width": 800, "height": 600})
    expect()(page.locator("[data-continue]").first).to_have_count(0)  # (no continue links on a chapter)
    max_y = page.evaluate("document.documentElement.scrollHeight - innerHeight")
    assert max_y > 1000
    target = max_y // 2
    page.evaluate(f"window.scrollTo(0, {target})")
    key = json.dumps(progress_key(SALT))
    page.wait_for_function(f"() => (JSON.parse(localStorage.getItem({key})) || {{}}).y === {target}")

    page.goto(page.url.split(SALT)[0])  # home
    link = page.locator(f'[data-continue="{SALT}"] a')
    expect()(link).to_have_text("Continue reading: Chapter 2")
    expect()(link).to_have_attribute("href", f"{SALT}/2-the-keeper/index.html#resume")
    expect()(page.locator(f'[data-continue="{CART}"]')).to_be_hidden()

    page.goto(page.url + f"{SALT}/")  # the story page
    link = page.locator(".continue-reading a")
    expect()(link).to_have_text("Continue reading: Chapter 2")
    link.click()
    page.wait_for_url(re.compile(rf"/{SALT}/2-the-keeper/index\.html$"))  # `#resume` is taken off again
    page.wait_for_function(f"() => Math.abs(window.scrollY - {target}) <= 2")

    # Reading on in another story keeps this one's place.
    page.goto(page.url.split(SALT)[0] + f"{CART}/03-true-north/")
    page.goto(page.url.split(CART)[0])
    expect()(page.locator(f'[data-continue="{CART}"] a')).to_have_text("Continue reading: Chapter 3: True North")
    expect()(page.locator(f'[data-continue="{SALT}"] a')).to_have_text("Continue reading: Chapter 2")


def test_progress_is_saved_when_leaving_the_page_at_once(open_page) -> None:
    page = open_page(f"{SALT}/1-static/", viewport={"width": 800, "height": 600})
    page.evaluate("window.scrollTo(0, 700)")
    page.goto(page.url.split("1-static")[0])  # before the throttled save: pagehide saves
    expect()(page.locator(".continue-reading a")).to_have_text("Continue reading: Chapter 1: Static")
    assert json.loads(page.evaluate(f"localStorage.getItem({json.dumps(progress_key(SALT))})"))["y"] == 700


@pytest.mark.parametrize("path", ["javascript:alert(1)", "//evil.example/x", "/etc/passwd", "../../x/index.html", ""])
def test_a_tampered_progress_record_gives_no_link(open_page, path: str) -> None:
    record = {"path": path, "heading": "Chapter 9", "y": 0, "f": 0}
    page = open_page(f"{SALT}/", init_script=set_storage(**{progress_key(SALT): record}))
    expect()(page.locator(".continue-reading")).to_be_hidden()
    assert page.locator(".continue-reading a").count() == 0


# --- keys ----------------------------------------------------------------------------------------------------

RECORD_NAVIGATIONS = """
window.__navigations = [];
navigation.addEventListener("navigate", (event) => {
  window.__navigations.push(new URL(event.destination.url).pathname);
  event.preventDefault();
});
"""


def presses(page: Any, *keys: str) -> list[str]:
    """Where pressing each key would have navigated to (navigations are recorded and cancelled)."""
    page.evaluate("window.__navigations.length = 0")
    for key in keys:
        page.keyboard.press(key)
    return [p.split(SITE_PATH, 1)[1] for p in page.evaluate("window.__navigations")]


def keys_page(open_page, path: str, **options: Any) -> Any:
    page = open_page(path, **options)
    page.evaluate(RECORD_NAVIGATIONS)
    return page


def test_arrow_keys_go_to_the_previous_and_next_chapter(open_page) -> None:
    page = open_page(f"{SALT}/2-the-keeper/")
    for key, chapter in (("ArrowRight", "3-what-the-tide-left"), ("ArrowLeft", "2-the-keeper"),
                         ("ArrowLeft", "1-static")):
        page.keyboard.press(key)
        expect()(page).to_have_url(re.compile(rf"/{SALT}/{chapter}/index\.html$"))
        page.wait_for_load_state("load")  # the address changes before the new page's script listens for keys


def test_arrow_keys_are_ignored_with_modifiers(open_page) -> None:
    page = keys_page(open_page, f"{SALT}/2-the-keeper/")
    assert presses(page, "ArrowRight") == [f"{SALT}/3-what-the-tide-left/index.html"]
    assert presses(page, "ArrowLeft") == [f"{SALT}/1-static/index.html"]
    for modifier in ("Shift", "Alt", "Control", "Meta"):
        assert presses(page, f"{modifier}+ArrowRight", f"{modifier}+ArrowLeft") == [], modifier


def test_arrow_keys_are_ignored_in_form_fields_and_editable_text(open_page) -> None:
    page = keys_page(open_page, f"{SALT}/2-the-keeper/")
    page.evaluate("""document.querySelector("main").insertAdjacentHTML("beforeend",
        '<input id="t-input"><textarea id="t-area"></textarea><div id="t-edit" contenteditable="true">x</div>'
        + '<p id="t-inner" contenteditable="plaintext-only"><b id="t-bold">bold</b></p>')""")
    for target in ("#t-input", "#t-area", "#t-edit", "#t-bold"):
        page.locator(target).click()
        assert presses(page, "ArrowRight", "ArrowLeft") == [], target
    page.get_by_text("Reader settings").click()
    page.get_by_label("Show author's notes").focus()
    assert presses(page, "ArrowRight", "ArrowLeft") == []
    page.get_by_label("Text size").focus()
    assert presses(page, "ArrowRight") == []
    page.locator("h1").click()
    assert presses(page, "ArrowRight") == [f"{SALT}/3-what-the-tide-left/index.html"]


def test_arrow_keys_do_nothing_at_the_ends_and_off_chapter_pages(open_page, site_url: str) -> None:  # noqa: F811
    first = keys_page(open_page, f"{SALT}/1-static/")
    assert presses(first, "ArrowLeft") == []
    assert presses(first, "ArrowRight") == [f"{SALT}/2-the-keeper/index.html"]
    last = keys_page(open_page, f"{SALT}/3-what-the-tide-left/")
    assert presses(last, "ArrowRight") == []
    assert presses(last, "ArrowLeft") == [f"{SALT}/2-the-keeper/index.html"]
    for path in ("", f"{SALT}/", f"{SALT}/all/", "the-last-ferry/chapter-1/"):
        last.goto(site_url + path)
        last.evaluate(RECORD_NAVIGATIONS)
        assert presses(last, "ArrowLeft", "ArrowRight") == [], path


def test_arrow_keys_can_be_switched_off(open_page) -> None:
    page = keys_page(open_page, f"{SALT}/2-the-keeper/", init_script=set_storage({"keys": "off"}))
    assert presses(page, "ArrowRight", "ArrowLeft") == []
    page.get_by_text("Reader settings").click()
    page.get_by_label(re.compile("keys go to the previous")).check()
    page.locator("h1").click()
    assert presses(page, "ArrowRight") == [f"{SALT}/3-what-the-tide-left/index.html"]
    page.get_by_label(re.compile("keys go to the previous")).uncheck()
    page.locator("h1").click()
    assert presses(page, "ArrowRight") == []


# --- without JavaScript --------------------------------------------------------------------------------------

def test_without_javascript_everything_is_readable(open_page, site_url: str) -> None:  # noqa: F811
    origin = site_url.split(SITE_PATH)[0]
    hiding = {"warnings": "hidden", "notes": "hidden", "theme": "dark", "size": 200}
    storage = {"cookies": [], "origins": [{"origin": origin, "localStorage": [
        {"name": SETTINGS_KEY, "value": json.dumps(hiding)},
        {"name": progress_key(CART), "value": json.dumps({"path": f"{CART}/01-the-blank-margin/index.html",
                                                          "heading": "Chapter 1", "y": 100, "f": 0.1})},
    ]}]}
    page = open_page(WARNINGS_CHAPTER, java_script_enabled=False, storage_state=storage)
    assert "js" not in (page.locator("html").get_attribute("class") or "")
    expect()(page.locator(".chapter-text")).to_be_visible()
    expect()(page.get_by_text("It did not come back dry.")).to_be_visible()
    expect()(page.locator(".chapter-warnings .warnings")).to_be_visible()
    expect()(page.get_by_role("button", name="Show warnings")).to_be_hidden()
    expect()(page.locator(".notes-after")).to_be_visible()
    expect()(page.locator(".see-end")).to_be_visible()
    expect()(page.locator(".reader-settings")).to_be_hidden()
    page.get_by_role("link", name=re.compile(r"^Next")).first.click()
    expect()(page).to_have_url(re.compile(rf"/{CART}/03-true-north/index\.html$"))
    page.get_by_role("link", name="Contents").first.click()
    expect()(page.locator(".continue-reading")).to_be_hidden()
    expect()(page.get_by_role("link", name="Start reading")).to_be_visible()


# --- reflow --------------------------------------------------------------------------------------------------

REFLOW_PAGES = ["", f"{SALT}/", f"{SALT}/all/", *(f"{SALT}/{c}/" for c in SALT_CHAPTERS), WARNINGS_CHAPTER,
                f"{CART}/", "the-last-ferry/chapter-1/"]


def scroll_width(page: Any) -> tuple[int, int]:
    return tuple(page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]"))


def test_no_sideways_scrolling_at_320px_with_200_percent_text(open_page, site_url: str) -> None:  # noqa: F811
    page = open_page(None, viewport={"width": 320, "height": 640}, init_script=set_storage({"size": 200}))
    for path in REFLOW_PAGES:
        page.goto(site_url + path)
        assert page.evaluate("getComputedStyle(document.documentElement).fontSize") == "32px", path
        width, client = scroll_width(page)
        assert width <= client, f"{path}: {width}px wide at {client}px"
        page.get_by_text("Reader settings").click()
        width, client = scroll_width(page)
        assert width <= client, f"{path} with the settings open: {width}px wide at {client}px"


def test_no_sideways_scrolling_at_320px_with_the_browsers_text_size_doubled(open_page, site_url: str) -> None:  # noqa: F811
    page = open_page(None, viewport={"width": 320, "height": 640})
    session = page.context.new_cdp_session(page)
    session.send("Page.enable")
    session.send("Page.setFontSizes", {"fontSizes": {"standard": 32, "fixed": 26}})  # the browser's default: 16
    for path in REFLOW_PAGES:
        page.goto(site_url + path)
        assert page.evaluate("getComputedStyle(document.documentElement).fontSize") == "32px", path
        width, client = scroll_width(page)
        assert width <= client, f"{path}: {width}px wide at {client}px"
