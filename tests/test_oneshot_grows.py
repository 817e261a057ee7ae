"""A one-shot that grows a second chapter: `serialist new chapter <one-shot>`.

The one-shot becomes a story folder (story.md, its text as chapter 1, its files moved in), the new chapter is a
draft, and the built site keeps every address, the feed guid of the text, its images and its work information.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from conftest import run_cli, tree_bytes

# A 1×1 PNG.
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c63f8cfc0f01f0005000201e2276a5c0000000049454e44ae426082")

ONESHOT = """\
---
# A one-shot, for now.
title: Almost
author: Wren Halloway
rating: Teen And Up Audiences
warnings: [Major Character Death, A storm at sea]  # an archive warning and a content warning
fandoms: [Original Work]
relationships: [Odile & Penhallow]
characters:
  - Odile
  - Penhallow
tags: [Ferries, Open Ending]
series: Lanternfall Coast
status: complete
language: en-GB
date: 2025-06-01
updated: 2025-06-03 18:30
cover: almost.assets/cover.png
summary: "The last ferry, nearly. With [a chart](almost.assets/chart.pdf)."
notes_before: |
  Read [the chart](almost.assets/chart.pdf) first.
notes_after: |
  Thank you for reading.

  I *might* add another chapter.
---
The ferry left at ten. ![The harbour](almost.assets/images/harbour.png)

<img src="almost.assets/images/old map.png" alt="An old map">

She read the [chart][c], and a note.[^1] [Back to the top](almost.md#top)

[c]: <almost.assets/chart.pdf>
[^1]: A footnote with [a link](https://example.org/x).
"""


def oneshot_site(make_site, text: str = ONESHOT, name: str = "almost") -> Path:
    return make_site({
        "site.toml": 'title = "T"\nbase_url = "https://example.org/"\n',
        f"content/{name}.md": text,
        f"content/{name}.assets/cover.png": PNG,
        f"content/{name}.assets/images/harbour.png": PNG + b"harbour",
        f"content/{name}.assets/images/old map.png": PNG + b"old map",
        f"content/{name}.assets/chart.pdf": b"%PDF-1.4 chart",
        f"content/{name}.assets/.hidden-note": b"not published, but kept",
    })


def build(site: Path, *options: str) -> dict[str, bytes]:
    result = run_cli("build", site, *options)
    assert result.returncode == 0, result.stderr
    built = tree_bytes(site / "output")
    built.pop(".serialist-manifest")
    return built


def element(html: str, start: str) -> str:
    """The element that starts with `start` (its tag is the first word), nested ones of the same tag included."""
    tag = start[1:].split()[0].rstrip(">")
    begin = html.index(start)
    depth, at = 0, begin
    for match in re.compile(rf"<(/?){tag}\b[^>]*>").finditer(html, begin):
        depth += -1 if match.group(1) else 1
        if depth == 0:
            at = match.end()
            break
    return html[begin:at]


def page(files: dict[str, bytes], path: str) -> str:
    return files[path].decode("utf-8")


def test_a_oneshot_grows_a_second_chapter_and_keeps_every_address(make_site):
    site = oneshot_site(make_site)
    before = build(site)
    assert "almost/chapter-1/index.html" in before and "almost/images/old map.png" in before

    result = run_cli("new", "chapter", "almost", "--site", site)
    assert result.returncode == 0, result.stderr
    content = site / "content"
    folder = content / "almost"
    said = result.stdout
    # What was done, file by file.
    for line in (f"Created {folder}{os.sep}", f"Wrote {folder / 'story.md'}", f"Wrote {folder / '01-chapter-1.md'}",
                 f"Moved {content / 'almost.assets/images/old map.png'} to {folder / 'images/old map.png'}",
                 f"Moved {content / 'almost.assets/.hidden-note'} to {folder / '.hidden-note'}",
                 f"Removed {content / 'almost.md'}", f"Removed {content / 'almost.assets'}{os.sep}",
                 f"Created {folder / '02-chapter-2.md'}"):
        assert line in said, said
    assert not (content / "almost.md").exists() and not (content / "almost.assets").exists()
    assert sorted(tree_bytes(content)) == ["almost/.hidden-note", "almost/01-chapter-1.md", "almost/02-chapter-2.md",
                                           "almost/chart.pdf", "almost/cover.png", "almost/images/harbour.png",
                                           "almost/images/old map.png", "almost/story.md"]
    assert (folder / ".hidden-note").read_bytes() == b"not published, but kept"
    story = (folder / "story.md").read_text("utf-8")
    assert "cover: cover.png" in story and story.endswith("The last ferry, nearly. With [a chart](chart.pdf).\n")
    assert "# an archive warning and a content warning" in story  # the author's lines, comments and all
    first = (folder / "01-chapter-1.md").read_text("utf-8")
    assert first.startswith("---\nslug: chapter-1")
    assert "![The harbour](images/harbour.png)" in first and '<img src="images/old map.png"' in first
    assert "[c]: <chart.pdf>" in first and "(01-chapter-1.md#top)" in first
    assert "draft: true" in (folder / "02-chapter-2.md").read_text("utf-8")

    result = run_cli("build", site)
    assert result.returncode == 0, result.stderr
    # The story was marked complete: the author is reminded, and the draft is not published.
    assert "the story is marked `status: complete` but this chapter is a draft" in result.stderr
    after = tree_bytes(site / "output")
    after.pop(".serialist-manifest")
    # Every address published before is there still, and nothing else is published: the new chapter is a draft.
    assert sorted(after) == sorted(before)
    for name in ("almost/cover.png", "almost/images/harbour.png", "almost/images/old map.png", "almost/chart.pdf"):
        assert after[name] == before[name]

    # The story page: the same work information, summary, cover and notes.
    was, now = page(before, "almost/index.html"), page(after, "almost/index.html")
    for start in ('<dl class="work-meta">', '<section class="summary">', '<img class="cover"',
                  '<table class="chapter-index">'):
        assert element(now, start) == element(was, start), start
    assert "Chapters:</dt><dd class=\"chapter-count\">1/1</dd>" in now

    # The text's page keeps its address, its text, notes, warnings and images (AO3's chapter 1 of the work).
    was, now = page(before, "almost/chapter-1/index.html"), page(after, "almost/chapter-1/index.html")
    for start in ('<div class="chapter-text">', '<section class="notes notes-before">',
                  '<section class="notes notes-after"', '<div class="chapter-warnings">', '<dl class="work-meta">'):
        assert element(now, start) == element(was, start), start
    text = element(now, '<div class="chapter-text">')
    for src in re.findall(r'src="([^"]*)"', text):
        assert os.path.normpath(f"almost/chapter-1/{src}").replace("%20", " ") in after, src
    assert 'src="../../almost/images/old%20map.png"' in text and 'href="../../almost/chart.pdf"' in text
    assert element(page(after, "almost/all/index.html"), '<div class="chapter-text">') == \
        element(page(before, "almost/all/index.html"), '<div class="chapter-text">')

    # The feeds carry the text under the same guid and link.
    for feed in ("feed.xml", "almost/feed.xml"):
        for xml in (page(before, feed), page(after, feed)):
            assert xml.count('<guid isPermaLink="false">serialist:almost/chapter-1</guid>') == 1, feed
            assert xml.count("<link>https://example.org/almost/chapter-1/</link>") == 1, feed

    # Published, the new chapter is chapter 2 of the same story.
    drafts = build(site, "--drafts")
    assert "DRAFT: this chapter is not published." in page(drafts, "almost/02-chapter-2/index.html")


def test_a_story_folder_of_that_name_is_never_overwritten(make_site):
    site = oneshot_site(make_site)
    (site / "content/almost").mkdir()
    (site / "content/almost/notes.txt").write_text("mine", "utf-8")
    content = tree_bytes(site / "content")
    result = run_cli("new", "chapter", "almost", "--site", site)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "already exists" in result.stderr and "nothing was changed" in result.stderr
    assert tree_bytes(site / "content") == content


def test_text_whose_links_cannot_be_rewritten_safely_is_left_alone(make_site):
    # A code span that shows Markdown: rewriting it would change what readers see, so nothing is done.
    site = oneshot_site(make_site, ONESHOT + "\nWrite `![x](almost.assets/images/harbour.png)` for an image.\n")
    content = tree_bytes(site / "content")
    result = run_cli("new", "chapter", "almost", "--site", site)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "cannot be rewritten" in result.stderr and "nothing was changed" in result.stderr
    assert tree_bytes(site / "content") == content


def test_a_move_that_would_lose_files_is_undone(make_site, tmp_path):
    # The one-shot's files are a link to a folder: moving the link would not move them into the story folder.
    site = oneshot_site(make_site, name="elsewhere")
    (site / "content/almost.md").write_text(ONESHOT, "utf-8")
    (site / "content/almost.assets").symlink_to("elsewhere.assets", target_is_directory=True)
    (site / "content/elsewhere.md").unlink()
    before = sorted(os.listdir(site / "content"))
    result = run_cli("new", "chapter", "almost", "--site", site)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "files" in result.stderr and "nothing was changed" in result.stderr
    assert sorted(os.listdir(site / "content")) == before
    assert (site / "content/almost.md").read_text("utf-8") == ONESHOT
    assert not (site / "content/almost").exists()


def test_a_oneshot_with_its_own_url_name_keeps_it(make_site):
    text = ONESHOT.replace("title: Almost\n", "title: Almost\nslug: nearly\n").replace("complete", "ongoing")
    site = oneshot_site(make_site, text)
    site.joinpath("content/other").mkdir()
    site.joinpath("content/other/story.md").write_text("---\ntitle: Other\n---\n", "utf-8")
    site.joinpath("content/other/1-a.md").write_text(
        "---\ndate: 2025-07-01\n---\nAs [before](../almost.md).\n", "utf-8")
    before = build(site)
    assert "nearly/chapter-1/index.html" in before
    result = run_cli("new", "chapter", "almost", "--title", "The Return", "--site", site)
    assert result.returncode == 0, result.stderr
    folder = site / "content/nearly"
    assert (folder / "02-the-return.md").is_file() and not (folder / "story.md").read_text().count("slug")
    # A link from another story to the one-shot's file is named, with what to write instead.
    assert f"Note: {site / 'content/other/1-a.md'}:4 names almost.md" in result.stdout
    assert "nearly/01-chapter-1.md" in result.stdout
    (site / "content/other/1-a.md").write_text(
        "---\ndate: 2025-07-01\n---\nAs [before](../nearly/01-chapter-1.md).\n", "utf-8")
    after = build(site, "--strict")
    assert sorted(after) == sorted(before)
    assert 'href="../../nearly/chapter-1/index.html"' in page(after, "other/1-a/index.html")
