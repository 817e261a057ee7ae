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
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from html import unescape
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable
from urllib.parse import unquote, urlsplit

from generator.errors import ProblemLog
from generator.model import Asset, Chapter, Site, Story
from generator.output import CopiedFile

if TYPE_CHECKING:
    from markdown_it.token import Token

    from generator.markdown import LinkTargets, Origin

FILE_SCHEME = "serialist-file"
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


def file_placeholder(url_path: str, fragment: str = "") -> str:
    """The placeholder of a published file, by its percent-encoded path from the output root."""
    return f"{FILE_SCHEME}:{url_path}" + (f"#{fragment}" if fragment else "")


_FILE_PLACEHOLDER = re.compile(r'(\s(?:href|src)=")' + FILE_SCHEME + r':([^"#]*)((?:#[^"]*)?)"')


def resolve_files(html: str, page_url: Callable[[str], str]) -> str:
    """Turn file placeholders into links from one page; `page_url` maps a path from the output root."""
    if FILE_SCHEME + ":" not in html:
        return html
    return _FILE_PLACEHOLDER.sub(lambda m: f'{m.group(1)}{page_url(m.group(2))}{m.group(3)}"', html)


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
        return file_placeholder(published)
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
    return file_placeholder(published, local[1]) if published is not None else None


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


def copy_assets(site: Site, made: Iterable[str], log: ProblemLog) -> list[CopiedFile]:
    """Every story's published files (see `with_referenced_files`), for the output (copied there a piece at a
    time: a file of hundreds of megabytes is never held in memory); a file where the site puts a page of its
    own is an error."""
    files = set(made)
    folders = {parent for path in files for parent in _parents(path)}
    copied: list[CopiedFile] = []
    for story in site.stories:
        for asset in story.assets:
            if asset.path in files or asset.path in folders or any(p in files for p in _parents(asset.path)):
                log.error(asset.source, None, f"this file would be published as {asset.path}, where Serialist "
                          "puts a page of the site; rename it, or move it into a folder such as images/")
                continue
            if _readable(asset, log):
                copied.append(CopiedFile(asset.path, asset.source))
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
