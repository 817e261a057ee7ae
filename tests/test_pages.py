"""Pages through the theme: what the templates' `once(macro, story, …)` reuses stays with its own story."""

from __future__ import annotations

import re

from conftest import NOW, chapter
from generator.build import build
from generator.config import BuildOptions


def meta_block(html: str) -> str:
    found = re.search(r'<dl class="work-meta">.*?</dl>\s*</dd>\s*</dl>', html, re.S)
    assert found, "no metadata block"
    return found.group(0)


def test_each_chapter_page_shows_its_own_storys_metadata(make_site):
    files = {"site.toml": 'title = "T"\n'}
    for slug, fandom, words in (("tide", "Harbour Tales", 2), ("lamp", "Lighthouse Keepers", 5)):
        files[f"content/{slug}/story.md"] = (f"---\ntitle: {slug.title()}\nrating: General Audiences\n"
                                             f"fandoms: [{fandom}]\nstatus: ongoing\n---\nA summary.\n")
        for n in range(1, 4):
            files[f"content/{slug}/{n}.md"] = chapter(f"C{n}", f"2025-01-0{n}", body=" ".join(["word"] * words))
    site = make_site(files)
    build(site, BuildOptions(output=site / "output", now=NOW))
    for slug, fandom, other, total in (("tide", "Harbour Tales", "Lighthouse Keepers", "6"),
                                       ("lamp", "Lighthouse Keepers", "Harbour Tales", "15")):
        blocks = {meta_block((site / f"output/{slug}/{n}/index.html").read_text()) for n in range(1, 4)}
        assert len(blocks) == 1  # the same block on every chapter page of the story…
        block = blocks.pop()
        assert fandom in block and other not in block  # …and it is this story's
        assert f"<dt>Words:</dt><dd>{total}</dd>" in block


def test_check_adds_no_cache(make_site):
    """`serialist check` reads the cache when there is one, and leaves none behind when there is not."""
    from conftest import STORY, run_cli

    site = make_site({"site.toml": 'title = "T"\n', "content/s/story.md": STORY, "content/s/1.md": chapter()})
    result = run_cli("check", site)
    assert result.returncode == 0, result.stderr
    assert not list((site / ".serialist-cache").glob("*.sqlite"))


def test_every_template_is_compiled_before_the_pages_are_made(make_site):
    """The base page, its partials and the macros are compiled with the page templates, before worker processes
    share them (else each worker compiles them again at its first page). One that no page uses and that does
    not compile stops nothing."""
    import shutil

    from conftest import STORY
    from generator.config import load_config
    from generator.load import load_site
    from generator.errors import ProblemLog
    from generator.pages import render_pages
    from generator.theme import builtin_themes_dir, find_theme, make_environment

    site_dir = make_site({"site.toml": 'title = "T"\ntheme = "mine"\n', "content/s/story.md": STORY,
                          "content/s/1.md": chapter()})
    shutil.copytree(builtin_themes_dir() / "default", site_dir / "themes/mine")
    (site_dir / "themes/mine/templates/_unused.html").write_text("{% if %}broken", "utf-8")
    config = load_config(site_dir)
    env = make_environment(find_theme(config), None, auto_reload=False)
    render_pages(load_site(config, ProblemLog()), env)
    compiled = {template.name for template in env.cache.values()}
    assert {"base.html", "_macros.html", "_head_meta.html", "_reader_head.html", "_settings.html"} <= compiled
    build(site_dir, BuildOptions(output=site_dir / "output", now=NOW))
    assert (site_dir / "output/s/1/index.html").is_file()


def test_the_themes_filters(tmp_path):
    from datetime import datetime, timezone

    from generator.config import SiteConfig
    from generator.theme import find_theme, make_environment

    env = make_environment(find_theme(SiteConfig(tmp_path)), None)
    when = datetime(2025, 3, 2, 18, 30, tzinfo=timezone.utc)
    template = env.from_string('{{ d | date }} {{ d | date("%d %B %Y") }} {{ n | number }} {{ d | rfc822 }}|'
                               '{{ none | date }}{{ none | rfc822 }}')
    assert template.render(d=when, n=12345, none=None) == \
        "2025-03-02 02 March 2025 12,345 Sun, 02 Mar 2025 18:30:00 +0000|"


def test_a_blurb_marks_the_title_and_summary_of_a_story_in_another_language(make_site):
    files = {"site.toml": 'title = "T"\nlanguage = "en"\n'}
    for slug, language in (("nuit", "fr"), ("night", "EN")):
        files[f"content/{slug}/story.md"] = (f"---\ntitle: {slug.title()}\nrating: General Audiences\n"
                                             f"language: {language}\ntags: [Fluff]\n---\nLe résumé.\n")
        files[f"content/{slug}/1.md"] = chapter("C1")
    site = make_site(files)
    build(site, BuildOptions(output=site / "output", now=NOW))
    for page in ("index.html", "tags/freeform/fluff/index.html"):
        html = (site / "output" / page).read_text()
        articles = re.findall(r'<article class="blurb">.*?</article>', html, re.S)
        blurbs = {slug: next(a for a in articles if f"{slug}/index.html" in a) for slug in ("nuit", "night")}
        assert re.search(r'<h3 class="blurb-title" lang="fr"><a [^>]*>Nuit</a>', blurbs["nuit"]), page
        assert '<div class="summary" lang="fr">' in blurbs["nuit"], page
        assert "lang=" not in blurbs["night"], page  # the page's own language, whatever its case
