"""Front matter as authors really type it: AO3-style tags, misspelt keys, fields of their own, YAML slips."""

from __future__ import annotations

import html
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
