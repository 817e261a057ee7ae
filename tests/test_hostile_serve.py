"""What a hostile or unlucky client or site folder can do to `serialist serve`: nothing lasting.

Real servers on free loopback ports, real sockets, real watchers on real folders. Every
loop is bounded in count and in time, so that a regression fails instead of hanging.
"""

from __future__ import annotations

import http.client
import os
import queue
import re
import resource
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import pytest

from conftest import STORY, chapter, copy_sample
from generator.errors import Problem
from generator.server import EVENTS_PATH, BuildStatus, LiveReloadServer, body_end, listen
from generator.watch import ChangeBatch, SiteLayout, SiteWatcher

# watchdog's notice when a new folder gets its watch twice; the CLI hides it too.
pytestmark = pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning")

PAGE = b"<!doctype html>\n<html><head><title>Hi</title></head><body><p>Hello.</p></body></html>\n"


# --- The dev server against misbehaving clients ----------------------------------------------------

@contextmanager
def plain_server(root: Path, **limits: float) -> Iterator[LiveReloadServer[object]]:
    """A LiveReloadServer of `root` whose build does nothing, with the given limits."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "index.html").write_bytes(PAGE)
    server: LiveReloadServer[object] = LiveReloadServer(root, lambda changes: BuildStatus(), listen("127.0.0.1", 0),
                                                        **limits)  # type: ignore[arg-type]
    with server:
        yield server


def connect(port: int, sent: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    if sent:
        sock.sendall(sent)
    return sock


def request_bytes(port: int, path: str = "/", method: str = "GET") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode()


class Sockets:
    """Client sockets watched together: when each was closed by the server, and what it was sent."""

    def __init__(self, sockets: list[socket.socket]) -> None:
        self.selector = selectors.DefaultSelector()
        self.received: dict[socket.socket, bytes] = {sock: b"" for sock in sockets}
        self.closed: dict[socket.socket, float] = {}
        for sock in sockets:
            sock.setblocking(False)
            self.selector.register(sock, selectors.EVENT_READ)

    def wait(self, until: float, done: Callable[[], object]) -> list[list[socket.socket]]:
        """Read until `done()` or the monotonic time `until`; the sockets closed in each round, in order."""
        rounds: list[list[socket.socket]] = []
        while not done() and time.monotonic() < until:
            closed_now = []
            for key, _ in self.selector.select(timeout=max(0.0, until - time.monotonic())):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    data = b""
                if data:
                    self.received[sock] += data
                    continue
                self.closed[sock] = time.monotonic()
                self.selector.unregister(sock)
                closed_now.append(sock)
            if closed_now:
                rounds.append(closed_now)
        return rounds

    def close(self) -> None:
        self.selector.close()
        for sock in self.received:
            sock.close()


def test_half_sent_requests_are_closed_after_the_header_timeout_while_others_are_served(tmp_path: Path) -> None:
    timeout = 1.0
    with plain_server(tmp_path / "site", header_timeout=timeout) as server:
        port = server.listener.port
        opened = time.monotonic()
        silent = [connect(port) for _ in range(15)]
        partial = [connect(port, request_bytes(port)[:-2]) for _ in range(15)]  # all but the final blank line
        trickler = connect(port, b"GET / HTTP/1.1\r\nX-Slow: ")
        stop = threading.Event()

        def trickle() -> None:  # slowloris: a byte every 0.1 s keeps a per-read timeout from ever firing
            for _ in range(100):
                if stop.wait(0.1):
                    return
                try:
                    trickler.send(b"a")
                except OSError:
                    return

        thread = threading.Thread(target=trickle, daemon=True)
        thread.start()
        watched = Sockets([*silent, *partial, trickler])
        try:
            reply = fetch(port, "/")  # while all of them are open
            assert reply.status == 200 and b"Hello." in reply.body
            everyone = len(watched.received)
            watched.wait(opened + timeout + 5, lambda: len(watched.closed) == everyone)
            assert len(watched.closed) == everyone, f"{everyone - len(watched.closed)} connections still open"
            assert max(watched.closed.values()) - opened < timeout + 4
            assert all(data == b"" for data in watched.received.values())
            assert fetch(port, "/").status == 200
        finally:
            stop.set()
            thread.join(5)
            watched.close()


def test_connections_over_the_limit_wait_for_a_free_one(tmp_path: Path) -> None:
    with plain_server(tmp_path / "site", header_timeout=1.0, max_connections=4) as server:
        port = server.listener.port
        silent = [connect(port) for _ in range(4)]
        waiting = connect(port, request_bytes(port))  # complete, but over the limit
        watched = Sockets([*silent, waiting])
        try:
            rounds = watched.wait(time.monotonic() + 8, lambda: waiting in watched.closed)
            assert waiting in watched.closed, "the request over the limit was never answered"
            assert watched.received[waiting].startswith(b"HTTP/1.0 200 ")
            # Answered only once a slot was free: not while all four silent connections were still open.
            answered = next(n for n, closed in enumerate(rounds) if waiting in closed)
            assert any(sock in silent for closed in rounds[:answered + 1] for sock in closed)
        finally:
            watched.close()


def test_the_reload_channel_outlives_the_header_timeout(tmp_path: Path) -> None:
    with plain_server(tmp_path / "site", header_timeout=0.3) as server:
        port = server.listener.port
        stream = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        stream.request("GET", EVENTS_PATH, headers={"Host": f"127.0.0.1:{port}"})
        response = stream.getresponse()
        assert response.status == 200
        first = next_build(response)
        late = Sockets([connect(port)])  # opened after the stream: once it is closed, the stream is past its deadline
        try:
            late.wait(time.monotonic() + 5, lambda: late.closed)
            assert late.closed, "an idle connection was not closed"
            server.rebuild(None)
            assert next_build(response) != first
            assert fetch(port, "/").status == 200
        finally:
            late.close()
            stream.close()


def next_build(response: http.client.HTTPResponse) -> str:
    for _ in range(50):
        line = response.fp.readline().decode()
        assert line, "the event stream ended"
        if line.startswith("id: "):
            return line[4:].strip()
    raise AssertionError("no state event")


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body


def fetch(port: int, path: str, method: str = "GET") -> Reply:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, headers={"Host": f"127.0.0.1:{port}"})
        response = connection.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()


def read_through(port: int, path: str) -> tuple[dict[str, str], int, bytes]:
    """GET `path` reading the body in chunks: its headers, its length, and its last 64 KiB."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers={"Host": f"127.0.0.1:{port}"})
        response = connection.getresponse()
        assert response.status == 200
        length, tail = 0, b""
        while chunk := response.read(65536):
            length += len(chunk)
            tail = (tail + chunk)[-65536:]
        return {k.lower(): v for k, v in response.getheaders()}, length, tail
    finally:
        connection.close()


BIG = 50 * 1024 * 1024


def test_big_files_are_sent_without_reading_them_into_memory(tmp_path: Path) -> None:
    root = tmp_path / "site"
    with plain_server(root) as server:
        with open(root / "big.bin", "wb") as file:  # sparse: no disk space, all zeros
            file.truncate(BIG)
        with open(root / "big.html", "wb") as file:
            file.write(b"<!doctype html><html><body><p>Long.</p></BODY><p>not the end</p>")
            file.seek(BIG - 100)
            file.write(b"<p>The end.</p></body></html>\n")
        port = server.listener.port
        tracemalloc.start()
        try:
            headers, length, tail = read_through(port, "/big.bin")
            assert int(headers["content-length"]) == length == BIG and tail == bytes(65536)
            headers, length, tail = read_through(port, "/big.html")
            assert headers["content-type"] == "text/html; charset=utf-8"
            snippet = tail.partition(b"<p>The end.</p>")[2].removesuffix(b"</body></html>\n")
            assert snippet.startswith(b'<script type="application/json" id="serialist-live-data">')
            assert snippet.endswith(b"</script>\n") and tail.endswith(b"</script>\n</body></html>\n")
            page_size = (root / "big.html").stat().st_size
            assert int(headers["content-length"]) == length == page_size + len(snippet)  # once, before the last tag
            head = fetch(port, "/big.bin", method="HEAD")
            assert head.status == 200 and int(head.headers["content-length"]) == BIG and head.body == b""
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 8 * 1024 * 1024, f"{peak / 1e6:.0f} MB in memory at the peak for {BIG / 1e6:.0f} MB files"


@pytest.mark.parametrize("size", [0, 1, 6, 7, 8, 15, 16, 17, 40])
def test_the_reload_script_goes_before_the_last_body_end_tag_across_read_boundaries(tmp_path: Path,
                                                                                    size: int) -> None:
    for at in range(size + 1):
        data = (b"x" * at + b"</Body>" + b"y" * (size - at))
        path = tmp_path / "page.html"
        path.write_bytes(b"</body>" + data)
        with path.open("rb") as file:
            assert body_end(file, len(data) + 7, chunk=8) == at + 7
    none = b"no end tag here, not even a cut one: </bod"
    path.write_bytes(none)
    with path.open("rb") as file:
        assert body_end(file, len(none), chunk=8) == len(none)


# --- The watcher against symbolic-link loops -------------------------------------------------------

class Seen:
    """What a SiteWatcher reported: batches and problems, waited for without sleeping blindly."""

    def __init__(self) -> None:
        self.batches: list[ChangeBatch] = []
        self.problems: list[Problem] = []
        self._changed = threading.Condition()

    def batch(self, batch: ChangeBatch) -> None:
        with self._changed:
            self.batches.append(batch)
            self._changed.notify_all()

    def problem(self, problem: Problem) -> None:
        with self._changed:
            self.problems.append(problem)
            self._changed.notify_all()

    def wait_for_path(self, path: Path, timeout: float = 5.0) -> None:
        with self._changed:
            assert self._changed.wait_for(lambda: any(path in b.paths for b in self.batches), timeout), \
                f"no change to {path} within {timeout} s: {self.batches}"


@pytest.mark.parametrize("poll", [False, True], ids=["inotify", "poll"])
def test_the_watcher_reports_a_symlink_loop_once_and_keeps_seeing_edits(make_site, poll: bool) -> None:
    site = make_site({
        "site.toml": 'title = "Test"\n',
        "content/s/story.md": STORY,
        "content/s/1-one.md": chapter("One"),
    })
    (site / "content/s/loop").symlink_to("..")
    seen = Seen()
    watcher = SiteWatcher(SiteLayout.of(site), seen.batch, poll=poll, quiet=0.15, on_problem=seen.problem)
    started = time.monotonic()
    watcher.start()
    try:
        assert time.monotonic() - started < 5
        target = site / "content/s/1-one.md"
        target.write_text(chapter("One", body="Edited."), "utf-8")
        seen.wait_for_path(target.resolve())
        # Seen by a later walk than the first edit: the loop is passed again, and still reported only once.
        (site / "content/s/2-two.md").write_text(chapter("Two"), "utf-8")
        seen.wait_for_path((site / "content/s/2-two.md").resolve())
        (problem,) = seen.problems
        link = site.resolve() / "content/s/loop"
        assert problem.path == link
        assert problem.level == "warning" and "loop" in problem.message
        assert str((site / "content").resolve()) in problem.message
        # Watched as a link, not walked into: removing it is a change (the build then stops reporting it).
        (site / "content/s/loop").unlink()
        seen.wait_for_path(link)
        assert all(not any("loop/" in p.as_posix() for p in b.paths) for b in seen.batches)
    finally:
        watcher.stop()
    assert len(seen.problems) == 1


def test_serve_poll_on_a_site_full_of_symlink_loops_starts_reports_them_and_rebuilds(tmp_path: Path) -> None:
    """Two `loop -> ..` and a pair of links pointing at each other's folders: walking them never ends.

    In a subprocess capped in memory and time, so that a regression fails rather than eating the machine.
    """
    site = copy_sample(tmp_path / "site")
    (site / "content/salt-and-signal/loop").symlink_to("..")
    (site / "content/the-cartographers-daughter/loop").symlink_to("..")
    for here, there in (("a", "b"), ("b", "a")):
        (site / "content" / here).mkdir()
        (site / "content" / here / f"to-{there}").symlink_to(f"../{there}")

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    process = subprocess.Popen([sys.executable, "-m", "generator", "serve", str(site), "--poll", "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"}, preexec_fn=cap)
    lines: queue.Queue[str] = queue.Queue()
    printed: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def wait_for(pattern: str, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not any(re.search(pattern, line) for line in printed):
            try:
                printed.append(lines.get(timeout=max(0.01, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f"no {pattern!r} within {seconds} s: {printed}") from None

    try:
        wait_for(r"^Watching for changes by polling", 20)
        chapter_file = site / "content/salt-and-signal/1-static.md"
        chapter_file.write_text(chapter_file.read_text("utf-8") + "\nOne more line.\n", "utf-8")
        wait_for(r"1-static\.md changed: build failed", 10)  # the loops still fail the build, as they should
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(5)
    while not lines.empty():
        printed.append(lines.get())
    output = "".join(printed)
    assert "Traceback" not in output
    for link in ("salt-and-signal/loop", "the-cartographers-daughter/loop", "a/to-b", "b/to-a"):
        warnings = [line for line in printed if f"{link}: warning: " in line and "(a loop)" in line]
        assert len(warnings) == 1, (link, output)
    assert "salt-and-signal/loop: error: " in output  # the build's own report


# --- serve (OS-events watcher) with story folders that are symbolic links ---------------------------

def _linked_story(tmp_path: Path) -> Path:
    """The sample site with `content/salt-and-signal` a link to `../stories/salt-and-signal`, inside the site."""
    site = copy_sample(tmp_path / "site")
    (site / "stories").mkdir()
    os.replace(site / "content/salt-and-signal", site / "stories/salt-and-signal")
    (site / "content/salt-and-signal").symlink_to("../stories/salt-and-signal")
    return site


def _stop_serving(stop: threading.Event, thread: threading.Thread) -> None:
    stop.set()
    thread.join(10)
    assert not thread.is_alive()


def test_serve_rebuilds_on_edits_behind_a_linked_story_folder(tmp_path: Path) -> None:
    from test_serve import EventStream, fetch, start_serving

    site = _linked_story(tmp_path)
    served, stop, thread = start_serving(site)
    stream = EventStream(served.port)
    try:
        stream.next_state()
        real = site / "stories/salt-and-signal"
        chapter_file = real / "2-the-keeper.md"
        chapter_file.write_text(chapter_file.read_text("utf-8") + "\nThe kettle sang behind the link.\n", "utf-8")
        assert stream.next_state()["errors"] == []
        served.lines.wait_for(r" content/salt-and-signal/2-the-keeper\.md changed: \d+ files written")
        assert "The kettle sang behind the link." in fetch(served.port, "/salt-and-signal/2-the-keeper/").text

        story_file = real / "story.md"
        story_file.write_text(story_file.read_text("utf-8") + "\nA summary edited behind the link.\n", "utf-8")
        assert stream.next_state()["errors"] == []
        served.lines.wait_for(r" content/salt-and-signal/story\.md changed: \d+ files written")
        assert "A summary edited behind the link." in fetch(served.port, "/salt-and-signal/").text
    finally:
        stream.close()
        _stop_serving(stop, thread)


def test_serve_watches_a_story_folder_linked_in_while_serving(tmp_path: Path) -> None:
    from test_serve import EventStream, fetch, start_serving

    site = copy_sample(tmp_path / "site")
    story = site / "drafts/the-night-bakery"
    story.mkdir(parents=True)
    (story / "story.md").write_text(STORY, "utf-8")
    (story / "1-flour.md").write_text(chapter("Flour", body="The ovens woke at three."), "utf-8")
    served, stop, thread = start_serving(site)
    stream = EventStream(served.port)
    try:
        stream.next_state()
        assert fetch(served.port, "/the-night-bakery/1-flour/").status == 404
        (site / "content/the-night-bakery").symlink_to("../drafts/the-night-bakery")
        assert stream.next_state()["errors"] == []
        assert "The ovens woke at three." in fetch(served.port, "/the-night-bakery/1-flour/").text

        (story / "1-flour.md").write_text(chapter("Flour", body="The ovens woke at four."), "utf-8")
        assert stream.next_state()["errors"] == []
        served.lines.wait_for(r" content/the-night-bakery/1-flour\.md changed: \d+ files written")
        assert "The ovens woke at four." in fetch(served.port, "/the-night-bakery/1-flour/").text

        # Unlinked: the story is gone from the site, and edits in its folder are no change of the site.
        (site / "content/the-night-bakery").unlink()
        assert stream.next_state()["errors"] == []
        assert fetch(served.port, "/the-night-bakery/1-flour/").status == 404
        rebuilds = len(served.lines.rebuilds())
        (story / "1-flour.md").write_text(chapter("Flour", body="The ovens woke at five."), "utf-8")
        served.lines.settle()
        assert len(served.lines.rebuilds()) == rebuilds
    finally:
        stream.close()
        _stop_serving(stop, thread)


def test_the_watcher_reports_edits_behind_a_link_under_the_links_path_and_never_follows_links_outside(
        tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    site = tmp_path / "site"
    (site / "content").mkdir(parents=True)
    (site / "stories/s").mkdir(parents=True)
    (site / "stories/s/1-one.md").write_text(chapter("One"), "utf-8")
    (site / "content/s").symlink_to("../stories/s")
    (site / "content/out").symlink_to(outside)
    seen = Seen()
    watcher = SiteWatcher(SiteLayout.of(site), seen.batch, quiet=0.05, on_problem=seen.problem)
    watcher.start()
    try:
        (outside / "1-far.md").write_text(chapter("Far"), "utf-8")  # not watched: the build refuses the link
        (site / "stories/s/1-one.md").write_text(chapter("One", body="Edited."), "utf-8")
        seen.wait_for_path(site.resolve() / "content/s/1-one.md")
        assert all(not any("out" in p.parts or "elsewhere" in p.parts for p in b.paths) for b in seen.batches)
        assert seen.problems == []
    finally:
        watcher.stop()


def test_a_chapter_saved_behind_a_linked_story_folder_is_rebuilt_incrementally(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import generator.incremental as incremental
    from generator.config import BuildOptions

    site = _linked_story(tmp_path).resolve()
    session = incremental.BuildSession(site, BuildOptions(output=tmp_path / "out", scratch=tmp_path / "scratch"))
    session.build()
    session.warm_up()
    real = site / "stories/salt-and-signal/2-the-keeper.md"
    real.write_text(real.read_text("utf-8") + "\nSaved behind the link.\n", "utf-8")

    def no_full_build(*args: object, **kwargs: object) -> object:
        raise AssertionError("a full build for a chapter saved behind a link")

    monkeypatch.setattr(incremental, "build_with_snapshot", no_full_build)
    result = session.build([site / "content/salt-and-signal/2-the-keeper.md"])  # as the watcher names it
    assert 0 < result.files_written < 20
    assert "Saved behind the link." in (tmp_path / "out/salt-and-signal/2-the-keeper/index.html").read_text("utf-8")
