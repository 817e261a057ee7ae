"""Stage 1, load: the files of a site folder → a typed `Site`.

Every problem is collected in a `ProblemLog` with the file and line it comes
from, so that the user sees all of them at once.
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from dataclasses import dataclass, replace
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

import frontmatter
import yaml

from generator.config import LINE_BREAKS, STATIC_DIR, SiteConfig
from generator.errors import ProblemLog, suggest
from generator.xmlchars import ASCII_CONTROLS, xml_text
from generator.assets import ASSETS_SUFFIX, IMAGE_TYPES, MARKDOWN_SUFFIXES
from generator.model import RATINGS, STATUSES, Asset, Chapter, Extra, Site, Story
from generator.names import MAX_NAME_BYTES, MAX_PATH_BYTES, link_problem, name_problem

STORY_FILE = "story.md"
ONESHOT_CHAPTER_SLUG = "chapter-1"

STORY_KEYS = ("title", "author", "rating", "warnings", "fandoms", "relationships", "characters", "tags",
              "status", "chapters_planned", "notes_before", "notes_after", "language", "series", "series_part",
              "cover", "extra", "aliases", "line_breaks")
CHAPTER_KEYS = ("title", "number", "date", "updated", "summary", "notes_before", "notes_after",
                "warnings", "draft", "slug", "extra", "aliases", "line_breaks")
ONESHOT_KEYS = tuple(dict.fromkeys(STORY_KEYS + CHAPTER_KEYS + ("summary",)))

# Files editors and operating systems leave beside the real ones: hidden files, temporary files, and backups
# (`~`, `.bak`, git's merge leftovers `.orig`, nano's `.save`, `.save.1`).
_IGNORED_NAME = re.compile(r"^(\.|~\$|#)|(~|\.swp|\.swx|\.tmp|___jb_tmp___|___jb_old___)$|^4913$"
                           r"|\.(bak|orig|save(\.\d+)?)$", re.IGNORECASE)
_BACKUP_NAME = re.compile(r"(~|\.(bak|orig|save(\.\d+)?))$", re.IGNORECASE)

# What a chapter's (or a one-shot's) file name may end in, in any case.
CHAPTER_SUFFIXES = MARKDOWN_SUFFIXES


def is_ignored_name(name: str) -> bool:
    return bool(_IGNORED_NAME.search(name)) or name.startswith(".goutputstream-")


def is_backup_name(name: str) -> bool:
    """Whether `name` is an editor's backup of a file (`02-enough.md.orig`, `notes.txt~`): never published."""
    return not name.startswith(".") and bool(_BACKUP_NAME.search(name))


def is_markdown_name(name: str) -> bool:
    """Whether a file called `name` is Markdown: a chapter, a story's `story.md`, a one-shot."""
    return name.lower().endswith(CHAPTER_SUFFIXES)


# How a file manager or a browser names a second copy of `01-almost.md`: `01-almost (copy).md`, `01-almost copy.md`,
# `01-almost - Copy.md`, `Copy of 01-almost.md`, `01-almost (1).md`, `01-almost 2.md` (the name it is a copy of, when
# there is a file of that name, is the first group that matched).
_COPY_NAME = re.compile(r"^(?:(.+?) \((?:copy(?: \d+)?|\d+)\)|(.+?) - copy(?: \(\d+\))?|(.+?) copy(?: \d+)?"
                        r"|copy of (.+)|(.+?) \d+)$", re.IGNORECASE)


def copy_of(path: Path, names: dict[str, Path]) -> Path | None:
    """The file `path` looks like a second copy of, among `names` (Markdown files by their name without suffix,
    case-folded), or None."""
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    match = _COPY_NAME.match(stem)
    if match is None:
        return None
    original = names.get(next(group for group in match.groups() if group is not None).casefold())
    return original if original is not None and original != path else None


def _number_prefix(name: str) -> int | None:
    match = re.match(r"\d+", name)
    return int(match.group()) if match else None


def looks_like_chapter(path: Path) -> bool:
    """Whether `path`, a file that is not Markdown by its name, starts with the `---` of front matter (as a
    chapter does) and has a name that a chapter saved in the wrong form gets (`05-secret.txt`, `05.md.txt`)."""
    if not path.name.lower().endswith(".txt"):
        return False
    try:
        with open(path, "rb") as file:
            head = file.read(64)
    except OSError:
        return False
    first = head.removeprefix(b"\xef\xbb\xbf").split(b"\n", 1)[0].rstrip(b"\r \t")
    return first == b"---"


def _wrong_form(path: Path, what: str, log: ProblemLog) -> None:
    """The error of a `.txt` file that `looks_like_chapter`: never published as it is."""
    name = path.name[:-4]
    if is_markdown_name(name):
        name = name.rsplit(".", 1)[0]  # `05.md.txt`
    log.error(path, 1, f"this file starts with `---` like a {what}, but its name ends in .txt, so it is not one, "
              f"and it is not published as it is either (its front matter would show); to publish it as a {what}, "
              f"rename it to {name}.md; to keep it private, move it out of content/")


def slugify(text: str) -> str:
    """A URL segment: NFC, lower case, runs of anything but letters, digits, `_` and `-` made `-`."""
    text = unicodedata.normalize("NFC", text).casefold()
    return re.sub(r"[^\w-]+", "-", text).strip("-_")


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key under which `2-x` comes before `10-x`."""
    return tuple((0, int(part)) if part.isdigit() else (1, part.casefold())
                 for part in re.split(r"(\d+)", name) if part)


@dataclass(frozen=True, slots=True)
class Document:
    """A Markdown file split into front matter and body, with line numbers."""

    path: Path
    meta: dict[str, Any]
    lines: dict[str, int]  # front-matter key → line in the file
    body: str
    body_line: int

    def line(self, key: str) -> int:
        return self.lines.get(key, 1)


def clean_text(text: str) -> str:
    """A front-matter value without surrounding space or code points HTML and XML forbid (YAML escapes can make them)."""
    return xml_text(text).strip()


def read_text(path: Path, log: ProblemLog) -> str | None:
    """The file's text with BOM and CRLF removed, or None (logged) when unreadable."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        log.error(path, None, f"cannot read the file: {exc.strerror}")
        return None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in raw:
        encoding = _utf16(raw)
        if encoding:
            log.error(path, 1, f"the file is saved as {encoding}, which Serialist does not read; save it as UTF-8 "
                      "in your editor (in Notepad: File, Save as, Encoding: UTF-8)")
            return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        log.error(path, line, "the file is not UTF-8 text (byte "
                  f"0x{raw[exc.start]:02x}); save it as UTF-8 in your editor")
        return None
    text = text.removeprefix("\ufeff")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if raw.isascii() and len(raw.translate(None, ASCII_CONTROLS)) == len(raw):
        return text  # nothing to remove, found without a regex over the whole text
    return xml_text(text)


def _utf16(raw: bytes) -> str | None:
    """How `raw` is encoded when it is UTF-16 (or UTF-32) text, said for the author; None when it is not."""
    for bom, name in ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"),
                      (b"\xff\xfe", "UTF-16 (little-endian)"), (b"\xfe\xff", "UTF-16 (big-endian)")):
        if raw.startswith(bom):
            return name
    # Without a byte order mark: text in Latin letters has a zero byte in every other place.
    sample = raw[:4096]
    pairs = len(sample) // 2
    if pairs < 2:
        return None
    high, low = sample[0::2].count(0), sample[1::2].count(0)
    for zeros, others, encoding, name in ((low, high, "utf-16-le", "UTF-16 (little-endian)"),
                                          (high, low, "utf-16-be", "UTF-16 (big-endian)")):
        if zeros * 2 >= pairs and others * 10 <= pairs:
            try:
                raw[: len(raw) // 2 * 2].decode(encoding)
            except UnicodeDecodeError:
                return None
            return name
    return None


_HANDLER = frontmatter.YAMLHandler()


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML's safe loader, except that an impossible date (`2025-13-45`) stays text for `Fields` to report."""


def _timestamp(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> object:
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except (ValueError, OverflowError):
        return loader.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)


def read_document(path: Path, log: ProblemLog) -> Document | None:
    """A Markdown file read and split into front matter and body, or None (logged) when it cannot be."""
    text = read_text(path, log)
    return parse_document(path, text, log) if text is not None else None


def parse_document(path: Path, text: str, log: ProblemLog) -> Document | None:
    """Split front matter from body and parse the YAML, keeping the line of every key.

    A mistake authors make in YAML (an apostrophe in single quotes, a tab, a front matter left open above
    a `---` scene break, …) is reported in plain words with the line to fix (`_explain`)."""
    opening = _BOUNDARY.match(text)
    if not opening:
        first = text.lstrip("\n").split("\n", 1)[0] if text.strip() else ""
        hint = ("the file is empty" if not text.strip() else
                f"the file starts with `{first[:40]}`")
        log.error(path, 1, f"no front matter: {hint}. Start the file with a line `---`, "
                  "the fields (`title: ...`), and another line `---`")
        return None
    top = text[: opening.end()].count("\n") + 1  # the file's line of the front matter's first (partial) line
    closing = _BOUNDARY.search(text, opening.end())
    if closing is None:
        _not_closed(path, text[opening.end():].split("\n"), top, log)
        return None
    fm, body = text[opening.end(): closing.start()], text[closing.end():]
    fm_lines = fm.split("\n")
    body_line = text[: closing.end()].count("\n") + 1
    if body.startswith("\n"):
        body = body[1:]
        body_line += 1
    loader = _Loader(fm)
    try:
        node = loader.get_single_node()
        if node is None:
            return Document(path, {}, {}, body, body_line)
        if not isinstance(node, yaml.MappingNode):
            log.error(path, top + node.start_mark.line,
                      "the front matter must be `key: value` lines, like `title: My Story`")
            return None
        lines: dict[str, int] = {}
        for key_node, _ in node.value:
            key = str(key_node.value)
            if (isinstance(key_node, yaml.ScalarNode) and not key_node.style and _reads_as_prose(key)
                    and _not_closed(path, fm_lines, top, log, key_node.start_mark.line)):
                return None  # the story's text, taken for a field: the front matter was not closed above it
            if key in lines:
                log.error(path, top + key_node.start_mark.line,
                          f"`{key}` is given twice (first on line {lines[key]}); keep one")
            lines[key] = top + key_node.start_mark.line
        meta = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        if _explain(path, fm_lines, top, log):
            return None
        mark = exc.problem_mark or exc.context_mark
        if mark and exc.context_mark and mark.line >= fm.count("\n"):
            mark = exc.context_mark  # an unclosed `[`, `{` or quote: point at where it opened
        line = top + mark.line if mark else 1
        problem = exc.problem or "invalid YAML"
        log.error(path, line, f"invalid YAML in the front matter: {problem}. "
                  "Check the indentation and quote values that contain `: ` or start with `*`, `&`, `[` or `{`")
        return None
    except yaml.YAMLError as exc:
        log.error(path, 1, f"invalid YAML in the front matter: {exc}")
        return None
    finally:
        loader.dispose()
    return Document(path, {str(k): v for k, v in meta.items()}, lines, body, body_line)


_BOUNDARY = _HANDLER.FM_BOUNDARY  # a line `---` (or more dashes), which opens and closes the front matter
_FIELD_LINE = re.compile(r"""(?:[\w-]+|"[^"]*"|'[^']*')[ \t]*:(?:[ \t]|$)""")  # `title: ...`
_SENTENCE = re.compile(r"[,.!?;\"\u201c\u201d\u2018\u2019\u2026]")


def _reads_as_prose(key: str) -> bool:
    """Whether a front-matter key is a sentence of the story rather than a field's name: `It was late, and`."""
    return len(key.split()) >= 3 or bool(_SENTENCE.search(key))


def _prose_line(fm_lines: list[str]) -> int | None:
    """The index of the first line that reads as the story's text rather than front matter: not indented, not a
    comment or a list item, and not `key: value` with a key that could be a field's name."""
    for index, line in enumerate(fm_lines):
        if not line.strip() or line[0] in " \t#" or re.match(r"-(\s|$)", line) or _FIELD_LINE.match(line):
            continue
        key = re.match(r"([^:]*):(?:[ \t]|$)", line)
        if key is None or _reads_as_prose(key.group(1)):
            return index
    return None


def _fields(fm_lines: list[str]) -> bool:
    """Whether `fm_lines` are valid front matter with at least one field."""
    loader = _Loader("\n".join(fm_lines))
    try:
        node = loader.get_single_node()
        return isinstance(node, yaml.MappingNode) and bool(node.value)
    except yaml.YAMLError:
        return False
    finally:
        loader.dispose()


def _not_closed(path: Path, fm_lines: list[str], top: int, log: ProblemLog, prose: int | None = None) -> bool:
    """Report a front matter not closed: with no `---` after it (`prose` None), always, naming the first line
    that reads as the story's text if there is one; with a `---` (a scene break) further down, only when the
    line `prose` (or, when None, the first that reads as prose) comes after valid fields. Whether reported."""
    closed_later = prose is not None
    prose = _prose_line(fm_lines) if prose is None else prose
    if prose is not None and not _fields(fm_lines[:prose]):
        prose = None
    if prose is None and closed_later:
        return False
    written = [i for i, line in enumerate(fm_lines[:prose])
               if line.strip() and not line.lstrip().startswith("#")]
    message = "the front matter that starts on line 1 is not closed: add a line `---` after the last field"
    if written:
        message += f" (line {top + written[-1]})"
    if prose is not None:
        text = fm_lines[prose].strip()
        message += (f"; line {top + prose} (`{text[:40]}{'…' if len(text) > 40 else ''}`) reads as the story's "
                    "text, not as a field")
        if written and fm_lines[written[-1]][:1] in (" ", "\t"):
            message += (f". If line {top + prose} belongs to the field above it, indent it with spaces like the "
                        "lines before it")
    log.error(path, 1, message)
    return True


_BLOCK_START = re.compile(r".*:[ \t]+[|>][-+0-9]*[ \t]*(?:#.*)?$")  # `notes_before: |`
_QUOTED = re.compile(r"""(?P<lead>[ \t]*(?:-[ \t]+)?(?:(?P<key>[\w-]+)[ \t]*:[ \t]+)?)(?P<quote>['"])(?P<rest>.*)$""")
_UNKNOWN_COUNT = re.compile(r"(?P<indent>[ \t]*)(?P<key>[\w-]+)[ \t]*:[ \t]+\?[ \t]*(?:#.*)?$")  # `chapters_planned: ?`


def _explain(path: Path, fm_lines: list[str], top: int, log: ProblemLog) -> bool:
    """Report, in plain words, the YAML mistakes authors make that are found in `fm_lines` (front matter YAML
    could not read, whose first line is the file's line `top`). Whether any was found."""
    prose = _prose_line(fm_lines)
    if prose is not None and _not_closed(path, fm_lines, top, log, prose):
        return True
    found = False
    block: int | None = None  # the indentation of the key of a block (`notes_before: |`) whose lines these are
    for index, line in enumerate(fm_lines):
        indent = len(line) - len(line.lstrip(" "))
        if block is not None:
            if not line.strip() or indent > block:
                continue
            block = None
        advice = _advice(line)
        if advice is not None:
            log.error(path, top + index, *advice)
            found = True
        elif _BLOCK_START.match(line):
            block = indent
    return found


def _advice(line: str) -> tuple[str, str] | None:
    """What is wrong with one line of front matter and what to type instead (message, example), or None."""
    if re.match(r" *\t", line) and line.strip():
        return ("this line is indented with a tab, and front matter must be indented with spaces: replace the "
                "tab with two spaces", "")
    unknown = _UNKNOWN_COUNT.match(line)
    if unknown:
        key = unknown.group("key")
        if key == "chapters_planned":
            return ("`chapters_planned: ?`: write the number of chapters you plan, like `chapters_planned: 12`, "
                    "or leave the line out while the total is unknown (the chapter count then shows as `3/?`)", "")
        return f'`{key}: ?`: a value cannot be a bare `?`; put it in quotes, `{key}: "?"`, or leave the line out', ""
    quoted = _QUOTED.match(line)
    if quoted is None or not quoted.group("lead").strip():
        return None
    quote, rest, key, lead = quoted.group("quote", "rest", "key", "lead")
    end = _closing_quote(rest, quote)
    after = rest[end + 1:] if end is not None else ""
    if end is None or not after.strip() or (after[0] in " \t" and after.strip().startswith("#")):
        return None  # closed at the end of the line (or not on this line at all)
    inner = rest.rstrip()
    inner = inner[:-1] if inner.endswith(quote) and len(inner) > 1 else inner
    indent, lead = lead[: len(lead) - len(lead.lstrip())], lead.strip()
    doubled = f"{lead} '" + inner.replace("'", "''") + "'"  # in single quotes, an apostrophe is written twice
    if quote == "'":
        word = re.findall(r"\S*$", rest[:end])[0] + "'" + re.findall(r"^\S*", after)[0]  # `Lexie's`
        word = word[:-1] if word.endswith("'") and word.count("'") > 1 else word  # `It's`, of `'It's'`
        message = (f"{f'`{key}`: the value' if key else 'this item'} starts with a single quote `'`, so the "
                   f"apostrophe in `{word}` ends it too early. ")
        if '"' in inner or "\\" in inner:
            return message + f"Write each apostrophe twice: `{doubled}`", ""
        return message + f'Write it in double quotes, `{lead} "{inner}"`, or each apostrophe twice: `{doubled}`', ""
    if key:
        return (f"`{key}`: the text is in double quotes and has double quotes in it, which end it too early. "
                f"Write it as a block instead: the line `{key}: |`, then the text on the lines below it, "
                "indented by two spaces:", f"{indent}{key}: |\n{indent}  {inner}")
    return ("this item is in double quotes and has double quotes in it, which end it too early. Put it in single "
            f"quotes instead (an apostrophe in it written twice): `{doubled}`", "")


def _closing_quote(text: str, quote: str) -> int | None:
    """Where in `text` the YAML scalar opened by `quote` (just before `text`) ends, or None on this line."""
    index = 0
    while index < len(text):
        char = text[index]
        if quote == "'" and char == "'":
            if text[index + 1: index + 2] == "'":
                index += 2
                continue
            return index
        if quote == '"' and char == "\\":
            index += 2
            continue
        if quote == '"' and char == '"':
            return index
        index += 1
    return None


class Fields:
    """Typed access to one document's front matter; wrong values are logged with their line."""

    def __init__(self, doc: Document, config: SiteConfig, log: ProblemLog, known: tuple[str, ...]):
        self.doc, self.config, self.log = doc, config, log
        for key in doc.meta:
            if key in known:
                continue
            meant = misspelt(key, known)
            if meant:
                log.error(doc.path, doc.line(key), f"unknown field `{key}`. Did you mean "
                          f"{' or '.join(f'`{m}`' for m in meant)}? (A field of your own goes under `extra:`.)")
            elif key == "summary" and known == STORY_KEYS:
                log.warn(doc.path, doc.line(key), "`summary` is ignored in story.md: the story's summary is the "
                         "text after the front matter; move it there")
            elif key in STORY_KEYS + CHAPTER_KEYS:
                where = "story.md or a one-shot" if key in STORY_KEYS else "a chapter's file or a one-shot"
                log.warn(doc.path, doc.line(key), f"`{key}` is a field of {where}, not of this file, so it is ignored "
                         "here; move it there")
            else:
                log.warn(doc.path, doc.line(key), f"unknown field `{key}` is ignored. To keep a field of your own "
                         f"for your theme, put it under `extra:`, like `extra: {{{key}: ...}}`")

    def _bad(self, key: str, message: str) -> None:
        self.log.error(self.doc.path, self.doc.line(key), f"`{key}`: {message}")

    def text(self, key: str, default: str = "") -> str:
        value = self.doc.meta.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self._bad(key, f'must be text, not {_kind(value)}; write it in quotes: `{key}: "..."`')
            return default
        return clean_text(str(value))

    def choice(self, key: str, allowed: tuple[str, ...], default: str) -> str:
        value = self.text(key, default)
        for option in allowed:
            if value.casefold() == option.casefold():
                return option
        self._bad(key, f"unknown value `{value}`.{suggest(value, allowed)} Use one of: {', '.join(allowed)}")
        return default

    def strings(self, key: str) -> tuple[str, ...]:
        """Tags as AO3 takes them: a comma separates two (in a list item too, as no tag holds one), space around
        each is dropped, and so are empty ones and those given before in any case."""
        value = self.doc.meta.get(key)
        if value is None:
            return ()
        if isinstance(value, str):
            value = [value]  # `tags: Angst, Missing Scene`
        if not isinstance(value, list):
            self._bad(key, f"must be a list of text, not {_kind(value)}; write `{key}: [First, Second]` "
                      f"or one `- item` per line")
            return ()
        items: dict[str, str] = {}
        for item in value:
            if isinstance(item, bool) or not isinstance(item, (str, int, float)):
                self._bad(key, f"every item must be text, not {_kind(item)}; quote it")
                return ()
            for piece in str(item).split(","):
                tag = clean_text(piece)
                if tag:
                    items.setdefault(tag.casefold(), tag)
        return tuple(items.values())

    def extra(self) -> Extra:
        """The author's own fields, under `extra:`, for the theme."""
        value = self.doc.meta.get("extra")
        if value is None:
            return Extra()
        if not isinstance(value, dict):
            self._bad("extra", f"must be a set of fields of your own, not {_kind(value)}; write "
                      "`extra: {mood: rainy}`, or `extra:` and below it one `name: value` per line, indented")
            return Extra()
        return Extra(_cleaned(value))

    def integer(self, key: str, minimum: int) -> int | None:
        value = self.doc.meta.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            unknown = ("; leave the line out while the total is unknown (the chapter count then shows as `3/?`)"
                       if key == "chapters_planned" else "")
            self._bad(key, f"must be a whole number of at least {minimum}, not `{value}`{unknown}")
            return None
        return value

    def flag(self, key: str) -> bool:
        value = self.doc.meta.get(key, False)
        if not isinstance(value, bool):
            self._bad(key, f"must be `true` or `false`, not `{value}`")
            return False
        return value

    def moment(self, key: str) -> datetime | None:
        """A date or date-time; naive ones are in the site's timezone."""
        value = self.doc.meta.get(key)
        if value is None:
            if key in self.doc.lines:
                self._bad(key, "is empty; write a date like `2025-03-02` or `2025-03-02 18:30`")
            return None
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value.strip())
            except ValueError:
                why = _impossible(value.strip())
                self._bad(key, f"`{value}` is not a date: {why}" if why else
                          f"`{value}` is not a date; write it as `2025-03-02` or `2025-03-02 18:30`")
                return None
        if isinstance(value, date) and not isinstance(value, datetime):
            value = datetime.combine(value, time())
        if not isinstance(value, datetime):
            self._bad(key, f"`{value}` is not a date; write it as `2025-03-02` or `2025-03-02 18:30`")
            return None
        if not FIRST_YEAR <= value.year <= LAST_YEAR:
            self._bad(key, f"`{value.date().isoformat()}` is out of range: a date must be in the years "
                      f"{FIRST_YEAR} to {LAST_YEAR}, which every feed, page and e-book can show in any timezone")
            return None
        return value if value.tzinfo else value.replace(tzinfo=self.config.tz)


# The years a date may be in: four digits everywhere (feeds, sitemaps, EPUB), and still within what Python's
# `datetime` holds (years 1 to 9999) once moved to UTC or to any timezone, at most a day away.
FIRST_YEAR = 1000
LAST_YEAR = 9998


_DATE_PARTS = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:(?:[Tt]|[ \t]+)(\d{1,2}):(\d{1,2})(?::(\d{1,2}))?)?")


def _impossible(text: str) -> str | None:
    """Why `text`, written as a date, is not one (`November 2026 has 30 days`), or None when that is not why."""
    parts = _DATE_PARTS.match(text)
    if parts is None:
        return None
    year, month, day, hour, minute, second = (int(p) if p else 0 for p in parts.groups())
    if not 1 <= month <= 12:
        return f"there is no month {month}; the month comes second, from 01 to 12: `2025-03-02` is 2 March 2025"
    if year >= 1:
        days = calendar.monthrange(year, month)[1]
        if not 1 <= day <= days:
            return f"{calendar.month_name[month]} {year} has {days} days; check the day"
    if hour > 23:
        return f"there is no hour {hour}; hours go from 00 to 23"
    if minute > 59 or second > 59:
        return f"there is no minute or second {max(minute, second)}; they go from 00 to 59"
    return None


def misspelt(key: str, known: tuple[str, ...]) -> list[str]:
    """The known keys `key` is a slip for: one within an edit or two (`note_before`, `fandom`, `Title`,
    `notes-after`), or the fields it starts (`notes`: `notes_before`, `notes_after`)."""
    word = re.sub(r"[\s-]+", "_", key.strip()).casefold()
    close = [k for k in known if _edits(word, k) <= (1 if min(len(word), len(k)) <= 5 else 2)]
    if close:
        return sorted(close, key=lambda k: _edits(word, k))[:2]
    return [k for k in known if len(word) >= 4 and "_" in k and k.split("_")[0].rstrip("s") == word.rstrip("s")]


def _edits(a: str, b: str) -> int:
    """The edits (a letter added, dropped, changed, or two swapped) that make `a` into `b`."""
    if abs(len(a) - len(b)) > 2:
        return 3
    before: list[int] = []
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i] + [0] * len(b)
        for j, y in enumerate(b, start=1):
            current[j] = min(row[j] + 1, current[j - 1] + 1, row[j - 1] + (x != y))
            if i > 1 and j > 1 and x == b[j - 2] and a[i - 2] == y:
                current[j] = min(current[j], before[j - 2] + 1)
        before, row = row, current
    return row[-1]


def _cleaned(value: Any) -> Any:
    """A value under `extra:` with text cleaned as every field's is (`clean_text`), and keys made text."""
    if isinstance(value, dict):
        return {clean_text(str(k)): _cleaned(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cleaned(item) for item in value]
    return clean_text(value) if isinstance(value, str) else value


def _kind(value: object) -> str:
    return {bool: "true/false", int: "a number", float: "a number", list: "a list",
            dict: "a set of fields", str: "text"}.get(type(value), type(value).__name__)


def _aliases(doc: Document, f: Fields, folder: bool) -> tuple[str, ...]:
    """The file's `aliases:` (a story's are folders), checked."""
    from generator.aliases import KEY, read_aliases  # (which needs `urls`, which needs this module)

    return read_aliases(doc.path, doc.meta.get(KEY), doc.line(KEY), f.config.base_url, f.log, folder)


def _chapter(doc: Document, f: Fields, slug: str, number: int, aliases: bool = True) -> Chapter:
    return Chapter(
        source=doc.path,
        slug=slug,
        number=number,
        title=f.text("title") or None,
        date=f.moment("date"),
        updated=f.moment("updated"),
        summary=f.text("summary"),
        notes_before=f.text("notes_before"),
        notes_after=f.text("notes_after"),
        warnings=f.strings("warnings"),
        draft=f.flag("draft"),
        extra=f.extra(),
        line_breaks=f.choice("line_breaks", LINE_BREAKS, "markdown") if "line_breaks" in doc.meta else "",
        body=doc.body,
        body_line=doc.body_line,
        has_text=bool(doc.body.strip()),
        aliases=_aliases(doc, f, folder=False) if aliases else (),
        lines=doc.lines,
    )


def _story_fields(f: Fields, config: SiteConfig) -> dict[str, Any]:
    return dict(
        title=f.text("title"),
        author=f.text("author", config.author),
        rating=f.choice("rating", RATINGS, "Not Rated"),
        warnings=f.strings("warnings"),
        fandoms=f.strings("fandoms"),
        relationships=f.strings("relationships"),
        characters=f.strings("characters"),
        tags=f.strings("tags"),
        series=f.text("series"),
        series_part=f.integer("series_part", 1),
        status=f.choice("status", STATUSES, "ongoing"),
        chapters_planned=f.integer("chapters_planned", 1),
        language=f.text("language", config.language),
        extra=f.extra(),
        line_breaks=f.choice("line_breaks", LINE_BREAKS, config.line_breaks),
    )


def _require_title(doc: Document, title: str, log: ProblemLog) -> None:
    if not title and "title" not in doc.lines:
        log.error(doc.path, 1, "the story has no `title`; add a line `title: Your Title` to the front matter")
    elif not title:
        log.error(doc.path, doc.line("title"), "`title` is empty; give the story a title")


def _chapter_slug(doc: Document, f: Fields) -> str:
    explicit = f.text("slug")
    if explicit:
        return explicit  # checked by validate
    return slugify(doc.path.stem)


def load_chapter(path: Path, position: int, config: SiteConfig, log: ProblemLog) -> Chapter | None:
    """One chapter file; `position` (from 1, in file-name order) is its number unless it sets `number`.
    A symbolic link that leads outside the site (or nowhere) is not read (logged)."""
    if refused(path, config.root.resolve(), log):
        return None
    return _load_chapter(path, position, config, log)


def _load_chapter(path: Path, position: int, config: SiteConfig, log: ProblemLog) -> Chapter | None:
    """`load_chapter` of a file whose name and link are checked already."""
    doc = read_document(path, log)
    if doc is None:
        return None
    fields = Fields(doc, config, log, CHAPTER_KEYS)
    number = fields.integer("number", 0)
    return _chapter(doc, fields, _chapter_slug(doc, fields), position if number is None else number)


def load_story_folder(folder: Path, config: SiteConfig, log: ProblemLog) -> Story | None:
    """The story in `folder` (a folder of `content/` whose name and link are checked already), or None."""
    root = config.root.resolve()
    story_path = folder / STORY_FILE
    entries = _entries(folder, log)
    if entries is None:
        return None
    chapter_files = without_copies(sorted((p for p in entries
                                           if is_markdown_name(p.name) and p.name != STORY_FILE
                                           and not is_ignored_name(p.name) and not refused(p, root, log)
                                           and p.is_file()),
                                          key=lambda p: natural_key(p.name)), "chapter", log)
    if refused(story_path, root, log):
        return None
    if not story_path.is_file():
        if chapter_files:
            log.error(folder, None, f"the story folder has chapters but no `{STORY_FILE}`; add one with at least "
                      "`---`, `title: ...`, `---` and the summary")
        return None
    doc = read_document(story_path, log)
    if doc is None:
        return None
    f = Fields(doc, config, log, STORY_KEYS)
    fields = _story_fields(f, config)
    _require_title(doc, fields["title"], log)
    chapters = []
    for position, path in enumerate(chapter_files, start=1):
        chapter = _load_chapter(path, position, config, log)
        if chapter is not None:
            chapters.append(chapter)
    _same_numbers(chapters, log)
    assets = find_assets(folder, slugify(folder.name), root, log)
    return Story(
        source=story_path,
        slug=slugify(folder.name),
        assets=assets,
        cover=_cover(doc, f, assets),
        aliases=_aliases(doc, f, folder=True),
        notes_before=f.text("notes_before"),
        notes_after=f.text("notes_after"),
        summary=doc.body.strip(),
        summary_line=doc.body_line,
        chapters=tuple(chapters),
        lines=doc.lines,
        **fields,
    )


def load_oneshot(path: Path, config: SiteConfig, log: ProblemLog) -> Story | None:
    """The one-shot `path` (a file of `content/` whose name and link are checked already), or None."""
    doc = read_document(path, log)
    if doc is None:
        return None
    f = Fields(doc, config, log, ONESHOT_KEYS)
    fields = _story_fields(f, config)
    _require_title(doc, fields["title"], log)
    chapter = _chapter(doc, f, ONESHOT_CHAPTER_SLUG, 1, aliases=False)  # a one-shot's are the story's
    chapter = replace(chapter, title=None, summary="")
    slug = f.text("slug") or slugify(path.stem)
    assets = find_assets(path.with_name(path.stem + ASSETS_SUFFIX), slug, config.root.resolve(), log)
    return Story(
        source=path,
        slug=slug,
        assets=assets,
        cover=_cover(doc, f, assets),
        aliases=_aliases(doc, f, folder=True),
        summary=f.text("summary"),
        summary_line=doc.line("summary"),
        single_file=True,
        chapters=(chapter,),
        lines=doc.lines,
        **fields,
    )


def without_copies(paths: list[Path], what: str, log: ProblemLog) -> list[Path]:
    """`paths` (Markdown files of one folder) without those that look like a second copy of another (`copy_of`),
    which are not published: a warning names both."""
    names = {path.name[: -len(path.suffix)].casefold(): path for path in paths}
    kept = []
    for path in paths:
        original = copy_of(path, names)
        if original is None:
            kept.append(path)
        else:
            log.warn(path, None, f"this looks like a second copy of the {what} {original.name}, so it is not "
                     f"published; delete it (or move it out of content/) if it is an old version, or rename it "
                     f"if it is a {what} of its own")
    return kept


def _same_numbers(chapters: list[Chapter], log: ProblemLog) -> None:
    """A warning for two chapter files whose names start with the same number (`02-bonus.md`, `02-enough.md`),
    neither numbered by `number:`: one is often an old version of the other."""
    first: dict[int, Chapter] = {}
    for chapter in chapters:
        number = _number_prefix(chapter.source.name)
        if number is None or "number" in chapter.lines:
            continue
        other = first.setdefault(number, chapter)
        if other is not chapter:
            log.warn(chapter.source, None, f"this file's name starts with the same number as {other.source.name}, "
                     "and both are chapters; if one is an old version, delete it or move it out of content/, "
                     "else renumber the files")


def find_assets(folder: Path, slug: str, root: Path, log: ProblemLog) -> tuple[Asset, ...]:
    """Every file in `folder` and below that may be published as is, when something published refers to it (see
    `assets.referenced_files`): all but Markdown, hidden and temporary files and editors' backups. A `.txt` file
    that looks like a chapter (`looks_like_chapter`) is an error: it is neither a chapter nor published.

    A symbolic link, to a file or to a folder, is followed as everywhere in the site: when what it points at
    is inside the site folder `root` (resolved); one that leads outside it, nowhere, or into a loop is an
    error, and so is a name that cannot be published (`refused`). `folder` itself is checked by the caller:
    when it is a link that may not be followed, nothing is found in it."""
    return _find_files(folder, f"{slug}/", root, log, story=True)


def find_static(config: SiteConfig, log: ProblemLog) -> tuple[Asset, ...]:
    """Every file of the site's `static/` folder, published as it is at the same place from the output's root
    (`static/map.pdf` → `map.pdf`), Markdown too; with the same rules for names and links as a story's files."""
    folder = config.root / STATIC_DIR
    root = config.root.resolve()
    if not (folder.exists() or folder.is_symlink()) or refused(folder, root, log):
        return ()
    return _find_files(folder, "", root, log, story=False)


def _find_files(folder: Path, prefix: str, root: Path, log: ProblemLog, story: bool) -> tuple[Asset, ...]:
    try:
        if link_problem(folder, root) is not None or not folder.is_dir():
            return ()
        real = folder.resolve()
    except OSError:  # a name too long for the system: reported as the story's
        return ()
    found: list[Asset] = []
    _walk_assets(folder, folder, prefix, root, (real,), found, log, story)
    return tuple(found)


def _walk_assets(here: Path, top: Path, prefix: str, root: Path, ancestors: tuple[Path, ...], found: list[Asset],
                 log: ProblemLog, story: bool) -> None:
    """`_find_files` in `here`: its files (by name), then its folders; `ancestors` are the resolved folders from
    `top` to `here`. In a story's folder (`story`), Markdown files are not among them."""
    entries = _entries(here, log)
    if entries is None:
        return
    folders: list[Path] = []
    for path in sorted(entries):
        name = path.name
        if is_ignored_name(name) or (story and is_markdown_name(name) and not path.is_dir()):
            continue
        if refused(path, root, log, ancestors):
            continue
        if path.is_dir():
            folders.append(path)
        elif path.is_file():
            if story and looks_like_chapter(path):
                _wrong_form(path, "chapter", log)
                continue
            relative = path.relative_to(top).as_posix()
            asset = Asset(path, prefix + relative)
            if _publishable(asset, relative, log):
                found.append(asset)
    for sub in folders:
        real = sub.resolve() if sub.is_symlink() else ancestors[-1] / sub.name  # (only links need resolving)
        _walk_assets(sub, top, prefix, root, (*ancestors, real), found, log, story)


def _publishable(asset: Asset, relative: str, log: ProblemLog) -> bool:
    """Whether the names in the asset's path (`relative`, from its folder) leave room for the build's own (logged
    when not)."""
    sizes = [(len(part.encode("utf-8", "surrogateescape")), part) for part in relative.split("/")]
    size, long = max(sizes)
    if size > MAX_NAME_BYTES:
        what = "file" if long == sizes[-1][1] else f"folder {long[:20]}…"
        log.error(asset.source, None, f"the name of the {what} is {size} bytes long, and a "
                  f"published name may have at most {MAX_NAME_BYTES} (a letter with an accent takes 2 bytes, "
                  "most other scripts 3); give it a shorter name")
        return False
    size = len(asset.path.encode("utf-8", "surrogateescape"))
    if size > MAX_PATH_BYTES:
        log.error(asset.source, None, f"this file would be published at a path of {size} bytes ({asset.path[:40]}…),"
                  f" and at most {MAX_PATH_BYTES} fit; move it into a folder less deep, or shorten the names")
        return False
    return True


def _entries(folder: Path, log: ProblemLog) -> list[Path] | None:
    """The entries of `folder`, or None (logged) when it cannot be read."""
    try:
        return list(folder.iterdir())
    except OSError as exc:
        log.error(folder, None, f"cannot read the folder: {exc.strerror or exc}; check its permissions")
        return None


def _cover(doc: Document, f: Fields, assets: tuple[Asset, ...]) -> str:
    """The URL path of the story's `cover:` image, relative to the file that names it; "" (logged) when wrong."""
    name = f.text("cover")
    if not name:
        return ""
    parts = urlsplit(name)
    if parts.scheme or parts.netloc or name.startswith(("/", "\\")):
        f._bad("cover", f"`{name}` is not a file beside the story; give the image's path from this file, "
               "like `cover: cover.jpg`")
        return ""
    try:
        target = (doc.path.parent / name).resolve()
        exists = target.is_file()
    except (OSError, ValueError, RuntimeError):  # a name too long, a loop of links
        target, exists = doc.path.parent / name, False
    asset = next((a for a in assets if a.source.resolve() == target), None)
    folder = doc.path.parent.name if doc.path.name == STORY_FILE else doc.path.stem + ASSETS_SUFFIX
    if asset is None:
        if exists:
            f._bad("cover", f"`{name}` is outside the story's folder {folder}/ (or a hidden file), so it is not "
                   f"published; move it into {folder}/")
        else:
            f._bad("cover", f"there is no file `{name}` next to {doc.path.name}; check the name, or add the image")
        return ""
    if target.suffix.lower() not in IMAGE_TYPES:
        f._bad("cover", f"`{name}` is not a JPEG, PNG, GIF, WebP or SVG image; use one of those")
        return ""
    return asset.url


def refused(path: Path, root: Path, log: ProblemLog, ancestors: tuple[Path, ...] = ()) -> bool:
    """Whether `path` is left unread, logged: a name that cannot be published (`name_problem`), or a
    symbolic link that leads outside the site folder `root` (resolved), nowhere, or into a loop
    (`link_problem`; `ancestors` are the resolved folders it was reached through)."""
    problem = name_problem(path.name) or link_problem(path, root, ancestors)
    if problem is not None:
        log.error(path, None, problem)
    return problem is not None


def load_site(config: SiteConfig, log: ProblemLog) -> Site:
    """Every story in `content/`: folders with `story.md`, and single-file one-shots."""
    content = config.content_dir
    root = config.root.resolve()
    if refused(content, root, log):
        return Site(config=config)
    if not content.is_dir():
        log.error(config.root, None, f"there is no `content/` folder in {config.root}; create it, or run "
                  "`serialist init` to start a site")
        return Site(config=config)
    stories: list[Story] = []
    loaders: list[tuple[Callable[[Path, SiteConfig, ProblemLog], Story | None], Path]] = []
    entries = sorted((entry for entry in _entries(content, log) or () if not is_ignored_name(entry.name)
                      and not refused(entry, root, log)), key=lambda p: natural_key(p.name))
    oneshots = {p for p in without_copies([p for p in entries if is_markdown_name(p.name) and p.is_file()],
                                          "one-shot", log)}
    for entry in entries:
        if entry.is_dir() and entry.name.endswith(ASSETS_SUFFIX):
            base = entry.name.removesuffix(ASSETS_SUFFIX)
            if not any(entry.with_name(base + suffix).is_file() for suffix in CHAPTER_SUFFIXES):
                log.warn(entry, None, f"there is no one-shot {base}.md for this "
                         "folder of files, so they are not published; rename the folder after its one-shot")
        elif entry.is_dir():
            loaders.append((load_story_folder, entry))
        elif entry in oneshots:
            loaders.append((load_oneshot, entry))
        elif entry.is_file() and looks_like_chapter(entry):
            _wrong_form(entry, "one-shot", log)
    for loader, path in loaders:
        story = loader(path, config, log)
        if story is not None:
            stories.append(story)
    return Site(config=config, stories=tuple(stories), static=find_static(config, log))
