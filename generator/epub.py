"""The EPUB 3 of every story: `<story>/<story>.epub`, made with ebooklib.

What is in it, in reading order: a cover page (when the story has a `cover:`),
a title page (title, author, the metadata block as on AO3, summary, work
notes), the contents, then every published chapter (summary, warnings, notes
before, text, notes after: the author's notes as separate, marked blocks), with
the work's end notes after the last one and then the end notice of the web
pages (pending, scheduled, hiatus, discontinued, or The End).

Links between chapters go to the chapter inside the book; links to other
stories, and to anything else on the site, go to the web site (when
`base_url` is set; otherwise they become plain text). Images are embedded.

The same story gives the same bytes: the dates are the chapters' (never the
clock) and the zip is written with fixed times. Each EPUB is kept in
`.serialist-cache/epub/` under a hash of everything that goes into it, so a
story that did not change is not rebuilt, and one that did takes the compressed
data of its unchanged files from the EPUB made before it (see `write_zip`).
"""

from __future__ import annotations

import hashlib
import io
import marshal
import os
import re
import struct
import uuid
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from html import escape, unescape
from functools import lru_cache, partial
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple
from urllib.parse import quote, unquote, urljoin, urlsplit

import isal
from isal import isal_zlib

from generator import urls
from generator.assets import FILE_SCHEME, IMAGE_TYPES, SvgError, placeholder_paths, published_bytes
from generator.cache import CACHE_DIR, Cache, atomic_write, digest
from generator.config import SiteConfig
from generator.markdown import LINK_SCHEME
from generator.model import Asset, Chapter, Site, Story
from generator.output import AnyFile, LazyFile, OutputFile
from generator.pages import end_notice
from generator.parallel import can_fork, in_workers
from generator.taxonomy import build_taxonomy
from generator.xmlchars import xml_text, xml_utf8

TITLE_FILE = "title.xhtml"
COVER_FILE = "cover.xhtml"
STYLE_FILE = "style.css"
XHTML = "application/xhtml+xml"
_EPOCH = datetime(1980, 1, 1, tzinfo=timezone.utc)  # the earliest time a zip file can hold

STYLESHEET = """\
body { line-height: 1.5; }
h1, h2, h3 { line-height: 1.2; }
.byline, .chapter-date, .end-notice, .see-end { font-style: italic; }
.work-meta dt { font-weight: bold; }
.work-meta dd { margin: 0 0 0.4em 1.5em; }
.notes { border: 1px solid #999; border-radius: 4px; padding: 0 0.8em; margin: 1.2em 0; }
.notes-heading, .chapter-summary h2, .chapter-warnings h2 { font-size: 1em; }
.chapter-text { margin: 1.5em 0; }
hr.scene-break { border: 0; text-align: center; margin: 1.5em 0; }
hr.scene-break::after { content: "* * *"; }
.end-notice { border-top: 1px solid #999; margin-top: 2em; padding-top: 0.5em; text-align: center; }
.cover { text-align: center; }
.cover img { max-width: 100%; max-height: 100%; }
img { max-width: 100%; }
"""


def book_identifier(story: Story) -> str:
    """A stable `urn:uuid:` for the story: from its author and URL name (its first one, when its `aliases:` name
    older ones), not the site's address or title."""
    name = story.aliases[0].removesuffix("/") if story.aliases else story.slug
    return "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"serialist:{story.author}/{name}"))


_LANGUAGE = re.compile(r"^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$")


def _language(tag: str) -> str:
    """A language tag EPUB accepts; `und` (undetermined) when it is not one."""
    return tag if _LANGUAGE.match(tag) else "und"


def _utc(moment: datetime | None) -> datetime:
    return max(moment.astimezone(timezone.utc), _EPOCH) if moment else _EPOCH


def _iso(moment: datetime | None) -> str:
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def _day(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d") if moment else ""


# --- HTML → XHTML ------------------------------------------------------------------------------------------------

_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track",
                   "wbr"})
_NUMBER = re.compile(r"^-?\d+$")
_ATTRIBUTE_VALUES: dict[str, Callable[[str], bool]] = {  # attributes whose values the XHTML schema checks
    "width": str.isdigit, "height": str.isdigit, "colspan": lambda v: v.isdigit() and int(v) > 0,
    "rowspan": str.isdigit, "start": lambda v: bool(_NUMBER.match(v)), "value": lambda v: bool(_NUMBER.match(v)),
    "lang": lambda v: v == "" or bool(_LANGUAGE.match(v)), "dir": lambda v: v in ("ltr", "rtl", "auto"),
    "type": lambda v: v in ("1", "a", "A", "i", "I"), "scope": lambda v: v in ("row", "col", "rowgroup", "colgroup"),
    "datetime": lambda v: bool(re.match(r"^\d{4}-\d{2}(-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?"
                                        r"(Z|[+-]\d{2}:?\d{2})?)?)?$", v)),
}
_DROPPED_ATTRIBUTES = frozenset({"cite"})  # a URL no reader shows, which EPUB would need inside the book


def _xml_attr(value: str) -> str:
    return escape(value, quote=True)


# Tags and text as nh3 and our own templates write them: `_Xhtml.feed_plain` reads HTML made only of these, and
# hands the same tags, attributes and text to the same handlers as HTMLParser would, quicker. Anything else in a
# document (a comment, a stray `<`, a quote-less attribute, a script's raw text…) is left to HTMLParser.
_SPACE = "[ \t\n\r\f]"
_PLAIN = re.compile(
    r'([^<]+)'  # text
    rf'|<([a-zA-Z][a-zA-Z0-9]*)((?:{_SPACE}+[a-zA-Z_:][-a-zA-Z0-9_:.]*(?:="[^"]*")?)*){_SPACE}*(/?)>'  # start tag
    r'|</([a-zA-Z][a-zA-Z0-9]*)>')  # end tag
_PLAIN_ATTRIBUTE = re.compile(rf'{_SPACE}+([a-zA-Z_:][-a-zA-Z0-9_:.]*)(?:="([^"]*)")?')
_RAW_TEXT = frozenset({"script", "style"})  # whose content HTMLParser reads as raw text
# A whole document of `_PLAIN` tokens, checked in one pass (possessive: the tokens' parts cannot overlap, so
# nothing is given back to try again, however long the text)…
_PLAIN_DOCUMENT = re.compile(
    rf'(?:[^<]++|<[a-zA-Z][a-zA-Z0-9]*+(?:{_SPACE}++[a-zA-Z_:][-a-zA-Z0-9_:.]*+(?:="[^"]*+")?+)*+{_SPACE}*+/?>'
    r'|</[a-zA-Z][a-zA-Z0-9]*+>)*+')
_RAW_TEXT_TAG = re.compile(rf"<(?i:script|style)(?:{_SPACE}|/|>)")
# …then cut into text and tags (a quoted attribute value may hold a `>`).
_PLAIN_TAG = re.compile(r'(<[^>"]*+(?:"[^"]*+"[^>"]*+)*+>)')


class _Xhtml(HTMLParser):
    """Well-formed HTML (nh3's output and our own) → XHTML, with links and images mapped for the book."""

    def __init__(self, href: Callable[[str], str | None], image: Callable[[str], str | None]):
        super().__init__(convert_charrefs=True)
        self.href = href
        self.image = image
        self.out: list[str] = []
        self.open: list[tuple[str, bool]] = []  # open elements, and whether their tags are written
        self.ids: set[str] = set()

    def _attributes(self, tag: str, attrs: list[tuple[str, str | None]]) -> dict[str, str] | None:
        """The attributes to write, or None to leave the element's tags out (a link that leads nowhere)."""
        result: dict[str, str] = {}
        for name, value in attrs:
            value = name if value is None else value
            check = _ATTRIBUTE_VALUES.get(name)
            if name in result or name in _DROPPED_ATTRIBUTES or (check is not None and not check(value.strip())):
                continue
            result[name] = value.strip() if check is not None else value
        if tag == "a" and "href" in result:
            href = self.href(result["href"])
            if href is None:
                return None
            result["href"] = href
            if result.get("id", "").startswith("fnref") and href.startswith("#fn"):
                result["epub:type"] = "noteref"
        if tag == "li" and "footnote-item" in result.get("class", "").split():
            result["epub:type"] = "footnote"
        if tag == "section" and "footnotes" in result.get("class", "").split():
            result["epub:type"] = "footnotes"
        if "id" in result:
            ident = re.sub(r"\s+", "-", result["id"].strip()) or "id"
            while ident in self.ids:
                ident += "-2"
            self.ids.add(ident)
            result["id"] = ident
        return result

    def _start(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            src = self.image(dict(attrs).get("src") or "")
            alt = dict(attrs).get("alt") or ""
            if src is None:  # not in the book (a remote image): its description instead
                if alt:
                    self.out.append(f'<span class="image-alt">[{escape(alt, quote=False)}]</span>')
                return
            attrs = [(n, src if n == "src" else v) for n, v in attrs] + ([] if "alt" in dict(attrs) else [("alt", "")])
        written = self._attributes(tag, attrs)
        if written is not None:
            text = "".join(f' {name}="{_xml_attr(value)}"' for name, value in written.items())
            self.out.append(f"<{tag}{text}/>" if tag in _VOID else f"<{tag}{text}>")
        if tag not in _VOID:
            self.open.append((tag, written is not None))

    def feed_plain(self, html: str) -> bool:
        """`feed` for HTML made only of plain tags and text (see `_PLAIN`); False, having handled
        nothing, when there is anything else in it."""
        if _PLAIN_DOCUMENT.fullmatch(html) is None or _RAW_TEXT_TAG.search(html) is not None:
            return False
        parts = _PLAIN_TAG.split(html)  # text, tag, text, tag, …, text
        out, open_elements = self.out, self.open
        for index in range(0, len(parts) - 1, 2):
            text, tag = parts[index], parts[index + 1]
            if text:  # what handle_data writes, without its call for text with nothing to escape
                out.append(escape(unescape(text), quote=False) if "&" in text
                           else text.replace(">", "&gt;") if ">" in text else text)
            if tag[1] == "/":
                name = tag[2:-1].lower()
                if open_elements and open_elements[-1] == (name, True):  # the common case, as handle_endtag
                    out.append(tag if tag[2:-1] == name else f"</{name}>")
                    open_elements.pop()
                else:
                    self.handle_endtag(name)
            elif tag[1:-1].isalnum():  # a start tag without attributes
                name = tag[1:-1].lower()
                if name == "img":  # mapped into the book, or its description
                    self.handle_starttag(name, [])
                elif name in _VOID:
                    out.append(f"<{name}/>")
                else:
                    out.append(tag if tag[1:-1] == name else f"<{name}>")
                    open_elements.append((name, True))
            else:
                found = _PLAIN.fullmatch(tag)
                assert found is not None
                _, name, attributes, closed, _ = found.groups()
                name = name.lower()
                attrs: list[tuple[str, str | None]] = []
                for attribute in _PLAIN_ATTRIBUTE.finditer(attributes):
                    key, value = attribute.groups()  # value None: an attribute without one, as HTMLParser says
                    attrs.append((key.lower(), unescape(value) if value and "&" in value else value))
                self.handle_starttag(name, attrs)
                if closed:
                    self.handle_endtag(name)
        text = parts[-1]
        if text:
            self.handle_data(unescape(text) if "&" in text else text)
        return True

    def updatepos(self, i: int, j: int) -> int:
        return j  # HTMLParser counts lines here for getpos(), which nothing asks for: time saved

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if attrs or tag == "img":
            self._start(tag, attrs)
        elif tag in _VOID:  # the common case, quickly: what _start writes for a tag without attributes
            self.out.append(f"<{tag}/>")
        else:
            self.out.append(f"<{tag}>")
            self.open.append((tag, True))

    def handle_endtag(self, tag: str) -> None:
        if self.open and self.open[-1] == (tag, True):  # the common case, quickly
            self.out.append(f"</{tag}>")
            self.open.pop()
            return
        if tag in _VOID or not any(name == tag for name, _ in self.open):
            return
        while self.open:
            name, written = self.open.pop()
            if written:
                self.out.append(f"</{name}>")
            if name == tag:
                return

    def handle_data(self, data: str) -> None:
        self.out.append(escape(data, quote=False))

    def result(self) -> str:
        self.close()
        while self.open:
            name, written = self.open.pop()
            if written:
                self.out.append(f"</{name}>")
        return "".join(self.out)


_FRAGMENT_LINK = re.compile(rb'href="([\w.-]*\.xhtml)?#([^"]*)"')  # a link to an id, in this or another document


@dataclass(frozen=True, slots=True)
class _Packed:
    """A whole document, deflated where it was converted (as `_deflate` does it), with its CRC-32 and size:
    what goes into the zip for it."""

    crc: int
    size: int
    deflated: bytes

    @classmethod
    def of(cls, document: bytes) -> _Packed:
        return cls(zlib.crc32(document), len(document), _deflate(document))

    def inflate(self) -> bytes:
        return zlib.decompress(self.deflated, -15)


class _Whole(NamedTuple):
    """A whole document (`_Book.whole_document`) as the conversions cache holds it: deflated, as the zip takes
    it, with the title and language it was made with (its XHTML body is not kept)."""

    ids: list[str]
    title: str
    language: str
    crc: int  # of the document
    size: int
    deflated: bytes
    check: int  # CRC-32 of `deflated`: damage to it shows without inflating it

    @classmethod
    def of(cls, ids: list[str], title: str, language: str, packed: _Packed) -> _Whole:
        return cls(ids, title, language, packed.crc, packed.size, packed.deflated, zlib.crc32(packed.deflated))

    def packed(self, title: str, language: str) -> _Packed | None:
        """The deflated document, if it was made with this title and language (and is not damaged)."""
        if (self.title, self.language) != (title, language) or zlib.crc32(self.deflated) != self.check:
            return None
        return _Packed(self.crc, self.size, self.deflated)


def _is_whole(file: str, body: bytes, ids: list[str]) -> bool:
    """Whether every link to an id in the document `file` is a link within it, to one of its own `ids`."""
    own = set(ids)
    for match in _FRAGMENT_LINK.finditer(body):
        target = match.group(1)
        if (target is not None and target.decode() != file) or unquote(match.group(2).decode("utf-8")) not in own:
            return False
    return True


# --- the book's documents ----------------------------------------------------------------------------------------

@dataclass
class _Book:
    """One story's EPUB as it is put together: the documents, the images, how links map into it."""

    site: Site
    story: Story
    assets: dict[str, Asset]  # every published file of the site, by its path from the output root
    series: tuple[int, str] | None = None  # (part number, series name), when the story is part of a series
    chapter_files: dict[str, str] = field(default_factory=dict)  # chapter slug → document
    images: dict[str, str] = field(default_factory=dict)  # path from the output root → file in the book
    documents: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # file → (title, XHTML body in UTF-8)
    ids: dict[str, set[str]] = field(default_factory=dict)  # file → the ids it defines
    converted: Cache | None = None  # XHTML of documents converted by earlier builds
    packed: dict[str, _Packed] = field(default_factory=dict)  # documents deflated whole (their body not kept)
    streaming: bool = False  # while written by `_ZipStream`, which takes `packed` documents as they are
    unpacked: dict[str, tuple[str, bool]] = field(default_factory=dict)  # chapter kept unpacked → (its conversion
    # key, whether it was converted now and is still to be cached: see `remember_chapters`)

    layout: str = ""  # a digest of where links and images lead in this book, once it is laid out

    def _conversion_key(self, html: str, web_page: str) -> str:
        """What a document's XHTML depends on: its HTML, and where links and images lead in this book."""
        if not self.layout:
            self.layout = digest("xhtml", _code_version(), self.web, self.story.slug,
                                 repr(sorted(self.chapter_files.items())), repr(sorted(self.images.items())))
        return digest(self.layout, html, web_page)

    @property
    def config(self) -> SiteConfig:
        return self.site.config

    @property
    def web(self) -> str:
        return self.config.base_url

    def _href(self, href: str, web_page: str) -> str | None:
        """Where a link in the book goes; None when nowhere (it is shown as plain text)."""
        if href.startswith(LINK_SCHEME + ":"):
            target, _, fragment = href[len(LINK_SCHEME) + 1:].partition("#")
            story, _, chapter = target.partition("/")
            if story == self.story.slug:
                inside = self.chapter_files.get(chapter) if chapter else TITLE_FILE
                if inside:
                    return inside + (f"#{fragment}" if fragment else "")
            if not self.web:
                return None
            return self.web + (f"{story}/{chapter}/" if chapter else f"{story}/") + (f"#{fragment}" if fragment else "")
        if href.startswith(FILE_SCHEME + ":"):
            return self.web + href[len(FILE_SCHEME) + 1:] if self.web else None
        parts = urlsplit(href)
        if parts.scheme in ("http", "https", "mailto"):
            return href
        if parts.scheme:
            return None
        if href.startswith("#") or not href:
            return href
        # A relative link the Markdown stage left alone: it means the same as on the chapter's web page.
        return urljoin(self.web + web_page, href) if self.web and web_page else None

    def _image(self, src: str) -> str | None:
        if not src.startswith(FILE_SCHEME + ":"):
            return None  # an EPUB may not show images from the web
        return self.images.get(unquote(src[len(FILE_SCHEME) + 1:].partition("#")[0]))

    def add(self, file: str, title: str, html: str, web_page: str = "") -> None:
        self.keep(file, title, *self.converted_or_convert(html, web_page))

    def cached(self, key: str) -> tuple[bytes, list[str]] | None:
        """The (XHTML body in UTF-8, ids) of the document with this `_conversion_key`, if an earlier build
        converted it (and did not cache it whole)."""
        found = self.cached_many([key])[0]
        return None if isinstance(found, _Whole) else found

    def cached_many(self, keys: list[str]) -> list[tuple[bytes, list[str]] | _Whole | None]:
        """What the cache has of the document with each key (in one query for a few hundred): its body and
        ids, or, when it was cached whole (see `remember_chapters`), its `_Whole`."""
        found = self.converted.get_many(keys) if self.converted is not None else {}
        result: list[tuple[bytes, list[str]] | _Whole | None] = []
        for key in keys:
            value = found.pop(key, None)
            if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], bytes):
                result.append(value)
            elif isinstance(value, tuple) and len(value) == len(_Whole._fields) and isinstance(value[0], list):
                result.append(_Whole(*value))
            else:
                result.append(None)
        return result

    def converted_or_convert(self, html: str, web_page: str) -> tuple[bytes, list[str]]:
        """The document's (XHTML body in UTF-8, ids), from the cache or converted now (and cached)."""
        key = self._conversion_key(html, web_page) if self.converted is not None else ""
        found = self.cached(key)
        if found is not None:
            return found
        result = self.convert(html, web_page)
        self.remember(key, result)
        return result

    def convert(self, html: str, web_page: str) -> tuple[bytes, list[str]]:
        """The document's (XHTML body in UTF-8, ids), converted now."""
        converter = _Xhtml(lambda href: self._href(href, web_page), self._image)
        if not converter.feed_plain(html):
            converter = _Xhtml(lambda href: self._href(href, web_page), self._image)
            converter.feed(html)
        return xml_utf8(converter.result()), sorted(converter.ids)

    def remember(self, key: str, result: tuple[object, ...]) -> None:
        """Cache a document converted now (its body and ids, or a `_Whole`), by its `_conversion_key`."""
        if self.converted is not None:
            self.converted.put(key, result)

    def keep(self, file: str, title: str, body: bytes, ids: list[str]) -> None:
        """Keep a converted document, its body as UTF-8 (half the memory of text with curly quotes as str)."""
        self.documents[file] = (title, body)
        self.ids[file] = set(ids)

    def keep_packed(self, file: str, title: str, ids: list[str], packed: _Packed) -> None:
        """Keep a document deflated whole (see `whole_document`)."""
        self.documents[file] = (title, b"")
        self.ids[file] = set(ids)
        self.packed[file] = packed

    def whole_document(self, file: str, title: str, language: str, body: bytes, ids: list[str]) -> bytes | None:
        """The document as it goes into the book, when it is already known from its own body: when every link
        to an id in it is a link within it, to one of its own `ids` (`body` then leaves it as it is); else None."""
        return _xhtml(title, language, body) if _is_whole(file, body, ids) else None

    def remember_chapters(self, zipped: bytes | None, language: str, folder: str) -> None:
        """Once the book is made (`zipped`, None when zipfile made it): cache each chapter document kept
        `unpacked` that is whole (see `whole_document`) as the book holds it (in `folder`), deflated, in place
        of its body: the next book takes it as it is, with no XHTML to make and no earlier book's copy to check
        it against. The others converted now are cached as they are."""
        if self.converted is None or not (self.converted.enabled and self.converted.writable) or not self.unpacked:
            return  # (a build with --no-cache keeps nothing)
        entries = _entries_by_name(zipped) if zipped is not None else {}
        for file, (key, new) in self.unpacked.items():
            title, body = self.documents[file]
            ids = sorted(self.ids[file])
            entry = entries.get(f"{folder}/{file}")
            if entry is not None and _is_whole(file, body, ids):
                self.converted.put(key, tuple(_Whole.of(ids, title, language, _Packed(*entry))))  # (marshal: a tuple)
            elif new:
                self.converted.put(key, (body, ids))
        self.converted.flush()

    def body(self, file: str) -> bytes:
        """The document's body once every document is in: links to an id that the target document lacks
        (a web page's anchor) go to the document itself."""
        def check(match: re.Match[bytes]) -> bytes:
            target = (match.group(1) or file.encode()).decode()
            fragment = unquote(match.group(2).decode("utf-8"))
            if target in self.ids and fragment not in self.ids[target]:
                return b'href="' + target.encode() + b'"'
            return match.group(0)

        return _FRAGMENT_LINK.sub(check, self.documents[file][1])


def _list(label: str, items: tuple[str, ...], plural: str | None = None) -> str:
    if not items:
        return ""
    name = plural if plural and len(items) > 1 else label
    return f"<dt>{escape(name)}:</dt><dd>{escape(', '.join(items))}</dd>\n"


def meta_block(story: Story, series: tuple[int, str] | None = None) -> str:
    """The metadata block of the title page: as on the web pages, as a definition list."""
    stats = [("Published", _day(story.published))] if story.published else []
    if story.updated and story.updated != story.published:
        stats.append(("Completed" if story.is_complete else "Updated", _day(story.updated)))
    stats += [("Words", f"{story.words:,}"), ("Chapters", story.chapter_count), ("Status", story.status_label)]
    part = f"<dt>Series:</dt><dd>Part {series[0]} of {escape(series[1])}</dd>\n" if series else ""
    return ('<dl class="work-meta">\n'
            f"<dt>Rating:</dt><dd>{escape(story.rating)}</dd>\n"
            + _list("Archive Warnings", story.archive_warnings)
            + _list("Content Warnings", story.content_warnings)
            + _list("Fandom", story.fandoms, "Fandoms")
            + _list("Relationship", story.relationships, "Relationships")
            + _list("Characters", story.characters)
            + _list("Additional Tags", story.tags)
            + part
            + "".join(f'<dt>{name}:</dt><dd class="{name.lower()}">{escape(value)}</dd>\n' for name, value in stats)
            + "</dl>\n")


def _notes(html: str, heading: str, css: str, ident: str = "") -> str:
    if not html:
        return ""
    anchor = f' id="{ident}"' if ident else ""
    return (f'<section class="notes {css}"{anchor}>\n<h2 class="notes-heading">{escape(heading)}</h2>\n'
            f"{html}\n</section>\n")


def title_page(book: _Book) -> str:
    story = book.story
    parts = [f'<section epub:type="titlepage" class="title-page">\n<h1 class="work-title">{escape(story.title)}</h1>\n']
    if story.author:
        parts.append(f'<p class="byline">by {escape(story.author)}</p>\n')
    parts.append(meta_block(story, book.series))
    if story.summary_html:
        parts.append(f'<section class="summary">\n<h2>Summary</h2>\n{story.summary_html}\n</section>\n')
    parts.append(_notes(story.notes_before_html, "Notes", "work-notes-before"))
    if book.web:
        url = book.web + urls.story_path(story)
        parts.append(f'<p class="source">Read it online: <a href="{escape(url)}">{escape(url)}</a></p>\n')
    parts.append("</section>\n")
    return "".join(parts)


def chapter_page(book: _Book, chapter: Chapter, last: bool) -> str:
    story = book.story
    heading = story.title if story.single_file else chapter.heading
    parts = [f'<section epub:type="chapter" class="chapter">\n<h1 class="chapter-title">{escape(heading)}</h1>\n']
    if chapter.draft:  # only with --drafts (and while `serve` runs)
        parts.append('<p class="draft-banner">DRAFT: this chapter is not published.</p>\n')
    if chapter.date:
        parts.append(f'<p class="chapter-date">Posted {_day(chapter.date)} &middot; {chapter.words:,} words</p>\n')
    if chapter.summary_html:
        parts.append(f'<div class="chapter-summary">\n<h2>Summary</h2>\n{chapter.summary_html}\n</div>\n')
    if chapter.warnings:
        items = "".join(f"<li>{escape(w)}</li>" for w in chapter.warnings)
        parts.append(f'<div class="chapter-warnings">\n<h2>Chapter warnings</h2>\n<ul>{items}</ul>\n</div>\n')
    see_end = ""
    if chapter.notes_after_html:
        more = "more notes" if chapter.notes_before_html else "notes"
        see_end = f'<p class="see-end">(See the end of the chapter for <a href="#end-notes">{more}</a>.)</p>\n'
    if chapter.notes_before_html:
        parts.append(_notes(see_end + chapter.notes_before_html, "Notes", "notes-before"))
    else:
        parts.append(see_end)
    parts.append(f'<div class="chapter-text">\n{chapter.html}\n</div>\n')
    parts.append(_notes(chapter.notes_after_html, "End notes", "notes-after", "end-notes"))
    if last:
        parts.append(_notes(story.notes_after_html, "Work end notes", "work-notes-after"))
        notice = end_notice(story)
        follow = ""
        if notice.kind != "end" and book.web:
            url = book.web + urls.story_path(story)
            follow = f'<p>Read new chapters online: <a href="{escape(url)}">{escape(url)}</a></p>\n'
        parts.append(f'<section class="end-notice end-notice-{notice.kind}">\n'
                     f'<p class="end-notice-heading"><strong>{escape(notice.heading)}</strong></p>\n'
                     f"<p>{escape(notice.text)}</p>\n{follow}</section>\n")
    parts.append("</section>\n")
    return "".join(parts)


def _xhtml(title: str, language: str, body: bytes) -> bytes:
    return ('<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE html>\n'
            '<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops" '
            f'lang="{language}" xml:lang="{language}">\n<head>\n<meta charset="utf-8"/>\n'
            f"<title>{escape(xml_text(title))}</title>\n"
            f'<link rel="stylesheet" type="text/css" href="{STYLE_FILE}"/>\n</head>\n'
            "<body>\n").encode("utf-8") + body + b"</body>\n</html>\n"


# --- putting it together ------------------------------------------------------------------------------------------

def _image_paths(story: Story) -> list[str]:
    """Every image the story's texts show, by path from the output root, in order of first use."""
    texts = [story.summary_html, story.notes_before_html, story.notes_after_html]
    for chapter in story.chapters:
        texts += [chapter.summary_html, chapter.notes_before_html, chapter.html, chapter.notes_after_html]
    marker = FILE_SCHEME + ":"  # far quicker to look for than placeholder_paths' pattern, in megabytes of text
    return list(dict.fromkeys(path for text in texts if marker in text for path in placeholder_paths(text)))


IMAGE_CHUNK = 1 << 20  # an image file is read, hashed, checked and deflated this much at a time
# A larger image is shown in the book by its description, as an image from the web is (`too_big_for_books`): a
# book is made in memory, so one image of hundreds of megabytes would take as much, and e-readers choke on it.
BOOK_IMAGE_LIMIT = 16 << 20


def _fits_in_book(asset: Asset) -> bool:
    try:
        return asset.source.stat().st_size <= BOOK_IMAGE_LIMIT
    except OSError:
        return True  # (the copy stage reports a file it cannot read)


def too_big_for_books(site: Site) -> list[Asset]:
    """The images the stories' texts show, and their covers, that are too big to put in their EPUBs."""
    found: dict[str, Asset] = {}
    for story in site.stories:
        assets = {asset.path: asset for asset in story.assets}
        cover = story.cover_asset
        for path in [*([cover.path] if cover is not None else []), *_image_paths(story)]:
            asset = assets.get(path)
            if asset is not None and Path(path).suffix.lower() in IMAGE_TYPES and not _fits_in_book(asset):
                found.setdefault(path, asset)
    return list(found.values())


@dataclass(frozen=True, slots=True)
class _Image:
    """An image the book embeds: an SVG as `published_bytes` gives it (cleaned, and small), held; any other,
    by its file, read `IMAGE_CHUNK` at a time wherever it is needed (never whole: see `_ZipStream.write_image`).

    `crc` and `size` are the file's as hashed for the cache key, a piece at a time (`sha256`); the zip takes
    them again as it reads the file."""

    data: bytes | None
    source: Path | None
    size: int
    crc: int
    sha256: bytes

    @classmethod
    def of(cls, asset: Asset) -> _Image:
        """Raises OSError when the file cannot be read, `SvgError` for an SVG that cannot be published."""
        if asset.source.suffix.lower() == ".svg":
            return cls.held(published_bytes(asset)[0])  # as on the site: without scripts
        crc, size, sha = 0, 0, hashlib.sha256()
        for chunk in cls(None, asset.source, 0, 0, b"").chunks():
            crc, size = zlib.crc32(chunk, crc), size + len(chunk)
            sha.update(chunk)
        return cls(None, asset.source, size, crc, sha.digest())

    @classmethod
    def held(cls, data: bytes) -> _Image:
        return cls(data, None, len(data), zlib.crc32(data), hashlib.sha256(data).digest())

    def chunks(self) -> Iterator[bytes]:
        """The image's bytes, `IMAGE_CHUNK` at a time."""
        if self.source is None:
            yield self.data or b""
            return
        with open(self.source, "rb") as handle:
            while chunk := handle.read(IMAGE_CHUNK):
                yield chunk

    def read(self) -> bytes:
        """The image's bytes, whole: only for a book too big for `_ZipStream` (see `make_epub`)."""
        return b"".join(self.chunks())


def _inputs(site: Site, story: Story, assets: dict[str, Asset]) -> dict[str, _Image]:
    """The cover and every image the book embeds (`_Image`: the file of each, not its bytes, but for an SVG's),
    by path from the output root: those not over `BOOK_IMAGE_LIMIT`."""
    wanted = _image_paths(story)
    cover = story.cover_asset
    if cover is not None:
        wanted.insert(0, cover.path)
    found: dict[str, _Image] = {}
    for path in wanted:
        asset = assets.get(path)
        if (asset is not None and Path(path).suffix.lower() in IMAGE_TYPES and path not in found
                and _fits_in_book(asset)):
            try:
                found[path] = _Image.of(asset)
            except (OSError, SvgError):
                continue  # the copy stage reports it
    return found


def make_epub(site: Site, story: Story, assets: dict[str, Asset], images: dict[str, _Image],
              series: tuple[int, str] | None = None, converted: Cache | None = None,
              previous: bytes | None = None, workers: int = 1) -> bytes:
    """The EPUB of `story`, byte for byte the same for the same input (`previous`, an earlier EPUB of it,
    only saves compressing again what did not change)."""
    from ebooklib import epub

    book = _Book(site, story, assets, series, converted=converted)
    language = _language(story.language)
    cover = story.cover_asset
    for index, path in enumerate(images, start=1):
        name = "cover" if cover is not None and path == cover.path else f"image-{index}"
        book.images[path] = f"images/{name}{Path(path).suffix.lower()}"
    for index, chapter in enumerate(story.chapters, start=1):
        book.chapter_files[chapter.slug] = f"chapter-{index}.xhtml"

    if cover is not None and cover.path in book.images:
        book.add(COVER_FILE, "Cover", f'<section epub:type="cover" class="cover">'
                 f'<img src="{FILE_SCHEME}:{quote(cover.path)}" alt="Cover of {escape(story.title)}"/></section>\n')
    book.add(TITLE_FILE, story.title, title_page(book), urls.story_path(story))
    _add_chapters(book, story, language, workers)

    # The package document, the NCX and the contents are made by ebooklib from these strings (the documents'
    # XHTML is made here: `_Book.convert`, `_xhtml`).
    out = epub.EpubBook()
    out.set_identifier(book_identifier(story))
    out.set_title(xml_text(story.title))
    out.set_language(language)
    if story.author:
        out.add_author(xml_text(story.author))
    out.add_metadata("DC", "date", _iso(story.published))
    out.add_metadata("DC", "publisher", xml_text(site.config.title))
    if story.summary_html:
        blocks = re.sub(r"</(?:p|li|h[1-6]|blockquote|div|dd|dt)>|<br\s*/?>", " ", story.summary_html)
        summary = unescape(re.sub(r"<[^>]*>", "", blocks))
        out.add_metadata("DC", "description", xml_text(" ".join(summary.split())))
    for subject in dict.fromkeys(story.fandoms + story.tags):
        out.add_metadata("DC", "subject", xml_text(subject))
    if book.web:
        out.add_metadata("DC", "source", book.web + urls.story_path(story))
    out.add_item(epub.EpubItem(uid="style", file_name=STYLE_FILE, media_type="text/css",
                               content=STYLESHEET.encode("utf-8")))
    for path, file in book.images.items():
        media_type = IMAGE_TYPES[Path(path).suffix.lower()]
        if cover is not None and path == cover.path:
            out.set_cover(file, images[path], create_page=False)  # (an `_Image`: written by `_ZipStream`)
        else:
            out.add_item(epub.EpubItem(uid=Path(file).stem, file_name=file, media_type=media_type,
                                       content=images[path]))
    items = {}
    for index, (file, (title, _)) in enumerate(book.documents.items()):
        # Each document's XHTML is made only as it goes into the zip: a long story's book is never all in memory.
        items[file] = _document_item(epub)(uid=f"doc-{index}", file_name=file, media_type=XHTML,
                                           make=partial(_document, book, file, language))
        out.add_item(items[file])
    out.toc = [epub.Link(file, "Title page" if file == TITLE_FILE else xml_text(title), f"toc-{index}")
               for index, (file, (title, _)) in enumerate(book.documents.items()) if file != COVER_FILE]
    out.add_item(epub.EpubNcx())
    nav = epub.EpubNav(title="Contents")
    out.add_item(nav)
    spine: list[object] = [items[COVER_FILE]] if COVER_FILE in items else []
    out.spine = [*spine, items[TITLE_FILE], nav, *(items[f] for f in book.chapter_files.values())]

    modified = _utc(story.updated)
    options = {"mtime": modified.replace(tzinfo=None), "raise_exceptions": True, "compresslevel": 0}
    writer = _streaming_writer(epub)("", out, options)
    writer.process()
    try:
        book.streaming = True
        zipped = writer.write_into(_ZipStream(modified, previous))
        book.remember_chapters(zipped, language, out.FOLDER_NAME)
        return zipped
    except _TooBig:  # zip64 territory: through a whole zip in memory, for zipfile to write
        book.streaming = False
        for item in out.get_items():
            if isinstance(item.content, _Image):
                item.content = item.content.read()
        buffer = io.BytesIO()
        epub.write_epub(buffer, out, options)
        book.remember_chapters(None, language, out.FOLDER_NAME)
        return deterministic_zip(buffer.getvalue(), modified, previous)


PARALLEL_CHAPTERS = 200  # chapters to convert before other processes pay off
EARLY_WORDS = 2_000_000  # a story up to this long has its book made by a page worker (see `render_epubs`)


def _add_chapters(book: _Book, story: Story, language: str, workers: int) -> None:
    """Every chapter's document, in order; those no earlier build converted are converted in `workers`
    forked processes when there are many (and cached here, as they come back). A document that is whole
    already (`_Book.whole_document`) is kept deflated, as the zip takes it: a worker deflates each one it
    converts, and the cache holds it so (`_Whole`; see `_Book.remember_chapters` for those converted here)."""
    last = len(story.chapters) - 1

    def html(index: int) -> str:
        return chapter_page(book, story.chapters[index], index == last)

    def web_page(index: int) -> str:
        return urls.chapter_path(story, story.chapters[index])

    def title(index: int) -> str:
        return story.title if story.single_file else story.chapters[index].heading

    def convert(index: int) -> bytes:
        body, ids = book.convert(html(index), web_page(index))
        whole = book.whole_document(book.chapter_files[story.chapters[index].slug], title(index), language, body, ids)
        packed = _Packed.of(whole) if whole is not None else None
        return marshal.dumps((body, ids, *((packed.crc, packed.size, packed.deflated) if packed else ())))

    keys = [book._conversion_key(html(index), web_page(index)) if book.converted is not None else ""
            for index in range(last + 1)]
    documents: list[tuple[bytes, list[str]] | None] = [None] * len(keys)
    whole: dict[int, tuple[list[str], _Packed]] = {}  # documents kept deflated whole
    missing: list[int] = []
    for index, found in enumerate(book.cached_many(keys)):
        if isinstance(found, _Whole):
            packed = found.packed(title(index), language)
            if packed is not None:  # nothing to make, nor to check against the previous book
                whole[index] = (found.ids, packed)
                continue
        elif found is not None:
            documents[index] = found
            continue
        missing.append(index)
    converted_here: set[int] = set()  # converted in this process, and not cached yet
    if workers > 1 and len(missing) >= PARALLEL_CHAPTERS and can_fork():
        chunks = [missing[start:start + 32] for start in range(0, len(missing), 32)]
        for chunk, results in in_workers(convert, chunks, workers):
            for index, data in zip(chunk, results):
                body, ids, *packed = marshal.loads(data)
                if packed:
                    deflated = _Packed(*packed)
                    whole[index] = (ids, deflated)
                    book.remember(keys[index], tuple(_Whole.of(ids, title(index), language, deflated)))
                else:
                    book.remember(keys[index], (body, ids))
                    documents[index] = (body, ids)
    else:  # (cached once the book is made: `remember_chapters`)
        for index in missing:
            documents[index] = book.convert(html(index), web_page(index))
        converted_here.update(missing)
    if book.converted is not None:
        book.converted.flush()
    for index, (chapter, document) in enumerate(zip(story.chapters, documents)):
        if index in whole:
            book.keep_packed(book.chapter_files[chapter.slug], title(index), *whole[index])
        else:
            assert document is not None
            book.keep(book.chapter_files[chapter.slug], title(index), *document)
            if keys[index]:
                book.unpacked[book.chapter_files[chapter.slug]] = (keys[index], index in converted_here)


def _document(book: _Book, file: str, language: str) -> bytes | _Packed:
    packed = book.packed.get(file)
    if packed is not None:
        return packed if book.streaming else packed.inflate()
    return _xhtml(book.documents[file][0], language, book.body(file))


@lru_cache(maxsize=1)
def _document_item(epub: Any) -> type:
    """ebooklib's EpubItem, with content made when it is written (`make`) rather than held."""

    class DocumentItem(epub.EpubItem):  # type: ignore[misc, name-defined]
        def __init__(self, make: Callable[[], bytes | _Packed], **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._make = make

        def get_content(self, default: bytes | None = None) -> bytes | _Packed:
            return self._make()

    return DocumentItem


@lru_cache(maxsize=1)
def _streaming_writer(epub: Any) -> type:
    """ebooklib's EpubWriter, writing each file of the book into a `_ZipStream` as it comes.

    `write_into` does what EpubWriter.write does, into the stream instead of a zipfile (whose
    entries would all be held, uncompressed, to be compressed and reused afterwards)."""

    class StreamingWriter(epub.EpubWriter):  # type: ignore[misc, name-defined]
        def write_into(self, stream: _ZipStream) -> bytes:
            self.out = stream
            stream.writestr("mimetype", "application/epub+zip")
            self._write_container()
            self._write_opf()
            self._write_items()
            return stream.finish()

    return StreamingWriter


def deterministic_zip(data: bytes, when: datetime, previous: bytes | None = None) -> bytes:
    """The same zip with every entry dated `when` and the same attributes: `mimetype` first and stored;
    the others deflated, or their deflated data taken from `previous` (see `write_zip`)."""
    source = zipfile.ZipFile(io.BytesIO(data))
    names = sorted(source.namelist(), key=lambda name: name != "mimetype")
    return write_zip([(name, source.read(name)) for name in names], when, previous)


# --- the zip --------------------------------------------------------------------------------------------------------
#
# Python's zipfile cannot write data that is already compressed, and after a one-chapter edit nearly every entry of a
# book is the same as in the book made before it. So the zip is written with `struct`, laid out as zipfile lays out
# `ZipInfo(name, date_time=when)` with create_system 3 and mode 0644 (no extra fields, no data descriptors, no zip64),
# and the deflated data of an entry the previous book holds is copied from there.
#
# The entries are deflated by ISA-L (python-isal) at its level `_LEVEL`: on a book of 300 chapters, 6% bigger than
# zlib at level 4, in a quarter of the time (0.2 s less of a processor for every thousand chapters).

_LEVEL = 3  # ISA-L's highest
_LOCAL = struct.Struct("<4s2B4HL2L2H")  # local header: signature, version, 0, flags, method, time, date, CRC, sizes…
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")  # central directory entry: the same, with attributes and the header's offset
_END = struct.Struct("<4s4H2LH")  # end record: entry counts, the central directory's size and offset, comment length
_ATTRIBUTES = 0o100644 << 16  # a regular file, rw-r--r--


def _deflate(data: bytes) -> bytes:
    """Raw deflate data, at `_LEVEL`."""
    packer = isal_zlib.compressobj(_LEVEL, zlib.DEFLATED, -15)
    return packer.compress(data) + packer.flush()


def _deflate_all(contents: list[bytes]) -> list[bytes]:
    """`_deflate` of each, on a thread per processor when there is much of it (ISA-L lets go of the GIL)."""
    threads = min(os.cpu_count() or 1, 8)
    if threads < 2 or sum(map(len, contents)) < 1 << 22:
        return [_deflate(data) for data in contents]
    with ThreadPoolExecutor(threads) as pool:  # thread k deflates contents[k::threads], in order
        shares = list(pool.map(lambda k: [_deflate(data) for data in contents[k::threads]], range(threads)))
    result: list[bytes] = [b""] * len(contents)
    for k, share in enumerate(shares):
        result[k::threads] = share
    return result


def _deflated_entries(previous: bytes | None) -> dict[tuple[int, int], list[memoryview]]:
    """The raw deflate data of the entries of `previous`, a zip `write_zip` made, by (CRC-32, size).

    Damage only ends the reading early (`_deflated`), since every entry is checked before it is used
    (`_inflates_to`)."""
    found: dict[tuple[int, int], list[memoryview]] = {}
    if previous:
        view = memoryview(previous)
        for _, crc, size, start, length in _deflated(previous):
            found.setdefault((crc, size), []).append(view[start:start + length])
    return found


def _entries_by_name(zipped: bytes) -> dict[str, tuple[int, int, bytes]]:
    """(CRC-32, size, raw deflate data) of each deflated entry of `zipped`, a zip `write_zip` made, by name."""
    return {name.decode("utf-8", "replace"): (crc, size, zipped[start:start + length])
            for name, crc, size, start, length in _deflated(zipped)}


def _deflated(zipped: bytes) -> Iterator[tuple[bytes, int, int, int, int]]:
    """(name, CRC-32, size, where its raw deflate data starts, its length) of each deflated entry of
    `zipped`, a zip `write_zip` made, read through its central directory; damage ends the reading."""
    if len(zipped) < _END.size:
        return
    try:
        signature, _, _, _, count, _, position, _ = _END.unpack_from(zipped, len(zipped) - _END.size)
        for _ in range(count if signature == b"PK\x05\x06" else 0):
            entry = _CENTRAL.unpack_from(zipped, position)
            flags, method, crc, packed, size, name, extra, comment, offset = entry[5:7] + entry[9:15] + entry[-1:]
            local = _LOCAL.unpack_from(zipped, offset)
            if entry[0] != b"PK\x01\x02" or local[0] != b"PK\x03\x04":
                return
            file = zipped[position + _CENTRAL.size:position + _CENTRAL.size + name]
            position += _CENTRAL.size + name + extra + comment
            start = offset + _LOCAL.size + local[-2] + local[-1]
            if method == zipfile.ZIP_DEFLATED and not flags & 1 and start + packed <= len(zipped):
                yield file, crc, size, start, packed
    except struct.error:
        return


def _inflates_to(packed: memoryview, data: bytes) -> bool:
    """Whether `packed` is one whole raw deflate stream of exactly `data`."""
    inflater = zlib.decompressobj(-15)
    try:
        return inflater.decompress(packed, len(data) + 1) == data and inflater.eof and not inflater.unused_data
    except zlib.error:
        return False


def _inflates_to_image(packed: memoryview, image: _Image) -> bool:
    """Whether `packed` is one whole raw deflate stream of exactly the image's bytes: `_inflates_to`, inflating
    and reading the file `IMAGE_CHUNK` at a time."""
    if image.source is None:
        return _inflates_to(packed, image.data or b"")
    inflater = zlib.decompressobj(-15)
    try:
        with open(image.source, "rb") as handle:
            for start in range(0, len(packed), IMAGE_CHUNK):
                data = packed[start:start + IMAGE_CHUNK]
                while data:
                    part = inflater.decompress(data, IMAGE_CHUNK)
                    if part != handle.read(len(part)):
                        return False
                    data = inflater.unconsumed_tail
            return inflater.eof and not inflater.unused_data and handle.read(1) == b""
    except (OSError, zlib.error):
        return False


_MAX_ENTRIES = 0xFFFF  # from here on a zip needs zip64…
_MAX_BYTES = zipfile.ZIP64_LIMIT  # …and from here on, as zipfile writes it


class _TooBig(Exception):
    """The zip needs zip64 (65,535 entries or more, or over 4 GiB), which `_ZipStream` does not write."""


class _ZipStream:
    """The zip `write_zip` makes, written an entry at a time (`writestr`, as zipfile's), then `finish`ed.

    An entry whose content `previous` (an earlier zip made here, or anything at all) holds deflated
    keeps that deflated data, once it is found to inflate to exactly the content: the same bytes as
    compressing it again, as long as `previous` was made with the same ISA-L (see `EpubCache.previous`).
    The others are deflated a few megabytes at a time, on a thread per processor.
    """

    def __init__(self, when: datetime, previous: bytes | None = None) -> None:
        self._date = (min(when.year, 2107) - 1980) << 9 | when.month << 5 | when.day
        self._time = when.hour << 11 | when.minute << 5 | when.second // 2
        self._reusable = _deflated_entries(previous)
        self._queue: list[tuple[str, int, int, bytes | memoryview | None, bytes]] = []  # name, CRC, size, body, data
        self._queued = 0  # bytes in the queue still to deflate
        self._out = io.BytesIO()
        self._directory: list[bytes] = []

    def writestr(self, name: str, data: bytes | str | _Packed | _Image, compress_type: int | None = None) -> None:
        if isinstance(data, _Image):
            self.write_image(name, data)
            return
        if isinstance(data, _Packed):  # deflated already
            if data.size > _MAX_BYTES:
                raise _TooBig
            self._queue.append((name, data.crc, data.size, data.deflated, b""))
            return
        data = data.encode("utf-8") if isinstance(data, str) else data
        if len(data) > _MAX_BYTES:
            raise _TooBig
        crc = zlib.crc32(data)
        found = (packed for packed in self._reusable.get((crc, len(data)), ()) if _inflates_to(packed, data))
        body = data if name == "mimetype" else next(found, None)
        self._queue.append((name, crc, len(data), body, b"" if body is not None else data))
        if body is None:
            self._queued += len(data)
            if self._queued > 1 << 23:
                self._flush()

    def write_image(self, name: str, image: _Image) -> None:
        """An image's entry, from its file a piece at a time: its deflated data taken from `previous` when that
        inflates to the file (checked a piece at a time), else deflated as it is read. (Deflated in pieces, a
        file longer than `IMAGE_CHUNK` has other deflated bytes than `_deflate` of it whole would give.)"""
        if image.size > _MAX_BYTES:
            raise _TooBig
        self._flush()  # the entries before it, in their order
        found = next((packed for packed in self._reusable.get((image.crc, image.size), ())
                      if _inflates_to_image(packed, image)), None)
        offset = self._out.tell()
        encoded, fields = self._fields(name, image.crc, len(found) if found is not None else 0, image.size)
        self._out.write(_LOCAL.pack(b"PK\x03\x04", *fields))
        self._out.write(encoded)
        if found is None:  # the header is written again once the CRC and sizes are known
            start = self._out.tell()
            packer, crc, size = isal_zlib.compressobj(_LEVEL, zlib.DEFLATED, -15), 0, 0
            for chunk in image.chunks():
                crc, size = zlib.crc32(chunk, crc), size + len(chunk)
                self._out.write(packer.compress(chunk))
            self._out.write(packer.flush())
            end = self._out.tell()
            encoded, fields = self._fields(name, crc, end - start, size)
            self._out.seek(offset)
            self._out.write(_LOCAL.pack(b"PK\x03\x04", *fields))
            self._out.seek(end)
            if size > _MAX_BYTES:
                raise _TooBig
        else:
            self._out.write(found)
        self._directory += [_CENTRAL.pack(b"PK\x01\x02", 20, 3, *fields, 0, 0, 0, _ATTRIBUTES, offset), encoded]
        if len(self._directory) // 2 >= _MAX_ENTRIES or self._out.tell() > _MAX_BYTES:
            raise _TooBig

    def _fields(self, name: str, crc: int, packed: int, size: int) -> tuple[bytes, tuple[int, ...]]:
        """An entry's name as the zip holds it, and the fields of its local header (`_LOCAL`, after the signature)."""
        try:
            encoded, flags = name.encode("ascii"), 0
        except UnicodeEncodeError:
            encoded, flags = name.encode("utf-8"), 0x800  # as zipfile marks a UTF-8 name
        method = zipfile.ZIP_STORED if name == "mimetype" else zipfile.ZIP_DEFLATED
        return encoded, (20, 0, flags, method, self._time, self._date, crc, packed, size, len(encoded), 0)

    def _flush(self) -> None:
        missing = [index for index, entry in enumerate(self._queue) if entry[3] is None]
        packed = dict(zip(missing, _deflate_all([self._queue[index][4] for index in missing])))
        for index, (name, crc, size, body, _) in enumerate(self._queue):
            body = packed[index] if body is None else body
            encoded, fields = self._fields(name, crc, len(body), size)
            offset = self._out.tell()
            self._out.write(_LOCAL.pack(b"PK\x03\x04", *fields))
            self._out.write(encoded)
            self._out.write(body)
            self._directory += [_CENTRAL.pack(b"PK\x01\x02", 20, 3, *fields, 0, 0, 0, _ATTRIBUTES, offset), encoded]
        self._queue, self._queued = [], 0
        if len(self._directory) // 2 >= _MAX_ENTRIES or self._out.tell() > _MAX_BYTES:
            raise _TooBig

    def finish(self) -> bytes:
        self._flush()
        central = b"".join(self._directory)
        count = len(self._directory) // 2
        self._out.write(central)
        self._out.write(_END.pack(b"PK\x05\x06", 0, 0, count, count, len(central), self._out.tell() - len(central), 0))
        return self._out.getvalue()

    def close(self) -> None:
        """What zipfile's writers have; `finish` gives the bytes."""


def write_zip(entries: list[tuple[str, bytes]], when: datetime, previous: bytes | None = None) -> bytes:
    """A zip of `entries` in their order, each dated `when`: `mimetype` stored, the others deflated or
    taken from `previous` (see `_ZipStream`)."""
    stream = _ZipStream(when, previous)
    try:
        for name, data in entries:
            stream.writestr(name, data)
        return stream.finish()
    except _TooBig:
        return _zipfile_zip(entries, when)  # zip64 territory: leave it to zipfile


def _zipfile_zip(entries: list[tuple[str, bytes]], when: datetime) -> bytes:
    """The zip `write_zip` gives, with zip64 records and deflated by zlib, made by zipfile: for books too big
    for a plain zip."""
    stamp = (min(when.year, 2107), when.month, when.day, when.hour, when.minute, when.second)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.create_system = 3
            info.external_attr = _ATTRIBUTES
            info.compress_type = zipfile.ZIP_STORED if name == "mimetype" else zipfile.ZIP_DEFLATED
            target.writestr(info, data)
    return out.getvalue()


@lru_cache(maxsize=1)
def _code_version() -> str:
    """This module, ebooklib and ISA-L: a change to any makes every cached EPUB stale (and, for ISA-L, the
    deflated data of the books made before no longer what compressing gives: see `EpubCache.previous`).
    ebooklib is known by its book-writing module's source, found without importing it (or reading the
    installed package's metadata, which costs more than the rest of the EPUB stage's start)."""
    from importlib.util import find_spec

    code = hashlib.blake2b(Path(__file__).read_bytes(), digest_size=16)
    spec = find_spec("ebooklib.epub")
    code.update(Path(spec.origin).read_bytes() if spec is not None and spec.origin else b"no ebooklib")
    return code.hexdigest() + f" python-isal {isal.__version__} ISA-L {isal.ISAL_VERSION}"


@lru_cache(maxsize=1)
def _code_tag() -> str:
    """A short name for `_code_version()`, which starts the cache key of every EPUB this code makes."""
    return hashlib.blake2b(_code_version().encode(), digest_size=6).hexdigest()


_TEXTS = ("html", "notes_before_html", "notes_after_html", "summary_html")  # a chapter's texts: hashed, not repr'd


def cache_key(site: Site, story: Story, images: dict[str, _Image], series: tuple[int, str] | None = None) -> str:
    """A hash of everything that goes into the story's EPUB (and the Serialist version, with `digest`),
    after `_code_tag()`. The chapters' texts (megabytes) are hashed, and the images go in as their SHA-256 (see
    `_Image`: made a piece at a time); the rest goes in as its `repr`, but
    for `body`, the Markdown, which is in the book only as the `html` made from it."""
    texts = hashlib.sha256()
    for chapter in story.chapters:
        for name in _TEXTS:
            text = getattr(chapter, name).encode("utf-8", "surrogatepass")
            texts.update(len(text).to_bytes(8, "little"))
            texts.update(text)
    outline = replace(story, chapters=tuple(replace(chapter, body="", html="", notes_before_html="",
                                                    notes_after_html="", summary_html="")  # _TEXTS, and `body`
                                            for chapter in story.chapters))
    return _code_tag() + "-" + digest("epub", _code_version(), repr(site.config), repr(outline), texts.hexdigest(),
                                      repr(series), *(part for path, image in images.items() for part in (path, image.sha256)))


@dataclass(frozen=True, slots=True)
class EpubCache:
    """Finished EPUBs in `.serialist-cache/epub/<story>/<key>.epub`, the newest few of each story.

    A story that changes on every save (`serialist serve`) would otherwise fill the folder; a few are
    kept so that switching between a build with drafts and one without finds both.
    """

    folder: Path
    enabled: bool = True
    keep: int = 3

    @classmethod
    def for_site(cls, root: Path, enabled: bool = True) -> EpubCache:
        return cls(root / CACHE_DIR / "epub", enabled)

    def get(self, story: str, key: str) -> bytes | None:
        if not self.enabled:
            return None
        try:
            data = (self.folder / story / f"{key}.epub").read_bytes()
        except OSError:
            return None
        # A damaged file (cut short, or not ours) is not an EPUB: make the book again.
        return data if data[:4] == b"PK\x03\x04" and data[30:38] == b"mimetype" and data[-22:-18] == b"PK\x05\x06" \
            else None

    def put(self, story: str, key: str, data: bytes) -> None:
        if not self.enabled:
            return
        try:
            atomic_write(self.folder / story / f"{key}.epub", data)
            entries = sorted((p for p in (self.folder / story).glob("*.epub")), key=lambda p: p.stat().st_mtime_ns)
            for old in entries[:-self.keep]:
                old.unlink(missing_ok=True)
        except OSError:
            pass  # a cache that cannot be written only costs time

    def previous(self, story: str, key: str) -> bytes | None:
        """The newest EPUB of `story` made by this same code (its key starts with the same `_code_tag()`, so
        with the same zlib), for `write_zip` to take deflated data from; None when there is none."""
        if not self.enabled:
            return None
        try:
            made = [(p.stat().st_mtime_ns, p) for p in (self.folder / story).glob(key.partition("-")[0] + "-*.epub")]
            return max(made)[1].read_bytes() if made else None
        except OSError:
            return None


def render_epubs(site: Site, cache: EpubCache | None = None, converted: Cache | None = None,
                 workers: int = 1) -> list[AnyFile]:
    """The EPUB of every story: from the cache when nothing that goes into it changed, and otherwise made,
    with the XHTML of unchanged chapters from `converted`; either way, when it is written (see `_book`).

    A book is an `early` `LazyFile`: when the pages are made in worker processes, one of them makes the book
    (first hashing what goes into it, megabytes of a long story's text, to look for it in the cache) while
    the others make pages (see `parallel.made`). The book of a story longer than `EARLY_WORDS` is made
    now, its chapters converted in `workers` processes: a worker making it would need its own memory for
    all of it."""
    assets = {asset.path: asset for story in site.stories for asset in story.assets}
    taxonomy = build_taxonomy(site)
    files: list[AnyFile] = []
    for story in site.stories:
        part = taxonomy.part_of(story)
        series = (part.number, part.series) if part is not None else None
        book = partial(_book, site, story, assets, series, cache, converted, os.getpid(), workers)
        if story.words > EARLY_WORDS:  # made now: a worker would hold this long book besides what it shares
            files.append(OutputFile(urls.epub_path(story), book()))
        else:
            files.append(LazyFile(urls.epub_path(story), book, weight=len(story.chapters) + 1, early=True))
    return files


def _book(site: Site, story: Story, assets: dict[str, Asset], series: tuple[int, str] | None,
          cache: EpubCache | None, converted: Cache | None, build: int, workers: int = 1) -> bytes:
    """The story's EPUB: the cache's, when it has the book of what goes into it now; else made (from the
    previous one where it can) and put in the cache. In the `build` process with `workers`, alone in a
    worker process."""
    images = _inputs(site, story, assets)
    workers = workers if os.getpid() == build else 1
    if cache is None or not cache.enabled:
        return make_epub(site, story, assets, images, series, converted, None, workers)
    key = cache_key(site, story, images, series)
    data = cache.get(story.slug, key)
    if data is None:
        data = make_epub(site, story, assets, images, series, converted, cache.previous(story.slug, key), workers)
        cache.put(story.slug, key, data)
    return data
