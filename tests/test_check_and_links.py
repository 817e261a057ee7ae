"""`serialist check`, `build --strict`, and links between chapters."""

from __future__ import annotations

import re

import feedparser
import pytest

from conftest import STORY, chapter, run_cli, tree_bytes

BASE = {"site.toml": 'title = "T"\nbase_url = "https://example.org/site/"\n'}


def test_check_clean_site_exits_zero_and_writes_nothing(make_site):
    site = make_site({**BASE, "content/s/story.md": STORY, "content/s/01-one.md": chapter()})
    before = tree_bytes(site)
    result = run_cli("check", site)
    assert result.returncode == 0, result.stderr
    assert "no problems" in result.stdout
    assert tree_bytes(site) == before
    assert not (site / "output").exists()


CHECK_CASES = [
    pytest.param({"content/s/story.md": "---\ntitle: S\nmood: x\n---\n"}, "story.md:3: warning:",
                 "put it under `extra:`", id="unknown-key"),
    pytest.param({"content/s/02-two.md": chapter("Two", "2024-06-01")}, "02-two.md:3: warning:",
                 "dated before chapter 1", id="dates-out-of-order"),
    pytest.param({"content/s/story.md": "---\ntitle: S\nchapters_planned: 1\n---\n"}, "story.md:3: warning:",
                 "set `status: complete`", id="planned-equals-posted-not-complete"),
    pytest.param({"content/s/story.md": "---\ntitle: S\nstatus: complete\n---\n",
                  "content/s/02-two.md": chapter("Two", "2030-01-01")}, "02-two.md:3: warning:",
                 "is scheduled", id="complete-with-scheduled"),
    pytest.param({"content/s/story.md": "---\ntitle: S\nstatus: complete\n---\n",
                  "content/s/02-two.md": "---\ntitle: Two\ndraft: true\n---\nText\n"}, "02-two.md:3: warning:",
                 "is a draft", id="complete-with-draft"),
    pytest.param({"content/s/story.md": "---\ntitle: S\nwarnings: [Major Charater Death]\n---\n"},
                 "story.md:3: warning:", "`Major Character Death`", id="misspelt-archive-warning"),
    pytest.param({"content/s/02-two.md": "---\ntitle: Two\ndate: 2025-02-01\n---\n\n"}, "02-two.md:",
                 "has no text", id="empty-chapter"),
    pytest.param({"content/s/02-two.md": chapter("Two", "2025-02-01", body="See [there](../nowhere/x.png).")},
                 "02-two.md:5: warning:", "leads nowhere", id="link-nowhere"),
]


@pytest.mark.parametrize(("files", "where", "text"), CHECK_CASES)
def test_check_warns_and_strict_fails(make_site, files, where, text):
    site = make_site({**BASE, "content/s/story.md": STORY, "content/s/01-one.md": chapter(), **files})
    result = run_cli("check", site)
    assert result.returncode == 0, result.stderr
    assert where in result.stderr and text in result.stderr, result.stderr
    strict = run_cli("check", site, "--strict")
    assert strict.returncode == 1
    assert where.replace("warning", "error") in strict.stderr
    build = run_cli("build", site, "--strict")
    assert build.returncode == 1 and not (site / "output").exists()
    assert run_cli("build", site).returncode == 0


def test_planned_lower_than_posted_is_an_error(make_site):
    site = make_site({**BASE, "content/s/story.md": "---\ntitle: S\nchapters_planned: 1\n---\n",
                      "content/s/01-one.md": chapter(), "content/s/02-two.md": chapter("Two", "2025-02-01")})
    result = run_cli("check", site)
    assert result.returncode == 1
    assert "story.md:3: error: `chapters_planned` is 1 but 2 chapters" in result.stderr


LINKED = {
    **BASE,
    "content/s/story.md": STORY,
    "content/s/01-one.md": chapter("One", body="Before.\n\nAs told [in the letter](02-two.md#the-letter), "
                                               "and [the other story](../t/story.md)."),
    "content/s/02-two.md": chapter("Two", "2025-01-02", body="## The letter\n\nBack to [one](01-one.md)."),
    "content/t/story.md": "---\ntitle: T\n---\nSee [the first story](../s/01-one.md).\n",
    "content/t/1.md": chapter("Only"),
}


def test_links_between_chapters_are_rewritten_everywhere(make_site):
    site = make_site(LINKED)
    run_cli("build", site, check=True)
    out = site / "output"
    one = (out / "s/01-one/index.html").read_text()
    assert 'href="../../s/02-two/index.html#the-letter"' in one
    assert 'href="../../t/index.html"' in one
    work = (out / "s/all/index.html").read_text()
    assert 'href="#the-letter"' in work and 'href="#chapter-01-one"' in work
    assert 'id="the-letter"' in work
    assert 'id="chapter-01-one"' in work
    home = (out / "index.html").read_text()
    assert 'href="s/01-one/index.html"' in home
    feed = feedparser.parse((out / "s/feed.xml").read_bytes())
    assert feed.bozo == 0
    html = " ".join(e.description for e in feed.entries)
    assert "https://example.org/site/s/02-two/#the-letter" in html
    assert "https://example.org/site/t/" in html
    assert not re.search(r'href="[^"]*\.md', html)
    assert not re.search(r'href="[^"]*\.md', one + work + home)


def test_link_to_missing_file_is_an_error_with_line(make_site):
    site = make_site({**LINKED, "content/s/02-two.md": chapter("Two", "2025-01-02",
                                                               body="Para.\n\nA [broken](03-three.md) link.")})
    result = run_cli("build", site)
    assert result.returncode == 1
    assert "02-two.md:7: error: the link to `03-three.md` leads nowhere" in result.stderr


def test_link_to_unpublished_chapter_is_dropped_with_warning(make_site):
    site = make_site({**LINKED, "content/s/03-three.md": "---\ntitle: Three\ndraft: true\n---\nSECRET-TEXT\n",
                      "content/s/02-two.md": chapter("Two", "2025-01-02", body="Soon: [next](03-three.md).")})
    result = run_cli("build", site)
    assert result.returncode == 0, result.stderr
    assert "02-two.md:5: warning:" in result.stderr and "not published" in result.stderr
    page = (site / "output/s/02-two/index.html").read_text()
    assert "03-three" not in page and "next" in page


@pytest.mark.parametrize("href", ["a%00b.md", "x" * 5000 + ".md", "a%00b.png"])
def test_unusable_link_names_are_reported_not_crashed(make_site, href):
    site = make_site({**BASE, "content/s/story.md": STORY, "content/s/01-one.md": chapter(body=f"A [link]({href}).")})
    result = run_cli("check", site)
    assert "Traceback" not in result.stderr
    assert "01-one.md:5: warning:" in result.stderr and "usable file name" in result.stderr


def test_absolute_urls_of_non_ascii_names_are_percent_encoded(make_site):
    """Canonical links, OpenGraph, feeds and the sitemap hold URLs, so a story or chapter named in another
    script is percent-encoded there (UTF-8), as the dev server and GitHub Pages decode it; links inside the
    pages stay as they are (a browser encodes them)."""
    import functools
    import json
    import threading
    import urllib.request
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    site = make_site({**BASE, "content/café/story.md": STORY,
                      "content/café/01-début.md": chapter("Début", body="See [the next](02-fin.md)."),
                      "content/café/02-fin.md": chapter("Fin", "2025-01-02")})
    run_cli("build", site, check=True)
    out = site / "output"
    page = (out / "café/01-début/index.html").read_text("utf-8")
    url = "https://example.org/site/caf%C3%A9/01-d%C3%A9but/"
    assert f'<link rel="canonical" href="{url}">' in page and f'<meta property="og:url" content="{url}">' in page
    assert json.loads(re.search(r'<script type="application/ld\+json">\s*(.*?)\s*</script>', page, re.S).group(1))
    assert 'href="../../café/02-fin/index.html"' in page
    for name, self_link in (("feed.xml", "https://example.org/site/feed.xml"),
                            ("café/feed.xml", "https://example.org/site/caf%C3%A9/feed.xml")):
        feed = feedparser.parse((out / name).read_bytes())
        assert feed.bozo == 0 and url in {entry.link for entry in feed.entries}
        assert any(link.href == self_link and link.rel == "self" for link in feed.feed.links)
        assert all(link.isascii() for entry in feed.entries for link in [entry.link])
        assert "https://example.org/site/caf%C3%A9/02-fin/" in " ".join(e.description for e in feed.entries)
    sitemap = (out / "sitemap.xml").read_text("utf-8")
    assert f"<loc>{url}</loc>" in sitemap and "é" not in sitemap
    # What the URL names is the page, on a static server that decodes paths as GitHub Pages does.
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(SimpleHTTPRequestHandler, directory=str(out)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        local = f"http://127.0.0.1:{server.server_address[1]}/" + url.removeprefix("https://example.org/site/")
        with urllib.request.urlopen(local, timeout=30) as response:
            assert response.status == 200 and f'href="{url}"' in response.read().decode("utf-8")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
