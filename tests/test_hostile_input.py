"""Hostile or unlucky input to the load stage: names with control characters, symbolic links out of the site,
terminal escapes in messages, dates no later stage can show, bad `site.toml` values, names too long to write.

Each is an error naming the file (and line) that `build` and `check` report alike, without a traceback; a
failed build leaves the previous output as it was.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable

import pytest

from conftest import STORY, chapter, run_cli, tree_bytes

GOOD = {
    "site.toml": 'title = "T"\nbase_url = "https://example.org/"\n',
    "content/s/story.md": STORY,
    "content/s/01-one.md": chapter("One"),
}
# What a terminal acts on; a line break between messages is the only one allowed in what is printed.
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def errors(stderr: str) -> list[str]:
    """The error lines of `stderr`, with the process named by /proc/self (which each run is another)."""
    return [re.sub(r"/proc/\d+/", "/proc/self/", line) for line in stderr.splitlines() if ": error: " in line]


def refused(site: Path, change: Callable[[], object], *args: str) -> str:
    """Build `site`, make `change`, and see `build` (with `args`) fail and `check` report the same errors;
    return the failed build's stderr."""
    run_cli("build", site, *args, check=True)
    before = tree_bytes(site / "output")
    change()
    result = run_cli("build", site, *args)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert not RAW_CONTROL.search(result.stderr), result.stderr
    assert tree_bytes(site / "output") == before, "a failed build changed the previous output"
    checked = run_cli("check", site, *args)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "Traceback" not in checked.stderr and not RAW_CONTROL.search(checked.stderr), checked.stderr
    assert errors(checked.stderr) == errors(result.stderr) != []
    return result.stderr


def touch(path: Path, text: str | bytes = b"data") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())


# --- What is printed shows control characters escaped ---------------------------------------------------------------

def test_problems_and_paths_are_escaped_for_the_terminal(tmp_path):
    from generator.errors import Problem, display_path, printable

    assert display_path(tmp_path / "a\x1b[2Jb") == str(tmp_path / r"a\x1b[2Jb")
    assert str(Problem(Path("/x/\x9b1m.md"), 3, "`title`: `\x1b]8;;evil\x07` \u2028")) == \
        r"/x/\x9b1m.md:3: error: `title`: `\x1b]8;;evil\x07` \u2028"
    assert printable(printable("a\x1bb")) == r"a\x1bb"
    assert printable("one\ntwo\x07", keep="\n") == "one\ntwo\\x07"
