"""Old addresses that keep working: `aliases:` of chapters and stories (Hugo's name and behaviour).

A chapter's `aliases:` lists the addresses it was published under before (`old-story/02-old-name/`);
a story's (in `story.md`, or a one-shot's file) the old addresses of the story, each a folder
(`old-story/`). The build writes a small page at each old address that sends the reader on to the
page as it is now (`pages.render_redirects`, through the theme's `alias.html`); a story's old address
also covers the old addresses of its whole-work pages and of each of its chapters
(`old-story/02-the-keeper/`), but not its feed, its EPUB or its images, which a page cannot redirect.

A chapter's feed guid is made from the first address it had (`first_address`): its first alias, with
its story's first alias in place of the story's folder, so that renaming a chapter or a story and
adding the `aliases:` line keeps it, and readers' feed readers do not announce it as new.

When the last build's output shows a page that this build no longer makes and no alias covers, the
build warns, naming the file that most likely took its place and the `aliases:` line to add
(`gone_pages`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection, Iterable, Mapping
from urllib.parse import unquote, urlsplit

from generator import urls
from generator.errors import ProblemLog, printable
from generator.model import Chapter, Site, Story
from generator.names import MAX_PATH_BYTES, long_name_problem

KEY = "aliases"
INDEX = "index.html"
EXAMPLE = "old-story/02-old-name/"

# What no address can hold: control characters (C0, C1, DEL), the line and paragraph separators,
# non-characters and lone surrogates.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ufdd0-\ufdef\ufffe\uffff\ud800-\udfff]")
_UNPORTABLE = re.compile(r'[<>:"|*\\]')  # what Windows refuses in a file name (the output may be copied there)


def alias_path(text: str, base_url: str = "", folder: bool = False) -> tuple[str, str | None]:
    """The old address `text` as a page path from the output root (`old-story/02-old-name/`, or `old.html` for
    a file's address), and None; or "" and why it cannot be one. A leading or trailing `/`, `index.html` at the
    end and `%` escapes are taken as a browser shows them. With `folder`, the address must be a folder's."""
    raw = text.strip()
    if not raw:
        return "", "an old address is empty; remove the empty item"
    bad = _CONTROL.search(raw)
    if bad is not None:
        return "", (f"`{printable(raw)}` has a control character ({printable(bad.group())}) in it, which no web "
                    "address holds; write the address without it")
    if base_url and raw.startswith(base_url):
        return "", (f"`{raw}` is a full web address; write only its part after the site's address: "
                    f"`{raw[len(base_url):] or EXAMPLE}`")
    try:
        parts = urlsplit(raw)
    except ValueError:
        parts = None
    if parts is None or parts.scheme or parts.netloc or raw.startswith("//"):
        return "", (f"`{raw}` is not an address on this site; give the old page's path from the site's "
                    f"address, like `{EXAMPLE}`")
    if "?" in raw or "#" in raw:
        return "", f"`{raw}` has a `?` or `#`; give the old page's path alone, like `{EXAMPLE}`"
    if "\\" in raw:
        return "", f"`{raw}` has a `\\`; separate the folders of an address with `/`, like `{EXAMPLE}`"
    try:
        path = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        return "", f"`{raw}` has a `%` escape that is not UTF-8 text; write the address as the browser shows it"
    bad = _CONTROL.search(path)
    if bad is not None:
        return "", (f"`{raw}` has a control character ({printable(bad.group())}) in it, which no web address "
                    "holds; write the address without it")
    odd = _UNPORTABLE.search(path)
    if odd is not None:
        return "", f"`{raw}` has a `{odd.group()}`, which a file name cannot hold on every system; no page is there"
    path = path.lstrip("/")
    if path == INDEX or path.endswith("/" + INDEX):
        path = path[: -len(INDEX)]
    is_file = path.lower().endswith((".html", ".htm"))
    if path and not is_file and not path.endswith("/"):
        path += "/"
    if not path:
        return "", f"`{raw}` is the home page, which the site makes itself; remove it"
    for name in path.rstrip("/").split("/"):
        if name in ("", ".", ".."):
            return "", (f"`{raw}` has an empty, `.` or `..` folder in it; give the old page's path from the site's "
                        f"address, like `{EXAMPLE}`")
        if name.startswith("."):
            return "", f"`{raw}` has a name starting with `.`, which is hidden; no page of the site is there"
        too_long = long_name_problem(name, "old address", "it cannot be a page of the site")
        if too_long:
            return "", f"`{raw}`: {too_long}"
    if len((path + INDEX).encode("utf-8")) > MAX_PATH_BYTES:
        return "", f"`{raw}` is longer than any page of the site can be"
    if folder and is_file:
        return "", (f"`{raw}` is a file's address; a story's old address is its folder, like `old-story/` "
                    "(it covers the story's chapters too)")
    return path, None


def read_aliases(path: Path, value: Any, line: int, base_url: str, log: ProblemLog, folder: bool) -> tuple[str, ...]:
    """The `aliases:` of a file's front matter (`value`, on `line`), as page paths; wrong ones logged."""
    if value is None:
        return ()
    items = [value] if isinstance(value, (str, int)) and not isinstance(value, bool) else value
    if not isinstance(items, list):
        log.error(path, line, f"`{KEY}`: must be a list of old addresses, like `{KEY}: [\"{EXAMPLE}\"]`")
        return ()
    found: list[str] = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            log.error(path, line, f"`{KEY}`: every item must be an old address in quotes, like `\"{EXAMPLE}\"`")
            continue
        address, problem = alias_path(str(item), base_url, folder)
        if problem is not None:
            log.error(path, line, f"`{KEY}`: {problem}")
        elif address not in found:
            found.append(address)
    return tuple(found)


def first_address(story: Story, chapter: Chapter) -> str:
    """The address the chapter was first published under, as far as its front matter and its story's tell:
    its first alias, else its address now; and the story's first alias in place of the story's folder."""
    address = chapter.aliases[0] if chapter.aliases else urls.chapter_path(story, chapter)
    folder = urls.story_path(story)
    if story.aliases and address.startswith(folder):
        address = story.aliases[0] + address[len(folder):]
    return address


@dataclass(frozen=True, slots=True)
class Redirect:
    """A page at an old address that leads to a page of the site."""

    path: str  # the old address: `old-story/02-old-name/`, or `old.html`
    target: str  # the page's address now: `salt-and-signal/02-the-lamp/`
    story: Story  # the story of the page
    source: Path  # the file whose `aliases:` names the old address
    alias: str  # the alias it comes from (a story's covers its chapters)

    @property
    def line(self) -> int | None:
        lines = self.story.lines if self.source == self.story.source else \
            next((c.lines for c in self.story.chapters if c.source == self.source), {})
        return lines.get(KEY)


def redirects(site: Site) -> list[Redirect]:
    """Every old address of the published site, with the page it leads to."""
    from generator.pages import work_parts

    found: list[Redirect] = []
    for story in site.stories:
        folder = urls.story_path(story)
        if story.aliases:
            pages = [(page, page) for page in (folder, *(part.path for part in work_parts(story)),
                                               *(urls.chapter_path(story, c) for c in story.chapters))]
            pages += [(alias, urls.chapter_path(story, c)) for c in story.chapters for alias in c.aliases
                      if alias.startswith(folder)]  # a chapter's old address in the story's folder as it is now
            for alias in story.aliases:
                found += [Redirect(alias + page[len(folder):], target, story, story.source, alias)
                          for page, target in pages]
        for chapter in story.chapters:
            target = urls.chapter_path(story, chapter)
            found += [Redirect(alias, target, story, chapter.source, alias) for alias in chapter.aliases]
    return found


def _parents(path: str) -> Iterable[str]:
    parts = path.split("/")
    return ("/".join(parts[:i]) for i in range(1, len(parts)))


def check_redirects(found: list[Redirect], made: Iterable[str], log: ProblemLog) -> list[Redirect]:
    """The redirects that can be written: an old address where the site makes a file (or a folder of files),
    or that two files' `aliases:` send to different pages, is an error (once for each alias). The same old
    address leading to the same page twice (a chapter's alias that its story's also covers) is written once."""
    if not found:
        return []
    files = set(made)
    folders = {parent for path in files for parent in _parents(path)}
    kept: dict[str, Redirect] = {}
    reported: set[tuple[Path, str]] = set()

    def refuse(redirect: Redirect, why: str) -> None:
        if (redirect.source, redirect.alias) not in reported:
            reported.add((redirect.source, redirect.alias))
            log.error(redirect.source, redirect.line, f"`{KEY}`: {why}")

    for redirect in found:
        file = urls.file_of(redirect.path)
        earlier = kept.get(file)
        if earlier is not None:
            if earlier.target != redirect.target:
                where = earlier.source.name if earlier.source.parent == redirect.source.parent else \
                    f"{earlier.source.parent.name}/{earlier.source.name}"
                refuse(redirect, f"the old address {redirect.path} is also in the `{KEY}` of {where}, for "
                       f"{earlier.target}; an old address can lead to one page only, so keep it in one file")
            continue
        if file in files or file in folders or any(p in files for p in _parents(file)):
            if redirect.path == redirect.target:
                why = f"{redirect.alias} is the address of this page now; remove it from the list"
            else:
                why = (f"the site makes a page or file at {redirect.path} now, so it cannot lead elsewhere; "
                       f"remove `{redirect.alias}` from the list")
            refuse(redirect, why)
            continue
        kept[file] = redirect
        folders.update(_parents(file))
        files.add(file)
    return list(kept.values())


# Pages gone since the last build --------------------------------------------------------------------------

_NUMBER = re.compile(r"\d+")


def _number(slug: str) -> int | None:
    found = _NUMBER.match(slug)
    return int(found.group()) if found else None


def _line(aliases: tuple[str, ...], added: list[str]) -> str:
    """The `aliases:` line with `added` after the aliases there are."""
    return f"{KEY}: [" + ", ".join(json.dumps(a, ensure_ascii=False) for a in (*aliases, *added)) + "]"


TEXT_PAIRS = 400  # old pages × new chapters compared by their text, at most, in one story


def gone_pages(previous: Mapping[str, str], made: Collection[str], site: Site, loaded: Collection[str],
               output: Path, content_dir: Path, log: ProblemLog) -> None:
    """Warn of every story or chapter page the last build wrote into `output` (its manifest: `previous`) that
    this one does not make (`made`, redirects included) and that is not only unpublished now (`loaded`: the
    addresses of every story and chapter loaded), naming the file most likely to have taken its place (a story:
    by the names of its chapters; a chapter: by its number, else by its text in the old page) and the
    `aliases:` line that keeps the old address working."""
    gone: dict[str, list[str]] = {}  # story folder → the chapter names of its pages gone ("" for its own)
    pages = {path[: -len(INDEX)] for path in previous if path.endswith("/" + INDEX)}
    for page in sorted(pages):
        parts = page.rstrip("/").split("/")
        if urls.file_of(page) in made or page in loaded or len(parts) > 2 or parts[0] in ("tags", "series") \
                or parts[-1] == "all":
            continue
        gone.setdefault(parts[0], []).append(parts[1] if len(parts) == 2 else "")
    if not gone:
        return
    current = {s.slug: s for s in site.stories}
    current.update({a.rstrip("/"): s for s in site.stories for a in s.aliases if a.count("/") == 1})
    new_stories = [s for s in site.stories if urls.story_path(s) not in pages]
    suggested: dict[tuple[Path, bool], tuple[Story | Chapter, list[str]]] = {}

    def suggest(owner: Story | Chapter, alias: str) -> None:
        suggested.setdefault((owner.source, isinstance(owner, Story)), (owner, []))[1].append(alias)

    for folder, names in sorted(gone.items(), key=lambda item: item[0] not in current or
                                current[item[0]].slug != item[0]):  # the stories' folders as they are first
        story = current.get(folder)
        chapters = [n for n in names if n]
        if story is not None and story.slug != folder:  # an old folder of the story (`aliases:`) covers what its
            chapters = [n for n in chapters if n not in gone.get(story.slug, ())]  # folder now will have
        if story is None:
            story = _guess_story(folder, {p.split("/")[1] for p in pages if p.startswith(folder + "/")},
                                 new_stories, len(gone))
            if story is None:
                if "" in names:
                    count = f" and its {len(chapters)} chapter page{'s' * (len(chapters) != 1)}" if chapters else ""
                    log.warn(content_dir, None, f"the story page {folder}/{count} published by the last build "
                             f"{'are' if chapters else 'is'} gone; if the story moved, add to the front matter of "
                             f"its story.md (or one-shot file), to keep old links working: "
                             f"{_line((), [folder + '/'])}. If you took it down on purpose, ignore this")
                else:
                    for name in chapters:
                        _unknown(f"{folder}/{name}/", content_dir, log)
                continue
            suggest(story, folder + "/")
            chapters = [n for n in chapters if n not in {c.slug for c in story.chapters}]
        for name, chapter in _guess_chapters(folder, chapters, story, pages, previous, output):
            if chapter is None:
                _unknown(f"{folder}/{name}/", content_dir, log)
            else:
                suggest(chapter, f"{folder}/{name}/")
    for (source, is_story), (owner, added) in suggested.items():
        line = owner.lines.get(KEY)
        if is_story:
            what = f"the story page {added[0]} and its chapter pages" if len(added) == 1 else \
                "the story pages " + ", ".join(added) + " and their chapter pages"
        else:
            what = f"the page {added[0]}" if len(added) == 1 else "the pages " + ", ".join(added)
        verb = "are" if is_story or len(added) > 1 else "is"
        change = "change the line to" if line else "add to the front matter"
        log.warn(source, line, f"{what} published by the last build {verb} gone; to keep old links working, "
                 f"{change}: {_line(owner.aliases, added)}")


def _unknown(page: str, content_dir: Path, log: ProblemLog) -> None:
    log.warn(content_dir, None, f"the page {page} published by the last build is gone; if its chapter moved, add "
             f"to the chapter's front matter, to keep old links working: {_line((), [page])}. If you took it "
             "down on purpose, ignore this")


def _guess_story(folder: str, names: set[str], candidates: list[Story], gone: int) -> Story | None:
    """The story (among those whose page is new) that most likely was at `folder`, whose chapter pages had
    `names`: the one with most chapters of those names, else the only one when only one story is gone."""
    scores = sorted(((len(names & {c.slug for c in s.chapters}), s) for s in candidates), key=lambda x: -x[0])
    if scores and scores[0][0] and (len(scores) == 1 or scores[1][0] < scores[0][0]):
        return scores[0][1]
    if len(candidates) == 1 and gone == 1:
        return candidates[0]
    return None


def _guess_chapters(folder: str, names: list[str], story: Story, pages: set[str], previous: Mapping[str, str],
                    output: Path) -> list[tuple[str, Chapter | None]]:
    """Each old chapter page `folder/name/` gone, with the chapter of `story` (among those at a new address)
    that most likely took its place: the one of the number its name starts with; else the one whose text the
    old page holds; else the only one left when one page is left."""
    new = [c for c in story.chapters if urls.chapter_path(story, c) not in pages]
    left = list(new)
    found: dict[str, Chapter | None] = {}
    for name in names:
        number = _number(name)
        match = next((c for c in left if number is not None and (c.number == number or _number(c.slug) == number)),
                     None)
        if match is not None:
            left.remove(match)
        found[name] = match
    unmatched = [n for n in names if found[n] is None]
    if unmatched and left and len(unmatched) * len(left) <= TEXT_PAIRS:
        for name in unmatched:
            text = _old_page(output, f"{folder}/{name}/{INDEX}", previous)
            match = next((c for c in left if c.html.strip() and c.html.strip() in text), None) if text else None
            if match is not None:
                left.remove(match)
                found[name] = match
    unmatched = [n for n in names if found[n] is None]
    if len(unmatched) == 1 and len(left) == 1:
        found[unmatched[0]] = left[0]
    return [(name, found[name]) for name in names]


MAX_OLD_PAGE = 4 << 20  # bytes of an old page read to find a chapter's text in it, at most


def _old_page(output: Path, path: str, previous: Mapping[str, str]) -> str:
    """The text of the last build's page `path` in `output`, when it is still the file that build wrote."""
    from generator.output import file_hash

    file = output / path
    try:
        if file.is_symlink() or not file.is_file() or file.stat().st_size > MAX_OLD_PAGE:
            return ""
        data = file.read_bytes()
    except OSError:
        return ""
    if file_hash(data) != previous.get(path):
        return ""
    return data.decode("utf-8", "replace")
