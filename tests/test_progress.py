"""Progress on a terminal for long builds; silence otherwise."""

from __future__ import annotations

import io
import os
import pty
import re
import subprocess
import sys

from conftest import NOW, STORY, chapter, run_cli
from generator.build import build
from generator.config import BuildOptions
from generator.progress import TerminalProgress, for_terminal


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def site_files(chapters: int) -> dict[str, str]:
    files = {"site.toml": 'title = "T"\nbase_url = "https://example.org/"\n', "content/s/story.md": STORY}
    files.update({f"content/s/{n}.md": chapter(f"C{n}") for n in range(1, chapters + 1)})
    return files


def test_progress_is_drawn_and_cleared(make_site):
    site = make_site(site_files(5))
    stream = FakeTerminal()
    progress = TerminalProgress(stream, delay=0, interval=0)
    build(site, BuildOptions(output=site / "output", now=NOW, progress=progress))
    progress.finish()
    text = stream.getvalue()
    assert re.search(r"Rendering pages: (\d+)/\1\b", text)  # every page, to the last
    assert text.endswith("\r\033[K")


def test_fast_builds_show_nothing_even_on_a_terminal(make_site):
    site = make_site(site_files(2))
    stream = FakeTerminal()
    progress = TerminalProgress(stream)  # the default one-second delay
    build(site, BuildOptions(output=site / "output", now=NOW, progress=progress))
    progress.finish()
    assert stream.getvalue() == ""


def test_no_progress_when_quiet_or_not_a_terminal():
    assert for_terminal(quiet=True, stream=FakeTerminal()) is None
    assert for_terminal(quiet=False, stream=io.StringIO()) is None
    assert isinstance(for_terminal(quiet=False, stream=FakeTerminal()), TerminalProgress)


def test_cli_on_a_real_terminal_and_a_pipe(make_site):
    site = make_site(site_files(3))
    piped = run_cli("build", site)
    assert "\r" not in piped.stderr and "Built 1 story" in piped.stdout
    master, slave = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "generator", "build", str(site), "--quiet"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, timeout=60)
    finally:
        os.close(slave)
    os.set_blocking(master, False)
    try:
        seen = os.read(master, 65536)
    except (BlockingIOError, OSError):
        seen = b""
    os.close(master)
    assert proc.returncode == 0
    assert proc.stdout == b"" and seen == b""  # --quiet: nothing at all, even on a terminal
