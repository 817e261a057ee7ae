"""Accessibility: what every page promises, and axe-core in a real browser.

Every page: a `lang`, a skip link first, exactly one `<main>`, the landmarks
(header, nav, main, footer), a `<title>` no other page has, a viewport that
allows zooming. axe-core (axe-playwright-python, in Debian's Chromium) finds
no WCAG 2.0/2.1/2.2 A or AA violation on the home, story, chapter and
whole-work pages, in light and dark mode (the system's, and the reader's
setting), with the settings panel open and chapter warnings hidden too.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import html5lib
import pytest

from conftest import NOW
from generator.build import build
from generator.config import BuildOptions
from served_site import SITE_PATH, browser, build_sample, site_url  # noqa: F401 (fixtures)

SETTINGS_KEY = SITE_PATH + "reader-settings"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
AXE_PAGES = {
    "home": "",
    "story": "salt-and-signal/",
    "chapter": "the-cartographers-daughter/02-soundings/",  # warnings, notes, a footnote
    "work": "the-cartographers-daughter/all/",
}


# --- every page, without a browser -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_sample(tmp_path_factory.mktemp("a11y") / "output")


def parse(path: Path) -> Any:
    return html5lib.parse(path.read_text("utf-8"), namespaceHTMLElements=False)


def test_every_page_has_lang_skip_link_landmarks_and_zoomable_viewport(out: Path) -> None:
    pages = sorted(out.rglob("*.html"))
    assert len(pages) > 10
    for path in pages:
        rel = path.relative_to(out).as_posix()
        doc = parse(path)
        assert re.fullmatch(r"[a-zA-Z]{2,3}(-[a-zA-Z0-9]+)*", doc.get("lang", "")), rel
        body = doc.find("body")
        first = body[0]
        assert first.tag == "a" and first.get("class") == "skip-link" and first.get("href") == "#main", rel
        mains = doc.findall(".//main")
        assert len(mains) == 1 and mains[0].get("id") == "main", rel
        # Landmarks: the banner and contentinfo are the body's own header and footer.
        assert [child.tag for child in body if child.tag in ("header", "main", "footer")] == ["header", "main", "footer"], rel
        assert body.findall("./header/nav"), rel
        for nav in doc.findall(".//nav"):
            assert nav.get("aria-label"), f"{rel}: every <nav> has a name, so that screen readers tell them apart"
        viewports = [m.get("content", "") for m in doc.findall(".//meta") if m.get("name") == "viewport"]
        assert len(viewports) == 1, rel
        viewport = viewports[0].replace(" ", "").lower()
        assert "width=device-width" in viewport, rel
        assert "maximum-scale" not in viewport and "user-scalable=no" not in viewport and "user-scalable=0" not in viewport, rel


def test_no_two_pages_share_a_title(out: Path, make_site) -> None:
    # The sample, and a site where a one-shot and a story have chapters with the same titles.
    site = make_site({
        "site.toml": 'title = "Same"\n',
        "content/one.md": "---\ntitle: One\ndate: 2025-01-01\n---\nText.\n",
        "content/two/story.md": "---\ntitle: Two\n---\nSummary.\n",
        "content/two/1-a.md": "---\ntitle: One\ndate: 2025-01-01\n---\nText.\n",
        "content/two/2-b.md": "---\ndate: 2025-01-02\n---\nText.\n",
    })
    build(site, BuildOptions(output=site / "output", now=NOW))
    for folder in (out, site / "output"):
        titles: dict[str, str] = {}
        for path in sorted(folder.rglob("*.html")):
            rel = path.relative_to(folder).as_posix()
            title = (parse(path).find(".//title").text or "").strip()
            assert title, rel
            assert title not in titles, f"{rel} and {titles.get(title)} share the title {title!r}"
            titles[title] = rel


# --- axe-core in Chromium ----------------------------------------------------------------------------------

def axe_violations(page: Any) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, options={"runOnly": {"type": "tag", "values": AXE_TAGS}, "resultTypes": ["violations"]})
    return [f"{v['id']} ({v['impact']}): {v['help']}; " + "; ".join(
        f"{n['target']}: {n.get('failureSummary', '')}" for n in v["nodes"][:5]) for v in results.response["violations"]]


def save_settings(settings: dict[str, str]) -> str:
    """An init script that saves reader settings before the page's scripts run (not on the first about:blank)."""
    return (f'if (location.protocol === "http:") '
            f"localStorage.setItem({json.dumps(SETTINGS_KEY)}, {json.dumps(json.dumps(settings))});")


MODES = {  # name → (emulated prefers-color-scheme, saved reader settings, expected data-theme)
    "light": ("light", None, None),
    "dark-system": ("dark", None, None),
    "dark-setting": ("light", {"theme": "dark"}, "dark"),
    "light-setting-on-dark-system": ("dark", {"theme": "light"}, "light"),
}
BACKGROUNDS = {"light": "rgb(253, 252, 248)", "dark": "rgb(23, 22, 26)"}


@pytest.mark.slow
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("kind", list(AXE_PAGES))
def test_axe_finds_no_wcag_violations(browser: Any, site_url: str, kind: str, mode: str) -> None:  # noqa: F811
    pytest.importorskip("axe_playwright_python", reason="axe-playwright-python is not installed")
    scheme, settings, theme = MODES[mode]
    context = browser.new_context(color_scheme=scheme, viewport={"width": 1024, "height": 800})
    if settings:
        context.add_init_script(save_settings(settings))
    try:
        page = context.new_page()
        page.goto(site_url + AXE_PAGES[kind])
        assert page.evaluate("document.documentElement.dataset.theme") == theme
        dark = (scheme == "dark" and theme is None) or theme == "dark"
        assert page.evaluate("getComputedStyle(document.body).backgroundColor") == BACKGROUNDS["dark" if dark else "light"]
        problems = axe_violations(page)
        assert problems == [], f"{kind} in {mode} mode:\n" + "\n".join(problems)
    finally:
        context.close()


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_with_the_settings_panel_open_and_warnings_hidden(browser: Any, site_url: str, scheme: str) -> None:  # noqa: F811
    pytest.importorskip("axe_playwright_python", reason="axe-playwright-python is not installed")
    context = browser.new_context(color_scheme=scheme, viewport={"width": 1024, "height": 800})
    context.add_init_script(save_settings({"warnings": "hidden", "notes": "hidden"}))
    try:
        page = context.new_page()
        page.goto(site_url + AXE_PAGES["chapter"])
        page.get_by_text("Reader settings").click()
        from playwright.sync_api import expect

        expect(page.get_by_label("Text size")).to_be_visible()
        expect(page.get_by_role("button", name="Show warnings")).to_be_visible()
        problems = axe_violations(page)
        assert problems == [], f"settings panel, {scheme}:\n" + "\n".join(problems)
    finally:
        context.close()


@pytest.mark.slow
def test_axe_reports_a_real_violation(browser: Any, site_url: str) -> None:  # noqa: F811
    """The control: axe does run and does find a contrast problem we add."""
    pytest.importorskip("axe_playwright_python", reason="axe-playwright-python is not installed")
    page = browser.new_page()
    try:
        page.goto(site_url)
        page.evaluate("document.querySelector('main').insertAdjacentHTML('beforeend', "
                      "'<p style=\"color:#999;background:#aaa\">faint</p>')")
        assert any(p.startswith("color-contrast") for p in axe_violations(page))
    finally:
        page.close()
