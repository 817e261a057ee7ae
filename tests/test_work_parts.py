"""A very long whole-work page is split into parts with navigation between them."""

from __future__ import annotations

import json
import re

from conftest import STORY, chapter, run_cli


def test_long_work_is_split_into_parts(make_site):
    words = " ".join(["word"] * 60_000)
    files = {"site.toml": 'title = "T"\nbase_url = "https://example.org/"\n', "content/s/story.md": STORY}
    for n in range(1, 11):  # 600,000 words
        files[f"content/s/{n:02d}.md"] = chapter(f"C{n}", body=f"Start of {n}. {words}" +
                                                 (" [back to one](01.md) [to nine](09.md)" if n == 8 else ""))
    site = make_site(files)
    run_cli("build", site, check=True)
    out = site / "output/s/all"
    pages = [out / "index.html", *(out / str(n) / "index.html" for n in range(2, 5))]
    assert [p.is_file() for p in pages] == [True, True, True, True]
    assert not (out / "5").exists()
    texts = [p.read_text() for p in pages]
    for number, text in enumerate(texts, start=1):
        assert f"This is part {number}" in text
        assert len(re.findall(r'class="chapter" id=', text)) <= 4  # at most about 200,000 words a page
    assert "Start of 1." in texts[0] and "Start of 10." in texts[3]
    assert 'href="../../s/all/2/index.html"' in texts[0] and 'href="../../../s/all/index.html"' in texts[1]
    assert "Continue with part 2" in texts[0] and "Continue with part" not in texts[3]
    assert "is pending" in texts[3] and "is pending" not in texts[0]
    # Links to chapters on the same part are anchors; to other parts, the chapter's page.
    part_with_eight = next(t for t in texts if "Start of 8." in t)
    assert "Start of 9." in part_with_eight
    assert 'href="#chapter-09"' in part_with_eight  # chapters 8 and 9 share a part
    assert 'href="../../../s/01/index.html"' in part_with_eight  # chapter 1 is on part 1: its own page
    titles = [re.search(r"<title>(.*?)</title>", t).group(1) for t in texts]
    assert len(set(titles)) == 4
    # Each part's structured data lists the chapters on it, not the whole book again.
    listed = []
    for text in texts:
        book = json.loads(re.search(r'<script type="application/ld\+json">(.*?)</script>', text, re.S).group(1))
        listed.append([part["position"] for part in book["hasPart"]])
    assert [n for numbers in listed for n in numbers] == list(range(1, 11))
    assert all(len(numbers) <= 4 for numbers in listed)


def test_short_work_is_one_page(make_site):
    site = make_site({"site.toml": 'title = "T"\n', "content/s/story.md": STORY, "content/s/1.md": chapter()})
    run_cli("build", site, check=True)
    assert (site / "output/s/all/index.html").is_file()
    assert not (site / "output/s/all/2").exists()
    assert "This is part" not in (site / "output/s/all/index.html").read_text()
