"""Progress of a long build on a terminal: one line, rewritten in place.

Nothing is shown for builds that finish within a second, nor when the output
is not a terminal, nor with `--quiet`.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO

# stage, items done, items in all
ProgressCallback = Callable[[str, int, int], None]


def no_progress(stage: str, done: int, total: int) -> None:
    """The callback for builds that stay quiet."""


class TerminalProgress:
    """A callback that draws `stage: done/total` on a terminal once the build has run for `delay` seconds."""

    def __init__(self, stream: TextIO = sys.stderr, delay: float = 1.0, interval: float = 0.1) -> None:
        self._stream = stream
        self._start = time.monotonic()
        self._delay = delay
        self._interval = interval
        self._last = 0.0
        self._shown = False

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._start < self._delay or (now - self._last < self._interval and done < total):
            return
        self._last = now
        self._shown = True
        self._stream.write(f"\r\033[K{stage}: {done:,}/{total:,}")
        self._stream.flush()

    def finish(self) -> None:
        if self._shown:
            self._stream.write("\r\033[K")
            self._stream.flush()


def for_terminal(quiet: bool, stream: TextIO = sys.stderr) -> TerminalProgress | None:
    """A progress display when `stream` is a terminal and the user did not ask for quiet."""
    return None if quiet or not stream.isatty() else TerminalProgress(stream)
