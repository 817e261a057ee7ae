"""Every error Serialist reports to a user.

The CLI catches these and only these; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable


# What a terminal would act on rather than show: C0 and C1 control characters (escape sequences start with
# `\x1b` or `\x9b`), DEL, the Unicode line and paragraph separators, and lone surrogates (the bytes of a file
# name that is not UTF-8, as Python reads it, which a UTF-8 terminal stream cannot even encode).
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # a byte of a name that is not UTF-8
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str, keep: str = "") -> str:
    """`text` safe to show on a terminal: every character it would act on, but those in `keep`, escaped as
    in Python (`\\x1b`, `\\u2028`). Nothing else changes, so escaping twice is escaping once."""
    if text.isprintable():
        return text
    return _UNPRINTABLE.sub(lambda m: m.group() if m.group() in keep else _escape(m), text)


def display_path(path: Path | str) -> str:
    """A path as the user should see it: relative to the working folder when inside it, and `printable`."""
    path = Path(os.path.abspath(path))
    try:
        shown = os.path.relpath(path) if path.is_relative_to(Path.cwd().resolve()) else str(path)
    except (OSError, ValueError):
        shown = str(path)
    return printable(shown)


def suggest(word: str, choices: Iterable[str]) -> str:
    """' Did you mean `x`?' for the closest choice, or ''."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" Did you mean `{close[0]}`?" if close else ""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the input: where, what, and how to fix it."""

    path: Path
    line: int | None
    message: str
    level: str = "error"
    example: str = ""  # lines to type, shown below the message (a YAML block, say)

    def __str__(self) -> str:
        """One line: `where: level: message`, with anything a terminal would act on escaped (`printable`);
        then the lines of `example`, if any, each indented by four spaces."""
        where = display_path(self.path)
        if self.line is not None:
            where = f"{where}:{self.line}"
        shown = f"{where}: {self.level}: {printable(self.message)}"
        return "".join([shown, *(f"\n    {printable(line)}" for line in self.example.split("\n") if self.example)])


class SerialistError(Exception):
    """Base of every error shown to the user without a traceback."""


class ContentError(SerialistError):
    """One or more problems in the site's content or configuration."""

    def __init__(self, problems: Iterable[Problem], not_published: tuple[object, ...] = ()):
        self.problems = tuple(problems)
        self.not_published = not_published  # for `check`: the files that stay private, as far as can be told
        super().__init__("\n".join(str(p) for p in self.problems))

    @property
    def error_count(self) -> int:
        return sum(p.level == "error" for p in self.problems)


class OutputError(SerialistError):
    """The output folder cannot be used or written."""


class UsageError(SerialistError):
    """A command was asked for something it cannot do."""


class ProblemLog:
    """Collects problems so that a build reports all of them at once."""

    def __init__(self) -> None:
        self._problems: list[Problem] = []

    def error(self, path: Path, line: int | None, message: str, example: str = "") -> None:
        self._problems.append(Problem(path, line, message, "error", example))

    def warn(self, path: Path, line: int | None, message: str, example: str = "") -> None:
        self._problems.append(Problem(path, line, message, "warning", example))

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self._problems if p.level == "error")

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(p for p in self._problems if p.level == "warning")

    def raise_if_errors(self, strict: bool = False) -> None:
        """Raise every error (and with `strict`, every warning as an error) found so far."""
        problems = tuple(replace(p, level="error") for p in self._problems) if strict \
            else tuple(self._problems)
        if any(p.level == "error" for p in problems):
            raise ContentError(sorted(problems, key=lambda p: (str(p.path), p.line or 0)))
