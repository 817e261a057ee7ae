"""The EPUB's zip writer: zipfile's bytes (deflating as the books do), with the deflated data of unchanged entries
taken from the book before."""

from __future__ import annotations

import io
import random
import types
import zipfile
import zlib
from datetime import datetime, timezone
from pathlib import Path

import pytest
from isal import isal_zlib

from conftest import NOW, STORY, chapter, zip_layout
from generator import epub as epub_module
from generator.build import build
from generator.config import BuildOptions
from generator.epub import _LEVEL, EpubCache, _Image, _zipfile_zip, deterministic_zip, write_zip

WHEN = datetime(2025, 2, 3, 4, 5, 7, tzinfo=timezone.utc)


def reference(entries: list[tuple[str, bytes]], when: datetime) -> bytes:
    """What the books were written with before `write_zip`: zipfile, one entry at a time (deflating with ISA-L
    at the books' level, as they are deflated now)."""
    out = io.BytesIO()
    as_books = types.SimpleNamespace(**{name: getattr(zlib, name) for name in dir(zlib) if not name.startswith("__")})
    as_books.compressobj = isal_zlib.compressobj
    with pytest.MonkeyPatch.context() as patch, zipfile.ZipFile(out, "w") as target:
        patch.setattr(zipfile, "zlib", as_books)
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=(when.year, when.month, when.day, when.hour, when.minute,
                                                    when.second))
            info.create_system = 3
            info.external_attr = 0o100644 << 16
            info.compress_type = zipfile.ZIP_STORED if name == "mimetype" else zipfile.ZIP_DEFLATED
            target.writestr(info, data, compresslevel=_LEVEL)
    return out.getvalue()


def text(seed: int, words: int = 3000) -> bytes:
    rng = random.Random(seed)
    vocabulary = ["tide", "clock", "harbour", "salt", "&amp;", "“quoted”", "lighthouse", "<p>", "</p>\n", "map"]
    return " ".join(rng.choice(vocabulary) for _ in range(words)).encode()


def book(changed: int | None = None, count: int = 12, words: int = 3000) -> list[tuple[str, bytes]]:
    entries = [("mimetype", b"application/epub+zip"), ("META-INF/container.xml", b"<container/>"),
               ("EPUB/empty.css", b"")]
    entries += [(f"EPUB/chapter-{n}.xhtml", text(n, words) + (b" changed" if n == changed else b""))
                for n in range(count)]
    return entries


@pytest.fixture
def deflated(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every content the writer compresses (rather than reuses)."""
    seen: list[bytes] = []
    real = epub_module._deflate
    monkeypatch.setattr(epub_module, "_deflate", lambda data: (seen.append(data), real(data))[1])
    return seen


def test_the_bytes_are_zipfiles() -> None:
    entries = book() + [("EPUB/images/café.png", b"\x89PNG not really")]  # a UTF-8 name, flagged as zipfile does
    assert write_zip(entries, WHEN) == reference(entries, WHEN)
    assert zip_layout(_zipfile_zip(entries, WHEN)) == zip_layout(write_zip(entries, WHEN))  # (deflated by zlib)
    early = datetime(1980, 1, 1, tzinfo=timezone.utc)
    assert write_zip(entries, early) == reference(entries, early)


def test_the_zip_opens_with_mimetype_first_and_stored() -> None:
    data = write_zip(book(), WHEN)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        infos = archive.infolist()
        assert infos[0].filename == "mimetype" and infos[0].compress_type == zipfile.ZIP_STORED
        assert not infos[0].extra and archive.read("mimetype") == b"application/epub+zip"
        assert data[30:38] == b"mimetype" and data[38:58] == b"application/epub+zip"
        assert all(info.compress_type == zipfile.ZIP_DEFLATED for info in infos[1:])
        assert {info.date_time for info in infos} == {(2025, 2, 3, 4, 5, 6)}
        assert {(info.create_system, info.external_attr) for info in infos} == {(3, 0o100644 << 16)}
        assert {name: archive.read(name) for name in archive.namelist()} == dict(book())


def test_deterministic_zip_puts_mimetype_first_and_keeps_the_order_of_the_rest() -> None:
    shuffled = io.BytesIO()
    with zipfile.ZipFile(shuffled, "w", zipfile.ZIP_DEFLATED, compresslevel=0) as source:
        for name, data in reversed(book()):
            source.writestr(name, data)
    expected = [book()[0], *reversed(book()[1:])]  # only `mimetype` moves
    assert deterministic_zip(shuffled.getvalue(), WHEN) == reference(expected, WHEN)


def test_unchanged_entries_are_taken_from_the_previous_zip(deflated: list[bytes]) -> None:
    previous = write_zip(book(), WHEN)
    deflated.clear()
    edited = book(changed=5)
    assert write_zip(edited, WHEN, previous) == reference(edited, WHEN)
    assert deflated == [dict(edited)["EPUB/chapter-5.xhtml"]]  # all else came from `previous`
    # Found by content, not by name: a chapter inserted before the others shifts their names.
    deflated.clear()
    shifted = book()[:3] + [("EPUB/new.xhtml", b"new")] + [(f"EPUB/x-{n}", data) for n, (_, data) in
                                                              enumerate(book()[3:])]
    assert write_zip(shifted, WHEN, previous) == reference(shifted, WHEN)
    assert deflated == [b"new"]


def test_much_is_compressed_on_threads_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(epub_module.os, "cpu_count", lambda: 3)
    entries = book(count=80, words=10000)  # some 5 MB: enough to compress on several threads
    assert sum(len(data) for _, data in entries) > 1 << 22
    assert write_zip(entries, WHEN) == reference(entries, WHEN)


def damaged(data: bytes) -> dict[str, bytes]:
    """`data` damaged in ways a cache file could be."""
    middle = len(data) // 2
    directory = data.rindex(b"PK\x01\x02")
    return {
        "empty": b"",
        "garbage": b"garbage",
        "cut short": data[:middle],
        "end cut off": data[:-1],
        "end record only": data[-22:],
        "flipped in the deflated data": data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:],
        "zeroed deflated data": data[:200] + bytes(middle - 200) + data[middle:],
        "bad offsets": data[:directory + 42] + b"\xff\xff\xff\x7f" + data[directory + 46:],
        "bad count": data[:-12] + b"\xff\xff" + data[-10:],
        "not a zip": bytes(range(256)) * 100,
    }


@pytest.mark.parametrize("damage", ["empty", "garbage", "cut short", "end cut off", "end record only",
                                    "flipped in the deflated data", "zeroed deflated data", "bad offsets",
                                    "bad count", "not a zip"])
def test_a_damaged_previous_zip_is_only_not_reused(damage: str) -> None:
    previous = damaged(write_zip(book(), WHEN))[damage]
    edited = book(changed=5)
    result = write_zip(edited, WHEN, previous)
    assert result == reference(edited, WHEN)
    with zipfile.ZipFile(io.BytesIO(result)) as archive:
        assert archive.testzip() is None


def test_deflated_data_is_reused_only_when_it_inflates_to_exactly_the_content() -> None:
    # The same CRC and size in the central directory, but a stream that inflates to something else, or stops early.
    content = text(1)
    previous = bytearray(write_zip([("mimetype", b"application/epub+zip"), ("a", content)], WHEN))
    start = 30 + 8 + 20 + 30 + 1
    for damage in (lambda b: b.__setitem__(start + 3, b[start + 3] ^ 1),
                   lambda b: b.__setitem__(slice(start + 10, start + 20), bytes(10))):
        broken = bytearray(previous)
        damage(broken)
        assert write_zip([("mimetype", b"application/epub+zip"), ("a", content)], WHEN, bytes(broken)) == \
            reference([("mimetype", b"application/epub+zip"), ("a", content)], WHEN)


def test_only_books_made_by_this_code_are_offered_for_reuse(tmp_path: Path) -> None:
    cache = EpubCache(tmp_path)
    assert cache.previous("s", "abc-123") is None
    cache.put("s", "old-1", b"made by other code")
    assert cache.previous("s", "abc-123") is None
    cache.put("s", "abc-1", b"first")
    cache.put("s", "abc-2", b"second")
    assert cache.previous("s", "abc-3") == b"second"
    assert EpubCache(tmp_path, enabled=False).previous("s", "abc-3") is None


def test_a_one_chapter_edit_reuses_the_rest_and_equals_a_cold_build(make_site, deflated: list[bytes]) -> None:
    files = {"site.toml": 'title = "T"\nbase_url = "https://example.org/"\n', "content/s/story.md": STORY}
    files.update({f"content/s/{n}.md": chapter(f"C{n}", body=f"Text {n}.") for n in range(1, 6)})
    site = make_site(files)
    build(site, BuildOptions(output=site / "output", now=NOW))
    deflated.clear()
    (site / "content/s/3.md").write_text(chapter("C3", body="Changed text."))
    build(site, BuildOptions(output=site / "output", now=NOW))
    assert any(b"Changed text." in data for data in deflated)
    assert not any(b"Text 1." in data for data in deflated)  # chapter 1 was reused
    cold = make_site(files | {"content/s/3.md": chapter("C3", body="Changed text.")}, "cold")
    build(cold, BuildOptions(output=cold / "output", now=NOW, cache=False))
    assert (site / "output/s/s.epub").read_bytes() == (cold / "output/s/s.epub").read_bytes()

    # A cached book damaged where only inflating it shows: the next book is still the cold build's.
    for path in (site / ".serialist-cache/epub").rglob("*.epub"):
        data = bytearray(path.read_bytes())
        for at in range(100, len(data) - 400, 97):
            data[at] ^= 0x55
        path.write_bytes(bytes(data))
    (site / "content/s/3.md").write_text(chapter("C3", body="Changed again."))
    (cold / "content/s/3.md").write_text(chapter("C3", body="Changed again."))
    build(site, BuildOptions(output=site / "output", now=NOW))
    build(cold, BuildOptions(output=cold / "output", now=NOW, cache=False))
    assert (site / "output/s/s.epub").read_bytes() == (cold / "output/s/s.epub").read_bytes()
    with zipfile.ZipFile(site / "output/s/s.epub") as archive:
        assert archive.testzip() is None


def test_the_cache_key_covers_every_text_without_repr_of_it() -> None:
    from dataclasses import replace

    from generator.config import SiteConfig
    from generator.epub import _code_tag, cache_key
    from generator.model import Chapter, Site, Story

    one = Chapter(Path("1.md"), "one", 1, "One", WHEN, body="Text.", html="<p>Text.</p>", words=1)
    story = Story(Path("story.md"), "s", "S", "A", chapters=(one, replace(one, slug="two", number=2)))
    site = Site(SiteConfig(Path("site")), (story,))
    key = cache_key(site, story, {})
    assert key.startswith(_code_tag() + "-")
    changed = [replace(one, html="<p>Text!</p>"), replace(one, html="<p>Text.", notes_after_html="</p>"),
               replace(one, summary_html="x"), replace(one, notes_before_html="x"), replace(one, title="Uno"),
               replace(one, date=NOW), replace(one, draft=True), replace(one, warnings=("w",))]
    keys = {cache_key(site, replace(story, chapters=(chapter, story.chapters[1])), {}) for chapter in changed}
    keys |= {cache_key(replace(site, config=SiteConfig(Path("site"), base_url="https://x.org/")), story, {}),
             cache_key(site, replace(story, title="T"), {}), cache_key(site, story, {}, (1, "Series")),
             cache_key(site, story, {"s/map.png": _Image.held(b"png")})}
    assert key not in keys and len(keys) == len(changed) + 4
    # The Markdown is in the book only as the HTML made from it.
    assert cache_key(site, replace(story, chapters=(replace(one, body="Text. "), story.chapters[1])), {}) == key


@pytest.mark.parametrize("limit", ["_MAX_ENTRIES", "_MAX_BYTES"])
def test_a_book_too_big_for_a_plain_zip_is_written_whole_by_zipfile(make_site, monkeypatch: pytest.MonkeyPatch,
                                                                    limit: str) -> None:
    files = {"site.toml": 'title = "T"\nbase_url = "https://example.org/"\n', "content/s/story.md": STORY}
    files.update({f"content/s/{n}.md": chapter(f"C{n}", body=f"Text {n}.") for n in range(1, 6)})
    site = make_site(files)
    build(site, BuildOptions(output=site / "output", now=NOW, cache=False))
    streamed = (site / "output/s/s.epub").read_bytes()

    whole = []
    monkeypatch.setattr(epub_module, limit, 4)  # every book is "too big" now
    monkeypatch.setattr(epub_module, "_zipfile_zip", lambda *args: whole.append(1) or _zipfile_zip(*args))
    build(site, BuildOptions(output=site / "other", now=NOW, cache=False))
    assert whole, "the book did not go the zipfile way"
    assert zip_layout((site / "other/s/s.epub").read_bytes()) == zip_layout(streamed)


def test_the_books_code_version_follows_ebooklibs_writer(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every cached book is stale when ebooklib's book-writing module changes (known by its source, without
    importing it)."""
    from importlib import util
    from importlib.machinery import ModuleSpec

    other = tmp_path / "epub.py"
    other.write_text("# another ebooklib\n", "utf-8")
    real = epub_module._code_version()
    epub_module._code_version.cache_clear()
    monkeypatch.setattr(util, "find_spec", lambda name: ModuleSpec(name, None, origin=str(other)))
    try:
        assert epub_module._code_version() != real
    finally:
        epub_module._code_version.cache_clear()


def test_unchanged_chapters_come_deflated_from_the_cache(make_site, monkeypatch: pytest.MonkeyPatch) -> None:
    """After the first build, a chapter that did not change is neither made into XHTML again nor checked
    against the previous book: the conversions cache holds it deflated, as the book takes it."""
    files = {"site.toml": 'title = "T"\nbase_url = "https://example.org/"\n', "content/s/story.md": STORY}
    files.update({f"content/s/{n}.md": chapter(f"C{n}", body=f"Text {n}.[^a]\n\n[^a]: Note {n}.")
                  for n in range(1, 6)})
    site = make_site(files)
    build(site, BuildOptions(output=site / "output", now=NOW))
    made: list[bytes] = []
    checked: list[bytes] = []
    real_xhtml, real_inflates = epub_module._xhtml, epub_module._inflates_to
    monkeypatch.setattr(epub_module, "_xhtml", lambda *args: (made.append(args[-1]), real_xhtml(*args))[1])
    monkeypatch.setattr(epub_module, "_inflates_to",
                        lambda packed, data: (checked.append(data), real_inflates(packed, data))[1])
    for edit in ("Changed text.", "Changed again."):
        made.clear()
        checked.clear()
        (site / "content/s/3.md").write_text(chapter("C3", body=edit))
        build(site, BuildOptions(output=site / "output", now=NOW))
        assert any(edit.encode() in body for body in made)
        for n in (1, 2, 4, 5):
            assert not any(f"Text {n}.".encode() in data for data in made + checked)
        cold = make_site(files | {"content/s/3.md": chapter("C3", body=edit)}, f"cold-{len(edit)}")
        build(cold, BuildOptions(output=cold / "output", now=NOW, cache=False))
        assert (site / "output/s/s.epub").read_bytes() == (cold / "output/s/s.epub").read_bytes()


def test_a_damaged_deflated_chapter_in_the_cache_is_made_again(make_site) -> None:
    import marshal
    import sqlite3

    files = {"site.toml": 'title = "T"\n', "content/s/story.md": STORY}
    files.update({f"content/s/{n}.md": chapter(f"C{n}", body=f"Text {n}.") for n in range(1, 4)})
    site = make_site(files)
    build(site, BuildOptions(output=site / "output", now=NOW))
    db = sqlite3.connect(site / ".serialist-cache/xhtml.sqlite")
    damaged = 0
    for key, value in db.execute("SELECT key, value FROM entries").fetchall():
        entry = list(marshal.loads(value))
        if len(entry) > 2:  # a whole document, deflated: flip a byte of it
            entry[5] = bytes([entry[5][0] ^ 0x55]) + entry[5][1:]
            db.execute("UPDATE entries SET value = ? WHERE key = ?", (marshal.dumps(tuple(entry)), key))
            damaged += 1
    db.commit()
    db.close()
    assert damaged == 3
    (site / "content/s/2.md").write_text(chapter("C2", body="Changed."))
    build(site, BuildOptions(output=site / "output", now=NOW))
    cold = make_site(files | {"content/s/2.md": chapter("C2", body="Changed.")}, "cold")
    build(cold, BuildOptions(output=cold / "output", now=NOW, cache=False))
    assert (site / "output/s/s.epub").read_bytes() == (cold / "output/s/s.epub").read_bytes()
    with zipfile.ZipFile(site / "output/s/s.epub") as archive:
        assert archive.testzip() is None


def test_a_build_without_the_cache_looks_for_nothing_to_keep_in_it(make_site, monkeypatch: pytest.MonkeyPatch) -> None:
    files = {"site.toml": 'title = "T"\n', "content/s/story.md": STORY, "content/s/1.md": chapter("C1")}
    site = make_site(files)
    read: list[int] = []
    real = epub_module._entries_by_name
    monkeypatch.setattr(epub_module, "_entries_by_name", lambda zipped: read.append(1) or real(zipped))
    build(site, BuildOptions(output=site / "output", now=NOW, cache=False))
    assert not read
    build(site, BuildOptions(output=site / "output", now=NOW))
    assert read  # with the cache, the book's chapters are kept from it
