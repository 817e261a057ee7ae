"""`serialist serve`: build into a private folder, serve it, rebuild on every save.

Wires three parts that know nothing of each other: the build (`generator.build`),
the HTTP server and its reload channel (`generator.server`), and the file watcher
(`generator.watch`). The site is built into a temporary folder of its own, never
into the site's `output/`, so drafts shown while writing never end up in what
gets deployed; the folder is removed on exit.
"""

from __future__ import annotations

import tempfile
import threading
import time
import traceback
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from generator.incremental import BuildSession
from generator.config import BuildOptions
from generator.errors import ContentError, SerialistError, UsageError, display_path
from generator.server import DEFAULT_HOST, BuildStatus, LiveReloadServer, is_exposed, listen
from generator.watch import ChangeBatch, ChangeKind, SiteLayout, SiteWatcher


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """What `serialist serve` was asked for."""

    site: Path
    host: str = DEFAULT_HOST
    port: int = 8000
    drafts: bool = True
    future: bool = False
    poll: bool = False


@dataclass(frozen=True, slots=True)
class Console:
    """Where messages go: `info` for the URL and rebuild lines, `error` for problems and warnings."""

    info: Callable[[str], None]
    error: Callable[[str], None]


def _clock() -> str:
    return time.strftime("%H:%M:%S")


@dataclass(frozen=True, slots=True)
class SiteBuilder:
    """The server's build callback: builds the site, reports in the terminal, never raises.

    It gets the batch of changes (None for the first build) so that an incremental
    build is chosen for content changes (see `incremental.py`), a full one otherwise.
    A build's status carries the rest of it (`BuildSession.finish`, `warm_up`) for the
    server to run once open pages have been told to reload.
    """

    root: Path
    session: BuildSession
    console: Console
    pending: Callable[[], bool] = lambda: False  # whether another change has come (see `BuildSession.finish`)

    def __call__(self, changes: ChangeBatch | None) -> BuildStatus:
        what = "Built" if changes is None else changes.describe(self.root)
        started = time.perf_counter()
        incremental = changes is not None and changes.kind is ChangeKind.CONTENT
        try:
            result = self.session.build(changes.paths if incremental else None)  # type: ignore[union-attr]
        except ContentError as exc:
            return self._failed(what, tuple(str(problem) for problem in exc.problems))
        except SerialistError as exc:
            return self._failed(what, (f"error: {exc}",))
        except Exception as exc:  # a bug: keep serving and say so
            self.console.error(traceback.format_exc().rstrip())
            return self._failed(what, (f"internal error: {exc!r}; see the terminal",))
        for warning in result.warnings:
            self.console.error(str(warning))
        ms = (time.perf_counter() - started) * 1000
        self.console.info(f"{_clock()} {what}: {result.files_written} files written in {ms:.0f} ms")
        return BuildStatus(then=lambda: self._finish(what))

    def _finish(self, what: str) -> BuildStatus | None:
        """After the reload: the rest of an incremental build (`BuildSession.finish`), and a head start on the
        next one; a status to announce if it wrote pages."""
        started = time.perf_counter()
        try:
            written = self.session.finish(self.pending)
            self.session.warm_up()
        except SerialistError as exc:
            return self._failed(what, (f"error: {exc}",))
        except Exception as exc:  # a bug: keep serving and say so
            self.console.error(traceback.format_exc().rstrip())
            return self._failed(what, (f"internal error: {exc!r}; see the terminal",))
        if not written:
            return None
        ms = (time.perf_counter() - started) * 1000
        self.console.info(f"{_clock()} {what}: {written} more files written after the reload, in {ms:.0f} ms")
        return BuildStatus()

    def _failed(self, what: str, messages: tuple[str, ...]) -> BuildStatus:
        for message in messages:
            self.console.error(message)
        count = len(messages)
        self.console.info(f"{_clock()} {what}: build failed, {count} error{'s' * (count != 1)}. "
                          "Still serving the last version that built; fix and save to rebuild.")
        return BuildStatus(messages)


def exposure_warning(host: str) -> str | None:
    """The warning to print when `host` makes the dev server reachable from other computers."""
    if not is_exposed(host):
        return None
    return (f"warning: --host {host} makes this server reachable from other computers on your network, "
            "and your drafts with it. Use it only on a network you trust.")


def serve(options: ServeOptions, console: Console, stop: threading.Event | None = None) -> None:
    """Serve the site until `stop` is set or Ctrl-C (KeyboardInterrupt, which is re-raised after cleanup).

    Cleanup stops the watcher, then the server, then removes the private build folder;
    nothing in the site folder is touched.
    """
    if not options.site.is_dir():
        raise UsageError(f"{options.site} is not a folder; give the site folder, the one with `content/`")
    root = options.site.resolve()
    try:
        listener = listen(options.host, options.port)
    except OSError as exc:
        raise UsageError(f"cannot serve on {options.host}:{options.port}: {exc.strerror or exc}. Is another "
                         "server using it? Pick another port with --port, or --port 0 for any free one") from None
    with ExitStack() as cleanup:
        cleanup.callback(listener.socket.close)
        private = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="serialist-serve-")))
        build_options = BuildOptions(output=private / "site", drafts=options.drafts, future=options.future,
                                     base_url=listener.url, scratch=private)
        watcher: SiteWatcher | None = None
        builder = SiteBuilder(root, BuildSession(root, build_options), console,
                              pending=lambda: watcher is not None and watcher.has_pending())
        server: LiveReloadServer[ChangeBatch] = LiveReloadServer(build_options.output, builder, listener)
        cleanup.callback(server.shutdown)
        # Watch before the first build so that a save made during it is not missed (builds queue up).
        watcher = SiteWatcher(SiteLayout.of(root, ignore=(private,)), server.rebuild, poll=options.poll,
                              on_problem=lambda problem: console.error(str(problem)))
        try:
            watcher.start()
        except OSError as exc:  # e.g. the system's limit of inotify watches is reached
            raise UsageError(f"cannot watch {display_path(root)} for changes: {exc.strerror or exc}. "
                             "Try --poll") from None
        cleanup.callback(watcher.stop)
        server.rebuild(None)
        server.start()

        warning = exposure_warning(options.host)
        if warning:
            console.error(warning)
        drafts = "drafts shown" if options.drafts else "drafts hidden"
        console.info(f"Serving {display_path(root)} at {listener.url} ({drafts})")
        console.info(f"Watching for changes{' by polling' if options.poll else ''}; press Ctrl-C to stop.")
        (stop or threading.Event()).wait()
