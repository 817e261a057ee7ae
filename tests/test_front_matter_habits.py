"""Front matter as authors really type it: AO3-style tags, misspelt keys, fields of their own, YAML slips."""

from __future__ import annotations

import html
import pickle
import re
from pathlib import Path

import pytest

from conftest import STORY, chapter, run_cli, tree_bytes

SITE_TOML = 'title = "T"\nbase_url = "https://example.org/"\n'
GOOD = {
    "site.toml": SITE_TOML,
    "content/s/story.md": STORY,
    "content/s/01-one.md": chapter("One"),
}


def build(site: Path) -> dict[str, bytes]:
    run_cli("build", site, check=True)
    return tree_bytes(site / "output")


def write(site: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = site / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())


def refused(site: Path, files: dict[str, str | bytes]) -> str:
    """Build once cleanly, write `files`, build again: the build fails, with no traceback, leaving the output as it
    was; its stderr."""
    before = build(site)
    write(site, files)
    result = run_cli("build", site)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert tree_bytes(site / "output") == before, "a failed build changed the previous output"
    return result.stderr


def listed(page: bytes, css: str) -> list[str]:
    """The items of the story's `<ul class="tags CSS">` list on `page`, as shown."""
    match = re.search(rf'<ul class="tags {css}"[^>]*>(.*?)</ul>', page.decode())
    assert match, f"no list {css}"
    return [html.unescape(re.sub(r"<[^>]+>", "", item)) for item in re.findall(r"<li>(.*?)</li>", match.group(1))]


# --- 1. Tags as AO3 users type them ----------------------------------------------------------------------------------

def test_commas_separate_tags_in_every_tag_field(make_site):
    site = make_site({**GOOD, "content/s/story.md": """\
        ---
        title: A Story
        warnings: No Archive Warnings Apply, Blood
        fandoms: Star Wars, Original Work
        relationships: Rey/Finn, Poe & BB-8
        characters: Rey, Finn
        tags: Angst, Missing Scene
        ---
        A summary.
        """, "content/s/01-one.md": chapter("One", extra="warnings: Needles, Gore\n")})
    files = build(site)
    story = files["s/index.html"]
    assert listed(story, "freeform") == ["Angst", "Missing Scene"]
    assert listed(story, "fandoms") == ["Star Wars", "Original Work"]
    assert listed(story, "relationships") == ["Rey/Finn", "Poe & BB-8"]
    assert listed(story, "characters") == ["Rey", "Finn"]
    assert listed(story, "warnings archive-warnings") == ["No Archive Warnings Apply"]
    assert listed(story, "warnings content-warnings") == ["Blood"]
    assert "<li>Needles</li><li>Gore</li>" in files["s/01-one/index.html"].decode()
    for page in ("freeform/angst", "freeform/missing-scene", "fandoms/star-wars", "characters/finn",
                 "relationships/poe-bb-8", "warnings/blood"):
        assert f"tags/{page}/index.html" in files, page
    assert not any("angst-missing-scene" in name for name in files)


def test_list_items_are_split_trimmed_and_deduplicated(make_site):
    site = make_site({**GOOD, "content/s/story.md": """\
        ---
        title: A Story
        tags: [Angst, "Hurt, Comfort", " angst ", ",", "comfort ,  Fluff,"]
        characters:
          - Rey
          - "rey, , Finn"
        ---
        A summary.
        """})
    story = build(site)["s/index.html"]
    assert listed(story, "freeform") == ["Angst", "Hurt", "Comfort", "Fluff"]
    assert listed(story, "characters") == ["Rey", "Finn"]


# --- 2. Misspelt keys lose nothing; fields of one's own go under `extra:` -------------------------------------------

@pytest.mark.parametrize(("name", "line", "meant"), [
    pytest.param("content/s/01-one.md", "note_before: Thanks to my beta!", "notes_before", id="chapter-note_before"),
    pytest.param("content/s/01-one.md", "Summary: In which it rains.", "summary", id="chapter-capital"),
    pytest.param("content/s/story.md", "fandom: Star Wars", "fandoms", id="story-fandom"),
    pytest.param("content/s/story.md", "notes-after: See you soon", "notes_after", id="story-hyphen"),
    pytest.param("content/s/story.md", "chapter_planned: 12", "chapters_planned", id="story-chapter_planned"),
    pytest.param("content/s/story.md", "charcters: [Rey]", "characters", id="story-dropped-letter"),
])
def test_a_misspelt_key_is_an_error_with_its_line_and_the_key_meant(make_site, name, line, meant):
    site = make_site(GOOD)
    original = (site / name).read_text()
    broken = original.replace("title:", f"{line}\ntitle:", 1)  # line 2, before the title
    stderr = refused(site, {name: broken})
    assert f"{Path(name).name}:2: error: unknown field" in stderr, stderr
    assert f"Did you mean `{meant}`?" in stderr


def test_a_misspelt_key_in_a_one_shot_is_an_error(make_site):
    site = make_site({**GOOD, "content/one.md": "---\ntitle: One\ndate: 2025-01-01\nrelationship: A/B\n---\nText.\n"})
    result = run_cli("check", site)
    assert result.returncode == 1
    assert "one.md:4: error: unknown field `relationship`. Did you mean `relationships`?" in result.stderr


def test_an_unknown_key_of_ones_own_is_a_warning_that_points_at_extra(make_site):
    site = make_site({**GOOD, "content/s/01-one.md": chapter("One", extra="mood: rainy\n")})
    result = run_cli("build", site, check=True)
    warning = next(line for line in result.stderr.splitlines() if "01-one.md:4: warning:" in line)
    assert "`mood`" in warning and "`extra:`" in warning, result.stderr


THEMED = SITE_TOML + 'theme = "mine"\n'
STORY_PAGE = '{% extends "default/story.html" %}{% block body_class %}page-story mood-{{ story.extra.mood }} ' \
             'first-{{ story.extra.playlist[0] }} {{ story.extra.get("absent", "none") }}{% endblock %}'
CHAPTER_PAGE = '{% extends "default/chapter.html" %}{% block body_class %}page-chapter ' \
               'song-{{ chapter.extra.song }} mood-{{ story.extra.mood }} ' \
               'beta-{{ chapter.extra.credits.beta }}{% endblock %}'


def test_extra_fields_reach_the_templates_of_stories_and_chapters(make_site):
    chapters = {f"content/s/{n:03d}.md": chapter(f"C{n}", extra=f"extra:\n  song: tune-{n}\n"
                                                 "  credits: {beta: Sam}\n") for n in range(1, 211)}
    site = make_site({
        "site.toml": THEMED,
        "content/s/story.md": "---\ntitle: A Story\nextra:\n  mood: rainy\n  playlist: [first-song, other]\n"
                              "---\nA summary.\n",
        **chapters,  # more than PARALLEL_PAGES: the pages are made in worker processes
        "themes/mine/templates/story.html": STORY_PAGE,
        "themes/mine/templates/chapter.html": CHAPTER_PAGE,
    })
    result = run_cli("build", site, check=True)
    assert "warning" not in result.stderr, result.stderr
    files = tree_bytes(site / "output")
    assert b'class="page-story mood-rainy first-first-song none"' in files["s/index.html"]
    assert b'class="page-chapter song-tune-7 mood-rainy beta-Sam"' in files["s/007/index.html"]
    assert b'class="page-chapter song-tune-210 mood-rainy beta-Sam"' in files["s/210/index.html"]

    from generator.config import load_config
    from generator.errors import ProblemLog
    from generator.load import load_site

    story = load_site(load_config(site), ProblemLog()).stories[0]
    assert story.extra["playlist"] == ("first-song", "other")
    assert pickle.loads(pickle.dumps(story)) == story and hash(story) == hash(pickle.loads(pickle.dumps(story)))
    with pytest.raises(TypeError):
        story.extra["mood"] = "sunny"  # type: ignore[index]


def test_extra_in_a_one_shot_and_its_changes_rebuild_the_page(make_site):
    site = make_site({
        "site.toml": THEMED,
        "content/one.md": "---\ntitle: One\ndate: 2025-01-01\nextra: {mood: calm, song: hum}\n---\nText.\n",
        "themes/mine/templates/work.html": '{% extends "default/work.html" %}{% block body_class %}page-work '
                                           'mood-{{ story.extra.mood }}{% endblock %}',
    })
    files = build(site)
    page = next(data for name, data in files.items() if name.startswith("one/") and b"page-work" in data)
    assert b"page-work mood-calm" in page
    (site / "content/one.md").write_text("---\ntitle: One\ndate: 2025-01-01\nextra: {mood: stormy}\n---\nText.\n")
    files = build(site)
    page = next(data for name, data in files.items() if name.startswith("one/") and b"page-work" in data)
    assert b"page-work mood-stormy" in page


def test_extra_that_is_not_a_set_of_fields_is_an_error(make_site):
    site = make_site(GOOD)
    stderr = refused(site, {"content/s/01-one.md": chapter("One", extra="extra: rainy\n")})
    assert "01-one.md:4: error: `extra`: must be a set of fields of your own" in stderr
    assert "extra: {mood: rainy}" in stderr


# --- 3. YAML mistakes in plain words ---------------------------------------------------------------------------------

def two(front: str, body: str = "Text.\n") -> str:
    return f"---\n{front}---\n{body}"


MISTAKES = [
    pytest.param("content/s/02-two.md", two("title: 'Lexie's Choice'\ndate: 2025-01-02\n"), 2,
                 ["`title: \"Lexie's Choice\"`", "`title: 'Lexie''s Choice'`", "apostrophe"], id="apostrophe"),
    pytest.param("content/s/02-two.md", two("\n\ndate: 2025-01-02\ntitle: 'Lexie's Choice'\n"), 5,
                 ["`title: \"Lexie's Choice\"`"], id="apostrophe-below-blank-lines"),
    pytest.param("content/s/02-two.md",
                 two('title: Two\ndate: 2025-01-02\nnotes_before: ""Hello," she said."\nnotes_after: ""\n'), 4,
                 ["double quotes", '\n    notes_before: |\n      "Hello," she said.\n'], id="double-quotes"),
    pytest.param("content/s/02-two.md", two("title: Two\ndate: 2025-01-02\nwarnings:\n\t- Blood\n"), 5,
                 ["tab", "spaces"], id="tab"),
    pytest.param("content/s/story.md", two("title: S\nchapters_planned: ?\n", "Summary.\n"), 3,
                 ["chapters_planned: 12", "leave the line out", "`3/?`"], id="planned-unknown"),
    pytest.param("content/s/02-two.md",
                 two("title: Two\ndate: 2025-01-02\n\nIt was a dark night.\n\n", "\nMorning came.\n"), 1,
                 ["the front matter that starts on line 1 is not closed: add a line `---` after the last field "
                  "(line 3)", "line 5 (`It was a dark night.`)"], id="unclosed-before-scene-break"),
    pytest.param("content/s/02-two.md",
                 two("title: Two\ndate: 2025-01-02\nIt was late, and she said: go.\n", "\nMorning came.\n"), 1,
                 ["not closed", "(line 3)", "line 4 (`It was late, and she said: go.`)"],
                 id="unclosed-prose-with-colon"),
    pytest.param("content/s/02-two.md", "---\ntitle: Two\ndate: 2025-01-02\n\nNo scene break below.\n", 1,
                 ["not closed: add a line `---` after the last field (line 3)", "line 5"],
                 id="unclosed-to-the-end"),
    pytest.param("content/s/02-two.md", two("title: Two\ndate: 2026-11-31\n"), 3,
                 ["`2026-11-31` is not a date: November 2026 has 30 days"], id="november-31"),
    pytest.param("content/s/02-two.md", two("title: Two\ndate: '2025-02-29 10:00'\n"), 3,
                 ["February 2025 has 28 days"], id="february-29"),
]


@pytest.mark.parametrize(("name", "text", "line", "expected"), MISTAKES)
def test_yaml_mistakes_are_explained_with_the_line_and_the_fix(make_site, name, text, line, expected):
    site = make_site(GOOD)
    stderr = refused(site, {name: text})
    assert f"{Path(name).name}:{line}: error:" in stderr, stderr
    assert "invalid YAML" not in stderr and "mapping" not in stderr and "scanning" not in stderr, stderr
    for fragment in expected:
        assert fragment in stderr, stderr


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_a_file_saved_as_utf16_is_named_and_the_fix_given(make_site, encoding):
    site = make_site(GOOD)
    stderr = refused(site, {"content/s/02-two.md": chapter("Two", "2025-01-02", "Café — ça va.").encode(encoding)})
    assert "02-two.md:1: error: the file is saved as UTF-16" in stderr, stderr
    assert "save it as UTF-8" in stderr
    assert "byte 0x" not in stderr


def test_a_file_saved_as_utf16_of_plain_ascii_is_refused_too(make_site):
    # Its bytes happen to be valid UTF-8 (letters and zero bytes): it must still not be read as such.
    site = make_site(GOOD)
    stderr = refused(site, {"content/s/02-two.md": chapter("Two", "2025-01-02", "Plain words.").encode("utf-16-le")})
    assert "UTF-16" in stderr


def test_every_slip_in_one_file_is_reported_at_once(make_site):
    site = make_site(GOOD)
    stderr = refused(site, {"content/s/02-two.md": two("title: 'Lexie's Choice'\ndate: 2025-01-02\n"
                                                       "notes_after: \"Bye \"now\"\"\n")})
    assert "02-two.md:2: error:" in stderr and "02-two.md:4: error:" in stderr, stderr


def test_the_text_of_a_block_is_not_taken_for_a_slip(make_site):
    site = make_site(GOOD)
    stderr = refused(site, {"content/s/02-two.md": two("date: 2025-01-02\nnotes_before: |\n  Mood: 'rainy' today\n"
                                                       "  Said: \"hi\" twice\ntitle: 'Lexie's Choice'\n")})
    assert re.findall(r"02-two\.md:(\d+): error:", stderr) == ["6"], stderr


def test_values_quoted_the_yaml_way_arrive_as_written(make_site):
    # What the explanations above look for, written correctly: nothing is taken for a mistake.
    site = make_site({
        "site.toml": THEMED,
        "content/s/story.md": STORY,
        "content/s/01-one.md": two(
            "title: 'Lexie''s Choice'\ndate: 2025-01-01\nsummary: \"She said \\\"hi\\\"\" # a comment\n"
            "notes_before: |\n  \"Hello,\" she said. 'Twas 'the' night.\n  \tTabbed inside the block.\n"
            "extra:\n  quote: 'It''s \"fine\"'\n"),
        "themes/mine/templates/chapter.html": '{% extends "default/chapter.html" %}{% block body_class %}'
                                              'page-chapter {{ chapter.extra.quote }}{% endblock %}',
    })
    result = run_cli("build", site, check=True)
    assert "warning" not in result.stderr, result.stderr
    page = html.unescape((site / "output/s/01-one/index.html").read_text())
    assert 'class="page-chapter It\'s "fine""' in page
    assert "Lexie's Choice" in page and "She said \u201chi\u201d" in page and "Tabbed inside the block." in page
