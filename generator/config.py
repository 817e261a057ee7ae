"""Site configuration (`site.toml`) and the options of one build."""

from __future__ import annotations

import re
import tomllib
import zoneinfo
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from generator.errors import ContentError, Problem, printable, suggest
from generator.names import link_problem

CONFIG_FILE = "site.toml"
CONTENT_DIR = "content"
STATIC_DIR = "static"  # the site's files published as they are, at the output's root


@dataclass(frozen=True, slots=True)
class SiteConfig:
    """What `site.toml` says, with defaults filled in."""

    root: Path
    title: str = "My Serials"
    author: str = ""
    description: str = ""
    language: str = "en"
    base_url: str = ""
    theme: str = "default"
    feed_items: int = 20
    timezone: str = "UTC"
    cname: str = ""
    line_breaks: str = "markdown"  # the default of every story (`LINE_BREAKS`)

    @property
    def content_dir(self) -> Path:
        return self.root / CONTENT_DIR

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def tz(self) -> tzinfo:
        return zoneinfo.ZoneInfo(self.timezone)

    @property
    def base_path(self) -> str:
        """The URL path the site lives under: `/` or `/repo/`."""
        path = urlsplit(self.base_url).path if self.base_url else "/"
        return path.rstrip("/") + "/"


@dataclass(frozen=True, slots=True)
class BuildOptions:
    """How one build runs: what the command line (or the dev server) asked for."""

    output: Path
    drafts: bool = False
    future: bool = False
    base_url: str | None = None
    quiet: bool = False
    strict: bool = False  # warnings fail the build
    write: bool = True  # False: check everything, write nothing (`serialist check`)
    cache: bool = True  # reuse rendered Markdown from `.serialist-cache/`
    progress: Callable[[str, int, int], None] | None = field(default=None, compare=False)  # see progress.py
    now: datetime | None = None
    scratch: Path | None = None  # where the build keeps its spare copy of the output (None: `.serialist-cache/`)


_STRING_KEYS = ("title", "author", "description", "language", "base_url", "theme", "timezone", "cname")
KNOWN_KEYS = (*_STRING_KEYS, "feed_items", "line_breaks")
# `line_breaks`, what a single line break in a text is. `markdown`: a space, as Markdown has it (a paragraph ends at
# a blank line); `paragraphs`: the end of a paragraph, as in text pasted from an archive or a word processor.
LINE_BREAKS = ("markdown", "paragraphs")


def normalise_base_url(url: str) -> str:
    """`https://x.org/repo` and `https://x.org/repo/` mean the same: keep one trailing slash."""
    url = url.strip()
    return url.rstrip("/") + "/" if url else ""


def _key_line(text: str, key: str) -> int | None:
    match = re.search(rf"^\s*{re.escape(key)}\s*=", text, re.MULTILINE)
    return text.count("\n", 0, match.start()) + 1 if match else None


# What a setting may not hold, as feeds and e-books (XML) and one-line places cannot: control characters, the
# Unicode line and paragraph separators, and the code points XML forbids. Some keys may have a few (`_ALLOWED`).
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ufdd0-\ufdef\ufffe\uffff]")
_ALLOWED = {"description": "\t\n"}  # a description of several lines, in a multi-line string


def _forbidden_error(key: str, value: str) -> str | None:
    """Why the string `value` of `key` cannot be used, or None."""
    allowed = _ALLOWED.get(key, "")
    bad = next((m.group() for m in _FORBIDDEN.finditer(value) if m.group() not in allowed), None)
    if bad is None:
        return None
    what = "a character that is not text" if bad >= "\ufdd0" else f"a control character ({printable(bad)})"
    also = " (tabs and line breaks are fine)" if allowed else ""
    return (f"`{key}` has {what} in it, which feeds and e-books cannot hold; remove it{also}. "
            "In a TOML string it is often an escape like `\\u0001`, or an invisible character pasted in")


def _read_config(path: Path, root: Path) -> bytes | None:
    """The bytes of `site.toml`, or None when there is none; raises ContentError when it cannot be read."""
    if path.is_symlink():
        problem = link_problem(path, root.resolve())
        if problem is not None:
            raise ContentError([Problem(path, None, problem)])
    if not path.exists():
        return None
    if not path.is_file():
        kind = "a folder" if path.is_dir() else "not a regular file"
        raise ContentError([Problem(path, None, f"{CONFIG_FILE} is {kind}; the settings must be a text file "
                                    f"named {CONFIG_FILE}: move this away and write the settings in such a file")])
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ContentError([Problem(path, None, f"cannot read the file: {exc.strerror or exc}; "
                                    "check its permissions")]) from None


def load_config(root: Path) -> SiteConfig:
    """Read `site.toml` in `root` (optional) and check every key."""
    path = root / CONFIG_FILE
    raw = _read_config(path, root)
    if raw is None:
        return SiteConfig(root=root)
    try:
        text = raw.decode("utf-8-sig").replace("\r\n", "\n")
        data = tomllib.loads(text)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ContentError([Problem(path, line, "the file is not UTF-8 text; save it as UTF-8")]) from None
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        line = int(match.group(1)) if match else None
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise ContentError([Problem(path, line, f"invalid TOML: {message}; see the format in the README")]) from None

    problems: list[Problem] = []
    values: dict[str, object] = {}
    for key, value in data.items():
        line = _key_line(text, key)
        if key not in KNOWN_KEYS:
            problems.append(Problem(path, line, f"unknown key `{key}`.{suggest(key, KNOWN_KEYS)} "
                                    f"Known keys: {', '.join(KNOWN_KEYS)}"))
        elif key == "feed_items":
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append(Problem(path, line, "`feed_items` must be a whole number of at least 1, like `feed_items = 20`"))
            else:
                values[key] = value
        elif key == "line_breaks":
            if value not in LINE_BREAKS:
                problems.append(Problem(path, line, f"`line_breaks` must be \"markdown\" (a single line break "
                                        "joins two lines into one paragraph) or \"paragraphs\" (each line is a "
                                        f"paragraph), like `line_breaks = \"paragraphs\"`, not `{value}`"))
            else:
                values[key] = value
        elif not isinstance(value, str):
            problems.append(Problem(path, line, f'`{key}` must be a quoted string, like `{key} = "..."`'))
        elif key != "cname" and (error := _forbidden_error(key, value)):  # (`check_cname` says what to write)
            problems.append(Problem(path, line, error))
        else:
            values[key] = value

    base_url = values.get("base_url")
    if isinstance(base_url, str) and base_url:
        error = base_url_error(base_url)
        if error:
            problems.append(Problem(path, _key_line(text, "base_url"), error))
        values["base_url"] = normalise_base_url(base_url)
    theme = values.get("theme")
    if isinstance(theme, str) and not _plain_name(theme):
        problems.append(Problem(path, _key_line(text, "theme"),
                                f"`theme` must be the name of a folder in themes/, like `theme = \"mine\"` for "
                                f"themes/mine/, not a path: `{theme}`"))
        del values["theme"]
    cname = values.get("cname")
    if isinstance(cname, str) and cname.strip():
        host, error = check_cname(cname)
        if error:
            problems.append(Problem(path, _key_line(text, "cname"), error))
        values["cname"] = host
    timezone = values.get("timezone")
    if isinstance(timezone, str):
        try:
            zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            problems.append(Problem(path, _key_line(text, "timezone"),
                                    f"unknown timezone `{timezone}`; use an IANA name like `Europe/London` or `UTC`"))
    if problems:
        raise ContentError(problems)
    return SiteConfig(root=root, **values)  # type: ignore[arg-type]


def _plain_name(name: str) -> bool:
    """A folder's name, not a path: nothing that leads to another folder (`/`, `\\`, `..`), not hidden."""
    return bool(name) and not name.startswith(".") and "/" not in name and "\\" not in name


_HOST_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)", re.IGNORECASE)


def _host(name: str) -> str | None:
    """`name` as an ASCII host name with a dot (an international one in its `xn--` form), or None."""
    try:
        ascii_name = name if name.isascii() else name.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    labels = ascii_name.split(".")
    if len(ascii_name) > 253 or len(labels) < 2 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        return None
    return ascii_name


def check_cname(value: str) -> tuple[str, str | None]:
    """The host name `cname` gives (for the CNAME file), and why it cannot be one, or None."""
    host = _host(value.strip())
    if host is not None:
        return host, None
    guess = value.strip()  # what the user may have meant: the host of a URL
    if "://" in guess:
        guess = guess.split("://", 1)[1]
    guess = guess.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0].rsplit("@", 1)[-1].split(":", 1)[0]
    guess = guess.strip().rstrip(".")
    if _host(guess) is None:
        guess = ""
    example = guess or "fiction.example.org"
    return "", (f"`cname` must be a bare domain name of letters, digits, hyphens and dots, without `https://`, a "
                f"path or a port: write `cname = \"{example}\"`" + ("" if guess else f", not `{value}`"))


def base_url_error(url: str) -> str | None:
    """Why `url` cannot be a site's base URL, or None."""
    bad = _FORBIDDEN.search(url)
    if bad is not None:
        return f"`base_url` has a control character ({printable(bad.group())}) in it; remove it"
    try:
        parts = urlsplit(url.strip())
    except ValueError:  # an unclosed `[` of an IPv6 address
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return f"`base_url` must be an absolute http(s) URL like `https://user.github.io/repo/`, not `{url}`"
    if parts.query or parts.fragment:
        return "`base_url` must not have a query (`?…`) or fragment (`#…`)"
    return None
