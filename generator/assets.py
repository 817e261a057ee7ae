"""Files beside the chapters: images, covers, anything that is not Markdown.

Every such file in a story's folder (for a one-shot `content/<name>.md`, in
`content/<name>.assets/`) is an `Asset` of the story, which may be published at
the same relative place under `output/<story>/` (`copy_assets`): it is, when
a published text (a chapter's text, notes or summary, the story's summary or
notes) refers to it, or it is the story's cover (`with_referenced_files`). The
rest stay private: outlines, notes, old versions, the images of drafts. Files
meant to go out as they are go in the site's `static/` folder (`copy_static`).

Markdown refers to them relative to its own file (`![Map](images/map.png)`),
but a chapter's page lives one folder deeper (`<story>/<chapter>/index.html`).
So at the Markdown stage such references become placeholders
`serialist-file:<path from the output root>` (`rewrite_files`), turned into a
link relative to each page that shows the text (`resolve_files`, called from
`markdown.resolve_links`), an absolute URL in feeds, and an embedded file in
the EPUB. A reference to an image that is not there is an error with the file
and line.

An author cannot write such a placeholder: the Markdown stage writes its own
with a scheme that carries a random token of the process (`SEALED_FILE_SCHEME`),
which nothing ever writes out. The sanitiser lets only that one through, so it
drops a `serialist-file:` the author wrote (which would otherwise become any
link, `javascript:` included); `markdown.unseal` then gives the placeholders
the scheme that the later stages read. A URL of the author's with one of
Serialist's own schemes is an error with the file and line besides
(`markdown._refuse_internal_schemes`). After the placeholders are resolved for
a page, a link that is not `safe_url` is left out.

An SVG image is a document that can hold scripts, which a browser runs when the
image is opened on its own, on the site's own address. So an SVG is published
(and put in the EPUB) without them (`published_bytes`, `clean_svg`): without
`<script>`, `<foreignObject>`, event handlers (`onload=`…), and `javascript:`
links; one that is not XML, declares entities, or is not an SVG at all is an
error naming it.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import xml.parsers.expat
from dataclasses import replace
from html import unescape
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable
from urllib.parse import unquote, urlsplit

from generator.errors import ProblemLog
from generator.model import Asset, Chapter, Site, Story
from generator.output import CopiedFile, OutputFile

if TYPE_CHECKING:
    from markdown_it.token import Token

    from generator.markdown import LinkTargets, Origin

FILE_SCHEME = "serialist-file"
# The token of the schemes the Markdown stage writes its placeholders with, before the sanitiser: random for each
# process, and never in anything written, so that no text can forge one (see the module's doc).
SEAL = secrets.token_hex(8)
SEALED_FILE_SCHEME = f"{FILE_SCHEME}-{SEAL}"
ASSETS_SUFFIX = ".assets"  # a one-shot's files: `content/<name>.assets/` beside `content/<name>.md`
MARKDOWN_SUFFIXES = (".md", ".markdown", ".mdown")  # what a chapter's file name ends in (`load.CHAPTER_SUFFIXES`)

# The images every EPUB reader shows (EPUB 3's core media types), which are also what covers may be.
IMAGE_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".svg": "image/svg+xml",
}


def file_placeholder(url_path: str, fragment: str = "", scheme: str = FILE_SCHEME) -> str:
    """The placeholder of a published file, by its percent-encoded path from the output root (`scheme`: the
    Markdown stage's own, `SEALED_FILE_SCHEME`)."""
    return f"{scheme}:{url_path}" + (f"#{fragment}" if fragment else "")


_FILE_PLACEHOLDER = re.compile(r'(\s(?:href|src)=")' + FILE_SCHEME + r':([^"#]*)((?:#[^"]*)?)"')


# The schemes a link or an image of a text may have (besides none: a relative URL, `#…`, `//host/…`).
SAFE_SCHEMES = frozenset({"http", "https", "mailto"})
_URL_EDGES = re.compile(r"^[\x00-\x20]+|[\x00-\x20]+$")  # what a browser strips from either end of a URL…
_URL_TABS = re.compile(r"[\t\n\r]+")  # …and leaves out anywhere in it
_SCHEME = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*):")


def url_scheme(url: str) -> str:
    """The scheme of `url` (the value of an attribute, its character references already read) as a browser
    takes it, in lower case: `javascript` for ` Java&#9;Script:…`; "" for a relative URL."""
    found = _SCHEME.match(_URL_TABS.sub("", _URL_EDGES.sub("", url)))
    return found.group(1).lower() if found is not None else ""


def safe_url(url: str) -> bool:
    """Whether a link or image of a text may lead to `url` (as `url_scheme` takes it): http(s), mailto, relative."""
    scheme = url_scheme(url)
    return not scheme or scheme in SAFE_SCHEMES


def resolve_files(html: str, page_url: Callable[[str], str]) -> str:
    """Turn file placeholders into links from one page; `page_url` maps a path from the output root. A link
    that would not be `safe_url` (none is: the paths are percent-encoded) is left out."""
    if FILE_SCHEME + ":" not in html:
        return html

    def link(match: re.Match[str]) -> str:
        url = page_url(match.group(2)) + match.group(3)
        return f'{match.group(1)}{url}"' if safe_url(unescape(url)) else ""

    return _FILE_PLACEHOLDER.sub(link, html)


def placeholder_paths(html: str) -> list[str]:
    """The paths from the output root (unquoted) of the files `html` shows as images, in order."""
    return [unquote(m.group(2)) for m in _FILE_PLACEHOLDER.finditer(html) if m.group(1).endswith('src="')]


def file_references(*htmls: str) -> set[str]:
    """The paths from the output root (`Asset.path`) of every file the rendered `htmls` show or link to."""
    return {unquote(m.group(2)) for html in htmls if FILE_SCHEME + ":" in html
            for m in _FILE_PLACEHOLDER.finditer(html)}


def chapter_references(chapter: Chapter) -> set[str]:
    """`file_references` of a rendered chapter: its text, notes and summary."""
    return file_references(chapter.html, chapter.notes_before_html, chapter.notes_after_html, chapter.summary_html)


def referenced_files(story: Story) -> set[str]:
    """The paths (`Asset.path`) of the files of a rendered story that are published: those its texts refer to
    (its summary and notes, and its chapters' texts, notes and summaries: of the chapters published, which are
    those it has now) and its cover."""
    found = file_references(story.summary_html, story.notes_before_html, story.notes_after_html)
    for chapter in story.chapters:
        found |= chapter_references(chapter)
    if story.cover:
        found.add(unquote(story.cover))
    return found


def with_referenced_files(site: Site) -> Site:
    """The rendered site whose stories keep, of their files, only those published (`referenced_files`): a file
    that nothing published refers to stays private, and no later stage can publish it."""
    referenced = set().union(*(referenced_files(story) for story in site.stories))
    return replace(site, stories=tuple(replace(story, assets=tuple(a for a in story.assets if a.path in referenced))
                                       for story in site.stories))


# --- the Markdown stage ----------------------------------------------------------------------------------------

def _story_folder(origin: Origin) -> Path:
    """Where the files of the story that `origin` belongs to live (for messages)."""
    folder = origin.path.parent
    if (folder / "story.md").is_file():
        return folder
    return origin.path.with_name(origin.path.stem + ASSETS_SUFFIX)


def _local(ref: str) -> tuple[str, str] | None:
    """(path, fragment) of a reference to a local file, or None for URLs, `/…`, `#…` and empty ones."""
    parts = urlsplit(ref.strip())
    if parts.scheme or parts.netloc or not parts.path or ref.startswith("/"):
        return None
    return unquote(parts.path), parts.fragment


def _target(origin: Origin, path: str) -> Path | None:
    """The file `path` (relative to the Markdown file) names, or None when no file can have that name."""
    try:
        return (origin.path.parent / path).resolve()
    except (OSError, ValueError, RuntimeError):  # a NUL byte, a loop of links
        return None


def _is_file(path: Path | None) -> bool:
    try:
        return path is not None and path.is_file()
    except (OSError, ValueError):  # a name too long
        return False


def _image(ref: str, origin: Origin, line: int, targets: LinkTargets, log: ProblemLog) -> str | None:
    """The placeholder for an image reference, or None (logged when the image is missing)."""
    local = _local(ref)
    if local is None:
        return None
    target = _target(origin, local[0])
    published = targets.files.get(target) if target is not None else None
    if published is not None:
        return file_placeholder(published, scheme=SEALED_FILE_SCHEME)
    folder = _story_folder(origin)
    if _is_file(target):
        log.error(origin.path, line, f"the image `{ref}` is not published: it is outside the story's folder "
                  f"{folder.name}/ (or a hidden or temporary file); move it into {folder.name}/, "
                  f"for example {folder.name}/images/")
    else:
        where = f"there is no file {target.name} in {target.parent.name}/" if target else "no file can have that name"
        log.error(origin.path, line, f"the image `{ref}` does not exist: {where}; fix the path, or add the "
                  f"image to {folder.name}/")
    return None


def _link(ref: str, origin: Origin, targets: LinkTargets) -> str | None:
    """The placeholder for a link to a published file, or None (other links are `_rewrite_links`' to check)."""
    local = _local(ref)
    if local is None or local[0].lower().endswith(MARKDOWN_SUFFIXES):
        return None
    target = _target(origin, local[0])
    published = targets.files.get(target) if target is not None else None
    return file_placeholder(published, local[1], SEALED_FILE_SCHEME) if published is not None else None


_RAW_TAG = re.compile(r"<(img|a)\b[^>]*>", re.IGNORECASE)
_SRC_ATTR = re.compile(r"""(\ssrc\s*=\s*)("[^"]*"|'[^']*'|[^\s>"']+)""", re.IGNORECASE)
_HREF_ATTR = re.compile(r"""(\shref\s*=\s*)("[^"]*"|'[^']*'|[^\s>"']+)""", re.IGNORECASE)


def _rewrite_raw(html: str, origin: Origin, line: int, targets: LinkTargets, log: ProblemLog) -> str:
    """Image references and links to files in the author's own HTML (`<img src="images/map.png">`,
    `<a href="images/map.pdf">`)."""
    lower = html.lower()
    if "<img" not in lower and "<a" not in lower:
        return html

    def tag(match: re.Match[str]) -> str:
        at = line + html.count("\n", 0, match.start())
        image = match.group(1).lower() == "img"

        def attribute(attr: re.Match[str]) -> str:
            value = unescape(attr.group(2).strip("\"'"))
            new = _image(value, origin, at, targets, log) if image else _link(value, origin, targets)
            return attr.group(0) if new is None else f'{attr.group(1)}"{new}"'

        return (_SRC_ATTR if image else _HREF_ATTR).sub(attribute, match.group(0), count=1)

    return _RAW_TAG.sub(tag, html)


def rewrite_files(tokens: list[Token], origin: Origin, targets: LinkTargets, log: ProblemLog) -> None:
    """References to published files become placeholders; missing images are errors with their line."""
    for token in tokens:
        if token.type == "html_block":
            token.content = _rewrite_raw(token.content, origin, origin.line + (token.map[0] if token.map else 0),
                                         targets, log)
            continue
        if token.type != "inline" or not token.children:
            continue
        line = origin.line + (token.map[0] if token.map else 0)
        for child in token.children:
            if child.type in ("softbreak", "hardbreak"):
                line += 1
            elif child.type == "image":
                new = _image(str(child.attrs.get("src", "")), origin, line, targets, log)
                if new is not None:
                    child.attrs["src"] = new
            elif child.type == "link_open":
                new = _link(str(child.attrs.get("href", "")), origin, targets)
                if new is not None:
                    child.attrs["href"] = new
            elif child.type == "html_inline":
                child.content = _rewrite_raw(child.content, origin, line, targets, log)


# --- SVG images -----------------------------------------------------------------------------------------------

SVG_NAMESPACE = "http://www.w3.org/2000/svg"
_XHTML_NAMESPACE = "http://www.w3.org/1999/xhtml"
_XML_NAMESPACE = "http://www.w3.org/XML/1998/namespace"
# Elements left out with everything in them (by their name without prefix, in lower case, in any namespace):
# scripts, HTML inside the image, and SVG Tiny's event handlers.
_UNSAFE_ELEMENTS = frozenset({"script", "foreignobject", "handler", "listener"})
_ANIMATIONS = frozenset({"set", "animate", "animatecolor", "animatemotion", "animatetransform"})
_DATA_IMAGE = frozenset({"image", "feimage"})  # may show an image from a `data:image/…` URL
_URL_NOISE = re.compile(r"[\x00-\x20]+")  # what a browser ignores in a URL before its scheme


class SvgError(Exception):
    """An SVG image that cannot be published: the message says why and what to do (`line`, in the file)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


class _Unsafe(Exception):
    """Raised while only looking: the image has something to leave out."""


class _SvgReader:
    """The handlers of an expat parser reading an SVG image: with `write` False, only to look (raising `_Unsafe`
    at the first thing to leave out); else writing the image again into `out` without what is unsafe (named
    in `removed`)."""

    def __init__(self, write: bool) -> None:
        self.write = write
        self.out: list[str] = []
        self.removed: dict[str, None] = {}
        self.namespaces: list[dict[str, str]] = [{"xml": _XML_NAMESPACE}]  # prefix ("" the default) → namespace
        self.skipping = 0  # how deep inside an element left out
        self.opened = False  # whether the last thing written is a start tag (so its element may be empty)

    def drop(self, what: str) -> None:
        if not self.write:
            raise _Unsafe
        self.removed.setdefault(what, None)

    def start(self, name: str, attributes: list[str]) -> None:
        if self.skipping:
            self.skipping += 1
            return
        pairs = list(zip(attributes[::2], attributes[1::2]))
        scope = self.namespaces[-1]
        declared = {key[6:]: value for key, value in pairs if key.startswith("xmlns:")}
        if any(key == "xmlns" for key, _ in pairs):
            declared[""] = next(value for key, value in pairs if key == "xmlns")
        if declared:
            scope = {**scope, **declared}
        prefix, _, local = name.rpartition(":")
        namespace = scope.get(prefix, "")
        if len(self.namespaces) == 1 and (local != "svg" or namespace != SVG_NAMESPACE):
            raise SvgError(f"the file is not an SVG image: its first element is `<{name}>`, where an SVG image has "
                           f"`<svg xmlns=\"{SVG_NAMESPACE}\">`; save it again as SVG from an image editor")
        local = local.lower()
        animated = next((value.strip().rpartition(":")[2].lower() for key, value in pairs
                         if key == "attributeName"), "") if local in _ANIMATIONS else ""
        if (local in _UNSAFE_ELEMENTS or namespace == _XHTML_NAMESPACE
                or animated == "href" or animated.startswith("on")):
            self.drop(f"<{name}>")
            self.skipping = 1
            return
        self.namespaces.append(scope)
        kept: list[str] = []
        for key, value in pairs:
            attribute = key.rpartition(":")[2].lower()
            if attribute.startswith("on") or key == "xml:base":  # an event handler; what links start from
                self.drop(f"{key}=")
                continue
            if attribute in ("href", "src"):
                url = _URL_NOISE.sub("", value).lower()
                if url.startswith(("javascript:", "vbscript:")) or (
                        url.startswith("data:") and not (local in _DATA_IMAGE and url.startswith("data:image/"))):
                    self.drop(f"{url.partition(':')[0]}: link")
                    continue
            if self.write:
                kept.append(f' {key}="{_escape(value, True)}"')
        if self.write:
            self.out.append(f"<{name}{''.join(kept)}>")
            self.opened = True

    def end(self, name: str) -> None:
        if self.skipping:
            self.skipping -= 1
            return
        self.namespaces.pop()
        if self.write:
            if self.opened:  # an empty element
                self.out[-1] = self.out[-1][:-1] + "/>"
            else:
                self.out.append(f"</{name}>")
            self.opened = False

    def text(self, data: str) -> None:
        if not self.skipping:
            self.out.append(_escape(data, False))
            self.opened = False

    def instruction(self, target: str, data: str) -> None:
        if target.lower() == "xml-stylesheet":  # a style sheet may be XSLT, which can make a page with scripts
            self.drop("<?xml-stylesheet?>")

    def entity(self, name: str, *args: object) -> None:
        raise SvgError(f"the SVG image declares the entity `{name}` (`<!ENTITY`), which Serialist does not read: "
                       "a few lines of entities can grow into gigabytes; save the image again without them, "
                       "for example as “plain” or “optimized” SVG")

    def skipped(self, name: str, *args: object) -> None:
        raise SvgError(f"the SVG image uses the entity `&{name};`, which is not defined in it; save the image again "
                       "from an image editor, as “plain” or “optimized” SVG")


def _escape(text: str, attribute: bool) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if attribute:
        text = text.replace('"', "&quot;").replace("\t", "&#9;").replace("\n", "&#10;").replace("\r", "&#13;")
    else:
        text = text.replace("\r", "&#13;")
    return text


_CHUNK = 1 << 20  # bytes of an image handed to the parser at once


def _read_svg(data: bytes, reader: _SvgReader) -> None:
    parser = xml.parsers.expat.ParserCreate()
    parser.buffer_text = True
    parser.ordered_attributes = True  # (and with the defaults the document's own declarations give them)
    parser.StartElementHandler = reader.start
    parser.EndElementHandler = reader.end
    if reader.write:
        parser.CharacterDataHandler = reader.text
    parser.ProcessingInstructionHandler = reader.instruction
    parser.EntityDeclHandler = reader.entity
    parser.UnparsedEntityDeclHandler = reader.entity
    parser.SkippedEntityHandler = reader.skipped
    try:
        view = memoryview(data)
        for start in range(0, len(data), _CHUNK):
            parser.Parse(view[start:start + _CHUNK], False)
        parser.Parse(b"", True)
    except SvgError as exc:  # from a handler
        exc.line = exc.line or parser.CurrentLineNumber
        raise
    except xml.parsers.expat.ExpatError as exc:
        raise SvgError(f"the SVG image cannot be read: {xml.parsers.expat.ErrorString(exc.code)} at line "
                       f"{exc.lineno}, column {exc.offset + 1}; open it in an image editor and save it again as SVG",
                       exc.lineno) from None


def clean_svg(data: bytes) -> tuple[bytes, tuple[str, ...]]:
    """The SVG image `data` without what could run in a browser (scripts, HTML, event handlers, `javascript:`
    links, style sheets that may be XSLT), and what was left out: `data` itself, and nothing, when there is
    nothing to leave out. Written again, the image keeps its elements, attributes and text, in UTF-8, without
    its comments, processing instructions and document type. Raises `SvgError` for a file that is not XML, not
    an SVG, or declares entities (never expanded: a few lines of them can make gigabytes).

    Read with expat as it streams, a megabyte at a time: first only to look, then, when there is something to
    leave out, again to write the image."""
    try:
        _read_svg(data, _SvgReader(write=False))
        return data, ()
    except _Unsafe:
        pass
    reader = _SvgReader(write=True)
    _read_svg(data, reader)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + "".join(reader.out) + "\n").encode("utf-8"), \
        tuple(reader.removed)


# What `clean_svg` made of each image by (file, digest of its bytes): None when the image is published as it is.
_published: dict[tuple[Path, bytes], tuple[bytes, tuple[str, ...]] | None] = {}


def published_bytes(asset: Asset) -> tuple[bytes, tuple[str, ...]]:
    """What is published of the file `asset` (its bytes; for an SVG image, `clean_svg`'s), and what was left
    out of it. Raises OSError when it cannot be read, `SvgError` for an SVG that cannot be published.

    An SVG is read once in a build (the copy stage and the EPUB both ask: by its digest, in this process and the
    workers it starts afterwards)."""
    data = asset.source.read_bytes()
    if asset.source.suffix.lower() != ".svg":
        return data, ()
    key = (asset.source, hashlib.blake2b(data, digest_size=16).digest())
    if key in _published:
        return _published[key] or (data, ())
    cleaned, removed = clean_svg(data)
    if len(_published) >= 1000:  # (a `serve` session goes on for hours)
        _published.clear()
    _published[key] = (cleaned, removed) if removed else None
    return cleaned, removed


# --- the copy stage ----------------------------------------------------------------------------------------

def _parents(path: str) -> Iterable[str]:
    parts = path.split("/")
    return ("/".join(parts[:i]) for i in range(1, len(parts)))


def _readable(asset: Asset, log: ProblemLog) -> bool:
    try:
        os.close(os.open(asset.source, os.O_RDONLY))  # read when it is written
    except OSError as exc:
        log.error(asset.source, None, f"cannot read the file: {exc.strerror}")
        return False
    return True


def copy_assets(site: Site, made: Iterable[str], log: ProblemLog) -> list[CopiedFile | OutputFile]:
    """Every story's published files (see `with_referenced_files`), for the output (copied there a piece at a
    time: a file of hundreds of megabytes is never held in memory; an SVG image is read and cleaned, see
    `published_bytes`); a file where the site puts a page of its own is an error."""
    files = set(made)
    folders = {parent for path in files for parent in _parents(path)}
    copied: list[CopiedFile | OutputFile] = []
    for story in site.stories:
        for asset in story.assets:
            if asset.path in files or asset.path in folders or any(p in files for p in _parents(asset.path)):
                log.error(asset.source, None, f"this file would be published as {asset.path}, where Serialist "
                          "puts a page of the site; rename it, or move it into a folder such as images/")
                continue
            if asset.source.suffix.lower() != ".svg":  # copied a piece at a time when it is written
                if _readable(asset, log):
                    copied.append(CopiedFile(asset.path, asset.source))
                continue
            try:
                data, removed = published_bytes(asset)
            except OSError as exc:
                log.error(asset.source, None, f"cannot read the file: {exc.strerror}")
                continue
            except SvgError as exc:
                log.error(asset.source, exc.line, str(exc))
                continue
            if removed:
                log.warn(asset.source, None, f"the SVG image holds what could run as a program in a browser "
                         f"({', '.join(f'`{what}`' for what in removed)}): it is published without it; remove it "
                         "from the image to silence this warning")
            copied.append(OutputFile(asset.path, data))
    return copied


def copy_static(site: Site, made: dict[str, str], log: ProblemLog) -> list[CopiedFile]:
    """The files of the site's `static/` folder, for the output, at the same place from its root. `made` is what
    else the build puts there: path → what it is, in words (a page of the site, a story's file, a theme's file);
    a file of `static/` where one of those goes (or that would be a folder of theirs, or is in the way of one of
    their folders) is an error naming both."""
    folders: dict[str, str] = {}
    for path, what in made.items():
        for parent in _parents(path):
            folders.setdefault(parent, what)
    copied: list[CopiedFile] = []
    for asset in site.static:
        if asset.path in made:
            clash: str | None = f"{made[asset.path]} at {asset.path}"
        elif asset.path in folders:
            clash = f"a folder there (for {folders[asset.path]})"
        else:
            clash = next((f"{made[parent]} at {parent}" for parent in _parents(asset.path) if parent in made), None)
        if clash is not None:
            log.error(asset.source, None, f"this file would be published as {asset.path}, but the site puts "
                      f"{clash}; rename the file, or move it into a folder of static/ of its own")
            continue
        if _readable(asset, log):
            copied.append(CopiedFile(asset.path, asset.source))
    return copied
