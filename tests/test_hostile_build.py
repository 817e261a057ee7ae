"""What an unlucky or hostile input can do to a build: a stale "Up to date", a template cache on a full disk,
memory that grows with the largest files."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import NOW, STORY, chapter, run_cli, tmpfs
from generator.build import build
from generator.cache import CACHE_DIR
from generator.config import BuildOptions
from generator.output import MANIFEST
from generator.stamp import input_stamp

BASE = {"site.toml": 'title = "T"\nbase_url = "https://example.org/"\n'}


def built(site: Path):
    return build(site, BuildOptions(output=site / "output", now=NOW))


# --- the up-to-date shortcut ------------------------------------------------------------------------------------

def test_an_edit_in_a_story_folder_linked_into_content_is_built(make_site):
    site = make_site({**BASE, "drafts/s/story.md": STORY, "drafts/s/1.md": chapter(body="FIRST-TEXT")})
    (site / "content").mkdir()
    (site / "content/s").symlink_to(site / "drafts/s")
    built(site)
    (site / "drafts/s/1.md").write_text(chapter(body="SECOND-TEXT"))
    result = built(site)
    assert not result.up_to_date
    assert b"SECOND-TEXT" in (site / "output/s/1/index.html").read_bytes()
    assert built(site).up_to_date


def test_an_edit_to_a_template_in_a_linked_folder_is_built(make_site):
    site = make_site({
        "site.toml": 'title = "T"\nbase_url = "https://example.org/"\ntheme = "mine"\n',
        "content/s/story.md": STORY, "content/s/1.md": chapter(),
        "shared/templates/home.html": '{% extends "default/home.html" %}{% block main %}FIRST{% endblock %}',
    })
    (site / "themes/mine").mkdir(parents=True)
    (site / "themes/mine/templates").symlink_to(site / "shared/templates")
    built(site)
    (site / "shared/templates/home.html").write_text(
        '{% extends "default/home.html" %}{% block main %}SECOND{% endblock %}')
    assert not built(site).up_to_date
    assert b"SECOND" in (site / "output/index.html").read_bytes()
    assert built(site).up_to_date


def test_links_in_a_loop_are_stamped_once(tmp_path):
    """Each folder is stamped once, not 2 ** 40 times (the build then reports the loops as errors)."""
    site = tmp_path / "site"
    (site / "content/s").mkdir(parents=True)
    (site / "content/s/1.md").write_text("text")
    before = input_stamp(site, [site / "content"], [], "")
    for loop in ("loop", "again"):
        (site / "content/s" / loop).symlink_to(site / "content")
    after = input_stamp(site, [site / "content"], [], "")
    assert after not in ("", before)
    (site / "content/s/1.md").write_text("text, longer")
    assert input_stamp(site, [site / "content"], [], "") not in ("", after)


def test_a_folder_linked_from_outside_the_site_defeats_the_shortcut(tmp_path):
    """Its files are not walked (nothing outside the site is looked at), so the stamp cannot vouch for them."""
    site, outside = tmp_path / "site", tmp_path / "outside"
    (site / "content").mkdir(parents=True)
    outside.mkdir()
    (outside / "1.md").write_text("text")
    assert input_stamp(site, [site / "content"], [], "") != ""
    (site / "content/s").symlink_to(outside)
    assert input_stamp(site, [site / "content"], [], "") == ""


def test_folders_nested_thousands_deep_are_stamped(tmp_path):
    folder = tmp_path / "site/content"
    folder.mkdir(parents=True)
    deepest = folder
    for _ in range(1200):  # (deeper than Python's recursion limit)
        deepest /= "a"
        deepest.mkdir()
    try:
        (deepest / "x.txt").write_text("one")
        before = input_stamp(tmp_path / "site", [folder], [], "")
        (deepest / "x.txt").write_text("two")
        assert input_stamp(tmp_path / "site", [folder], [], "") not in ("", before)
    finally:  # (by hand: pytest's own clean-up of old folders would recurse as deep, and fail)
        (deepest / "x.txt").unlink(missing_ok=True)
        while deepest != folder:
            deepest.rmdir()
            deepest = deepest.parent


def test_an_edit_that_keeps_the_size_and_the_time_is_built(make_site):
    """`cp -p`, `rsync -t`, `touch -r` and unpacking an archive give a file its old modification time back."""
    site = make_site({**BASE, "content/s/story.md": STORY, "content/s/1.md": chapter(body="AAAA-TEXT")})
    source = site / "content/s/1.md"
    built(site)
    before = source.stat()
    source.write_text(chapter(body="BBBB-TEXT"))
    os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert source.stat().st_size == before.st_size
    assert not built(site).up_to_date
    assert b"BBBB-TEXT" in (site / "output/s/1/index.html").read_bytes()


def test_a_file_deleted_from_the_output_comes_back(make_site):
    site = make_site({**BASE, "content/s/story.md": STORY, "content/s/1.md": chapter()})
    built(site)
    home = (site / "output/index.html").read_bytes()
    (site / "output/index.html").unlink()
    assert not built(site).up_to_date
    assert (site / "output/index.html").read_bytes() == home
    assert built(site).up_to_date


def test_a_file_edited_in_the_output_is_made_again(make_site):
    site = make_site({**BASE, "content/s/story.md": STORY, "content/s/1.md": chapter()})
    built(site)
    page = site / "output/s/1/index.html"
    good, before = page.read_bytes(), page.stat()
    with open(page, "r+b") as handle:  # in place, the same size, its time put back
        handle.write(b"X" * 20)
    os.utime(page, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert not built(site).up_to_date
    assert page.read_bytes() == good


def test_a_state_of_the_kind_before_takes_the_output_as_it_is(make_site):
    """A state saved before the output's stamp had its files' stats in it (a stamp of the manifest alone) does
    not make the next build take the output for one edited by hand, and write every file again."""
    import json

    from generator.cache import digest
    from generator.stamp import _path

    site = make_site({**BASE, "content/s/story.md": STORY, "content/s/1.md": chapter(),
                      "content/s/2.md": chapter("Two", "2025-01-02")})
    built(site)
    state = json.loads(_path(site, site / "output").read_text())
    state["output"] = digest((site / "output" / MANIFEST).read_bytes())
    _path(site, site / "output").write_text(json.dumps(state))
    page = site / "output/s/1/index.html"
    before = page.stat().st_mtime_ns
    (site / "content/s/2.md").write_text(chapter("Two", "2025-01-02", body="Other words here."))  # as many
    assert built(site).files_written
    assert page.stat().st_mtime_ns == before


# --- the template cache -----------------------------------------------------------------------------------------

def test_a_template_cache_that_cannot_be_written_does_not_fail_the_build(make_site, monkeypatch):
    import jinja2.bccache

    def full(self, f):  # noqa: ANN001, ARG001
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(jinja2.bccache.Bucket, "write_bytecode", full)
    site = make_site({**BASE, "content/s/story.md": STORY, "content/s/1.md": chapter()})
    result = built(site)
    assert result.files_written and (site / "output/index.html").is_file()
    assert not [p for p in (site / CACHE_DIR / "jinja").iterdir()]  # nothing half-written left behind


def test_a_damaged_compiled_template_is_compiled_afresh(make_site):
    from jinja2.bccache import bc_magic

    site = make_site({**BASE, "content/s/story.md": STORY, "content/s/1.md": chapter()})
    run_cli("build", site, check=True)
    compiled = list((site / CACHE_DIR / "jinja").iterdir())
    assert compiled
    for path in compiled:
        path.write_bytes(bc_magic + b"not a pickle")
    (site / "content/s/1.md").write_text(chapter(body="Changed."))
    result = run_cli("build", site)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert b"Changed." in (site / "output/s/1/index.html").read_bytes()


@pytest.fixture
def full_cache_disk(make_site):
    """A site whose `.serialist-cache/` is a small tmpfs, full (root only)."""
    site = make_site({**BASE, "content/s/story.md": STORY, "content/s/1.md": chapter()})
    disk = site / CACHE_DIR
    disk.mkdir()
    with tmpfs(disk, "64k"):
        filler = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(filler, b"\0" * 4096):
                pass
        except OSError:
            pass
        finally:
            os.close(filler)
        yield site


def test_a_full_disk_under_the_cache_does_not_fail_the_build(full_cache_disk):
    site = full_cache_disk
    result = run_cli("build", site)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert (site / "output/s/1/index.html").is_file()
    (site / "content/s/1.md").write_text(chapter(body="Changed."))
    result = run_cli("build", site)
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert b"Changed." in (site / "output/s/1/index.html").read_bytes()


# --- memory -----------------------------------------------------------------------------------------------------

MB = 1 << 20


def build_peak_rss(site: Path) -> tuple[int, subprocess.CompletedProcess[str]]:
    """(peak resident set in bytes of `python -m generator build SITE` and the processes it starts, its exit
    status), measured from a small Python in between: a process started straight from this one can count this
    one's memory as its own (the kernel keeps the high-water mark of the memory it was forked with across exec)."""
    script = textwrap.dedent("""
        import resource, subprocess, sys
        result = subprocess.run([sys.executable, "-m", "generator", "build", sys.argv[1]])
        print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, result.returncode)
    """)
    result = subprocess.run([sys.executable, "-c", script, str(site)], capture_output=True, text=True)
    peak, code = map(int, result.stdout.split()[-2:]) if result.returncode == 0 else (0, result.returncode)
    return peak * 1024, subprocess.CompletedProcess(result.args, code, result.stdout, result.stderr)


def test_large_files_beside_the_chapters_are_copied_without_holding_them(make_site):
    size = 50 * MB
    links = " ".join(f"[Part {i}](big-{i}.bin)" for i in range(3))
    site = make_site({**BASE, "content/s/story.md": STORY, "content/s/1.md": chapter(body=links)})
    for index in range(3):
        with open(site / f"content/s/big-{index}.bin", "wb") as handle:
            handle.truncate(size)  # (sparse: made at once)
            handle.seek(size - 1 - index)
            handle.write(b"x")
    try:
        peak, result = build_peak_rss(site)
        assert result.returncode == 0, result.stderr
        assert peak < 110 * MB, f"{peak / MB:.0f} MiB for a build with 150 MiB of files"
        for index in range(3):
            copied = site / f"output/s/big-{index}.bin"
            assert copied.stat().st_size == size
            with open(copied, "rb") as handle:
                handle.seek(size - 1 - index)
                assert handle.read(1) == b"x"
        with open(site / "content/s/big-1.bin", "r+b") as handle:  # changed: copied again, the others linked
            handle.seek(size - 3)
            handle.write(b"y")
        (site / "content/s/1.md").write_text(chapter(body=f"Changed. {links}"))
        peak, result = build_peak_rss(site)
        assert result.returncode == 0, result.stderr
        assert peak < 110 * MB
        with open(site / "output/s/big-1.bin", "rb") as handle:
            handle.seek(size - 3)
            assert handle.read(2) == b"yx"
        spare, = (site / ".serialist-cache/output").glob("output-*/spare")
        assert os.path.samefile(site / "output/s/big-0.bin", spare / "s/big-0.bin")
    finally:  # (pytest keeps the last runs' folders: not hundreds of megabytes of them)
        for folder in ("output", ".serialist-cache", "content"):
            shutil.rmtree(site / folder, ignore_errors=True)


def test_a_long_text_is_rendered_in_a_few_times_its_size():
    """A chapter of 10 MB: its tokens are let go of before its HTML is sanitized, and its words are counted a
    piece at a time (20 bytes a word in one list would be twice the rest)."""
    script = textwrap.dedent("""
        import resource
        from generator.markdown import markdown, render
        paragraph = " ".join(["the quick brown fox jumps over a lazy dog"] * 12) + ".\\n\\n"
        text = paragraph * (10_000_000 // len(paragraph))
        markdown()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        html, words = render(text, "x")
        assert words == 108 * text.count("\\n\\n"), words
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    grown = int(result.stdout) * 1024
    assert grown < 10 * 10_000_000, f"{grown / MB:.0f} MiB more to render 10 MB of Markdown"


@pytest.mark.parametrize("text", [
    "One two, three.\n\nFour\tfive\u3000six seven eight nine ten.",
    "日本語の文章です。 Some English words 그리고 한국어.\n\n- a list\n- of items",
    "Un *mot* **gras** et `du code` ici.  \nUne ligne\ncoupée   là.",
])
def test_words_counted_a_piece_at_a_time_are_the_same_count(monkeypatch, text):
    import generator.markdown as markdown_module

    tokens = markdown_module.markdown().parse(text * 50, {"docId": "x"})
    whole = markdown_module.count_words(tokens)
    monkeypatch.setattr(markdown_module, "COUNT_PIECE", 7)
    assert markdown_module.count_words(tokens) == whole


PNG_HEADER = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489")  # not decoded


def test_large_images_are_put_in_the_epub_without_holding_them(make_site):
    """Images a chapter shows go into the story's EPUB a piece at a time, from their files: the build's memory
    does not grow with them (it was three times their size: each held, and again to go into the book)."""
    import hashlib
    import zipfile

    size = 15 * MB  # (under BOOK_IMAGE_LIMIT: see the next test for larger ones)
    shown = "\n\n".join(f"![image {index}](big-{index}.png)" for index in range(5))
    site = make_site({**BASE, "content/s/story.md": STORY,
                      "content/s/1.md": chapter(body=shown),
                      "content/s/2.md": chapter(title="Two", date="2025-01-02", body="![last](big-5.png)")})
    for index in range(6):
        with open(site / f"content/s/big-{index}.png", "wb") as handle:
            handle.write(PNG_HEADER)
            handle.truncate(size)  # (sparse: made at once)
            handle.seek(size - 1 - index)
            handle.write(b"x")
    try:
        for run in range(2):  # made, then made again from the previous book's entries
            peak, result = build_peak_rss(site)
            assert result.returncode == 0, result.stderr
            assert peak < 100 * MB, f"{peak / MB:.0f} MiB for a build with an EPUB of 90 MiB of images"
            with zipfile.ZipFile(site / "output/s/s.epub") as book:
                images = sorted(name for name in book.namelist() if name.endswith(".png"))
                assert len(images) == 6
                for index, name in enumerate(images):
                    with book.open(name) as entry:
                        assert hashlib.file_digest(entry, "sha256").digest() == \
                            hashlib.file_digest(open(site / f"content/s/big-{index}.png", "rb"), "sha256").digest()
            (site / "content/s/2.md").write_text(chapter(title="Two", date="2025-01-02",
                                                         body="Changed.\n\n![last](big-5.png)"))
    finally:  # (pytest keeps the last runs' folders: not hundreds of megabytes of them)
        for folder in ("output", ".serialist-cache", "content"):
            shutil.rmtree(site / folder, ignore_errors=True)


def test_an_image_too_big_for_a_book_is_shown_there_by_its_description(make_site):
    """An image over BOOK_IMAGE_LIMIT goes out on the site, but the EPUB, made in memory, shows its description
    instead (as for an image from the web), with a warning naming it: five images of 100 MiB do not make a book
    of 500 MiB, held whole."""
    import zipfile

    from generator.epub import BOOK_IMAGE_LIMIT

    shown = "\n\n".join(f"![The harbour, view {index}](huge-{index}.png)" for index in range(5))
    site = make_site({**BASE, "content/s/story.md": STORY, "content/s/1.md": chapter(body=shown),
                      "content/s/small.png": PNG_HEADER,
                      "content/s/2.md": chapter(title="Two", date="2025-01-02", body="![small](small.png)")})
    for index in range(5):
        with open(site / f"content/s/huge-{index}.png", "wb") as handle:
            handle.write(PNG_HEADER)
            handle.truncate(100 * MB)  # (sparse: made at once)
    with open(site / "content/s/huge-0.png", "r+b") as handle:  # just over the limit, and still too big
        handle.truncate(BOOK_IMAGE_LIMIT + 1)
    try:
        result = run_cli("build", site)
        assert result.returncode == 0, result.stderr
        for index in range(5):
            assert f"huge-{index}.png: warning: this image is" in result.stderr
            assert (site / f"output/s/huge-{index}.png").stat().st_size == (site / f"content/s/huge-{index}.png").stat().st_size
        with zipfile.ZipFile(site / "output/s/s.epub") as book:
            images = [name for name in book.namelist() if name.endswith(".png")]
            assert len(images) == 1 and book.read(images[0]) == PNG_HEADER  # the small one, in the book
            text = "".join(book.read(name).decode() for name in book.namelist() if name.endswith(".xhtml"))
        assert all(f"The harbour, view {index}" in text for index in range(5))
    finally:  # (pytest keeps the last runs' folders: not hundreds of megabytes of them)
        for folder in ("output", ".serialist-cache", "content"):
            shutil.rmtree(site / folder, ignore_errors=True)
