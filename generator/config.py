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

from generator.errors import ContentError, Problem, suggest

CONFIG_FILE = "site.toml"
CONTENT_DIR = "content"


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
KNOWN_KEYS = (*_STRING_KEYS, "feed_items")


def normalise_base_url(url: str) -> str:
    """`https://x.org/repo` and `https://x.org/repo/` mean the same: keep one trailing slash."""
    url = url.strip()
    return url.rstrip("/") + "/" if url else ""


def _key_line(text: str, key: str) -> int | None:
    match = re.search(rf"^\s*{re.escape(key)}\s*=", text, re.MULTILINE)
    return text.count("\n", 0, match.start()) + 1 if match else None


def load_config(root: Path) -> SiteConfig:
    """Read `site.toml` in `root` (optional) and check every key."""
    path = root / CONFIG_FILE
    if not path.is_file():
        return SiteConfig(root=root)
    raw = path.read_bytes()
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
        elif not isinstance(value, str):
            problems.append(Problem(path, line, f'`{key}` must be a quoted string, like `{key} = "..."`'))
        else:
            values[key] = value

    base_url = values.get("base_url")
    if isinstance(base_url, str) and base_url:
        error = base_url_error(base_url)
        if error:
            problems.append(Problem(path, _key_line(text, "base_url"), error))
        values["base_url"] = normalise_base_url(base_url)
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


def base_url_error(url: str) -> str | None:
    """Why `url` cannot be a site's base URL, or None."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return f"`base_url` must be an absolute http(s) URL like `https://user.github.io/repo/`, not `{url}`"
    if parts.query or parts.fragment:
        return "`base_url` must not have a query (`?…`) or fragment (`#…`)"
    return None
