"""`serialist new story` and `serialist new chapter` write files that build as they are."""

from __future__ import annotations

from conftest import run_cli


def test_new_story_and_chapters_build(make_site):
    site = make_site({"site.toml": 'title = "T"\nbase_url = "https://example.org/"\n', "content/.keep": ""})
    result = run_cli("new", "story", "my-story", "--title", 'A "Quoted": Title', "--site", site)
    assert result.returncode == 0, result.stderr
    assert (site / "content/my-story/story.md").is_file()
    for expected in ("01-chapter-1.md", "02-the-storm.md"):
        title = ["--title", "The Storm"] if "storm" in expected else []
        result = run_cli("new", "chapter", "my-story", *title, "--site", site)
        assert result.returncode == 0, result.stderr
        assert (site / "content/my-story" / expected).is_file(), result.stdout
    # New chapters are drafts: the story is not published until one is.
    built = run_cli("build", site, "--strict")
    assert built.returncode == 0, built.stderr
    assert not (site / "output/my-story").exists()
    built = run_cli("build", site, "--drafts")
    assert built.returncode == 0, built.stderr
    page = (site / "output/my-story/02-the-storm/index.html").read_text()
    assert "Chapter 2: The Storm" in page
    assert "A &#34;Quoted&#34;: Title" in page


def test_new_refuses_bad_names_and_existing_files(make_site):
    site = make_site({"content/s/story.md": "---\ntitle: S\n---\n"})
    assert "not a usable story name" in run_cli("new", "story", "../evil", "--site", site).stderr
    assert "already exists" in run_cli("new", "story", "s", "--site", site).stderr
    missing = run_cli("new", "chapter", "nope", "--site", site)
    assert missing.returncode == 1 and "serialist new story nope" in missing.stderr


def test_new_chapter_writes_nothing_outside_the_site(make_site, tmp_path):
    site = make_site({"content/s/story.md": "---\ntitle: S\n---\n"})
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "x").mkdir(parents=True)
    (elsewhere / "x/story.md").write_text("---\ntitle: X\n---\n")
    (site / "content/linked").symlink_to(elsewhere / "x")
    for story in ("../../elsewhere/x", "linked", ".."):
        result = run_cli("new", "chapter", story, "--site", site)
        assert result.returncode == 1 and "Traceback" not in result.stderr, story
    assert sorted(p.name for p in (elsewhere / "x").iterdir()) == ["story.md"]
    assert sorted(p.name for p in (site / "content").iterdir()) == ["linked", "s"]
