"""`serialist serve`: a real server on a free loopback port against a real built site.

No mocks: requests go over sockets (http.client, so paths are sent as written),
builds are real builds, the watcher watches the real folder.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest

from conftest import SAMPLE_SITE, STORY, chapter, tree_bytes
from generator.config import BuildOptions
from generator.errors import UsageError
from generator.incremental import BuildSession
from generator.serve import Console, ServeOptions, SiteBuilder, exposure_warning, serve
from generator.server import (EVENTS_PATH, LIVE_SCRIPT_PATH, BuildStatus, LiveReloadServer, ReloadChannel, host_allowed, listen,
                              resolve_target)
from generator.watch import ChangeBatch

# watchdog's notice when a new folder (the build's Markdown cache) gets its watch twice; the CLI hides it too.
pytestmark = pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning")

CHAPTER = "content/salt-and-signal/1-static.md"
NOTHING_SECONDS = 0.6


class Lines:
    """A Console that records what it prints, and lets a test wait for a line."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.console = Console(info=self._add, error=self._add)

    def _add(self, line: str) -> None:
        with self._changed:
            self.lines.append(line)
            self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float = 5.0, count: int = 1) -> list[str]:
        regex = re.compile(pattern)
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.matching(regex)) >= count, timeout), \
                f"no {count}× {pattern!r} within {timeout} s in {self.lines}"
            return self.matching(regex)

    def matching(self, regex: re.Pattern[str]) -> list[str]:
        return [line for line in self.lines if regex.search(line)]

    def rebuilds(self) -> list[str]:
        return self.matching(re.compile(r" changed: (\d+ files written|build failed)"))

    def settle(self, seconds: float = NOTHING_SECONDS) -> list[str]:
        with self._changed:
            while self._changed.wait(seconds):
                pass
            return list(self.lines)


@dataclass(frozen=True)
class Live:
    server: LiveReloadServer[ChangeBatch]
    site: Path
    output: Path
    lines: Lines

    @property
    def port(self) -> int:
        return self.server.listener.port


@contextmanager
def running(site: Path, output: Path) -> Iterator[Live]:
    """A LiveReloadServer with the real build callback, serving `site` built into `output`."""
    lines = Lines()
    listener = listen("127.0.0.1", 0)
    options = BuildOptions(output=output, drafts=True, base_url=listener.url)
    builder = SiteBuilder(site, BuildSession(site, options), lines.console)
    server: LiveReloadServer[ChangeBatch] = LiveReloadServer(output, builder, listener)
    assert server.rebuild(None).ok, lines.lines
    with server:
        yield Live(server, site, output, lines)


@pytest.fixture
def live(sample_copy: Path, tmp_path: Path) -> Iterator[Live]:
    """A server of its own, for tests that rebuild or change the output."""
    with running(sample_copy, tmp_path / "private" / "site") as server:
        yield server


EXTRA_FILES = ("book.epub", "cover.png", "cover.JPG", "cover.webp", "logo.svg", "notes.txt", "data.bin")


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """One server for the tests that only read (one build instead of one per case).

    Beside its output: `secret.txt`, the target of the traversal cases; in it: a few extra files.
    """
    folder = tmp_path_factory.mktemp("shared")
    site = folder / "sample"
    site.mkdir()
    shutil.copy(SAMPLE_SITE / "site.toml", site / "site.toml")
    shutil.copytree(SAMPLE_SITE / "content", site / "content")
    with running(site, folder / "private" / "site") as server:
        (server.output.parent / "secret.txt").write_text("TOP SECRET root:x:0:0")
        for name in EXTRA_FILES:
            (server.output / name).write_bytes(b"x")
        yield server


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def fetch(port: int, path: str, *, host: str | None = None, headers: dict[str, str] | None = None,
          method: str = "GET") -> Reply:
    """One request with the path sent exactly as given; `host=""` sends no Host header."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        if host != "":
            connection.putheader("Host", host or f"127.0.0.1:{port}")
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        body = response.read() if method != "HEAD" else b""
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, body)
    finally:
        connection.close()


class EventStream:
    """A client of the reload channel, reading Server-Sent Events off the socket."""

    def __init__(self, port: int, headers: dict[str, str] | None = None) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.connection.request("GET", EVENTS_PATH, headers={"Host": f"127.0.0.1:{port}", **(headers or {})})
        self.response = self.connection.getresponse()

    def next_state(self) -> dict[str, object]:
        """The data of the next `state` event (heartbeats and `retry:` lines skipped)."""
        event: dict[str, str] = {}
        while True:
            line = self.response.fp.readline().decode("utf-8")
            assert line, "the event stream ended"
            line = line.rstrip("\n")
            if not line:
                if event.get("event") == "state":
                    state = json.loads(event["data"])
                    assert state["build"] == event["id"]
                    return state
                event = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                event[name] = value

    def close(self) -> None:
        self.connection.close()


def author_files(site: Path) -> dict[str, bytes]:
    """Every file of the site folder except the build's own cache (which `serialist build` makes too)."""
    return {name: data for name, data in tree_bytes(site).items() if not name.startswith(".serialist-cache/")}


def page_state(html: str) -> dict[str, object]:
    """The reload state injected into a served page."""
    match = re.search(r'id="serialist-live-data">([^<]*)<', html)
    assert match, "no reload state in the page"
    return json.loads(match.group(1))


def is_complete_page(body: bytes) -> bool:
    text = body.decode("utf-8")
    return text.lstrip().lower().startswith("<!doctype html>") and text.rstrip().endswith("</html>")


# --- Serving files -------------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "content_type"), [
    ("/", "text/html; charset=utf-8"),
    ("/salt-and-signal/1-static/", "text/html; charset=utf-8"),
    ("/salt-and-signal/1-static/index.html", "text/html; charset=utf-8"),
    ("/assets/style.css", "text/css; charset=utf-8"),
    ("/feed.xml", "application/rss+xml; charset=utf-8"),
    ("/salt-and-signal/feed.xml", "application/rss+xml; charset=utf-8"),
    ("/sitemap.xml", "application/xml; charset=utf-8"),
    ("/book.epub", "application/epub+zip"),
    ("/cover.png", "image/png"),
    ("/cover.JPG", "image/jpeg"),
    ("/cover.webp", "image/webp"),
    ("/logo.svg", "image/svg+xml"),
    ("/notes.txt", "text/plain; charset=utf-8"),
    ("/data.bin", "application/octet-stream"),
])
def test_content_types(shared: Live, path: str, content_type: str) -> None:
    reply = fetch(shared.port, path)
    assert reply.status == 200
    assert reply.headers["content-type"] == content_type
    assert reply.headers["cache-control"] == "no-store"
    assert int(reply.headers["content-length"]) == len(reply.body)


def test_a_folder_without_slash_redirects_and_a_folder_serves_its_index(shared: Live) -> None:
    reply = fetch(shared.port, "/salt-and-signal?x=1")
    assert reply.status == 301
    assert reply.headers["location"] == "/salt-and-signal/?x=1"
    page = fetch(shared.port, "/salt-and-signal/")
    assert page.status == 200 and "Salt and Signal" in page.text and is_complete_page(page.body)


def test_head_sends_headers_only(shared: Live) -> None:
    reply = fetch(shared.port, "/", method="HEAD")
    assert reply.status == 200 and reply.body == b""
    assert int(reply.headers["content-length"]) > 1000


def test_missing_files_get_the_sites_404_page(shared: Live) -> None:
    for path in ("/nothing-here", "/salt-and-signal/99-nope/", "/assets/"):
        reply = fetch(shared.port, path)
        assert reply.status == 404
        assert "Page not found" in reply.text and reply.headers["content-type"] == "text/html; charset=utf-8"
        assert reply.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("path", [
    "/../secret.txt",
    "/../../secret.txt",
    "/salt-and-signal/../../secret.txt",
    "/%2e%2e/secret.txt",
    "/%2E%2E/secret.txt",
    "/.%2e/secret.txt",
    "/..%2fsecret.txt",
    "/%2e%2e%2fsecret.txt",
    "/..%5csecret.txt",
    "/..\\secret.txt",
    "/%2e%2e%5csecret.txt",
    "/../../../../../../etc/passwd",
    "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
    "//etc/passwd",
    "/%2fetc%2fpasswd",
    "/etc/passwd",
    "/%00",
    "/index.html%00.png",
    "/..%c0%afsecret.txt",
    "/%252e%252e/secret.txt",
    "http://127.0.0.1/../secret.txt",
    "secret.txt",
    "*",
])
def test_traversal_gets_404(shared: Live, path: str) -> None:
    reply = fetch(shared.port, path)
    assert reply.status == 404, reply.text[:200]
    assert b"TOP SECRET" not in reply.body and b"root:x:0:0" not in reply.body


def test_symlinks_pointing_outside_get_404(live: Live, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    (live.output / "leak.txt").symlink_to(secret)
    (live.output / "leak-dir").symlink_to(tmp_path)
    (live.output / "inside.html").symlink_to(live.output / "index.html")
    for path in ("/leak.txt", "/leak-dir/secret.txt", "/leak-dir/", "/leak-dir"):
        reply = fetch(live.port, path)
        assert reply.status == 404 and b"TOP SECRET" not in reply.body, path
    assert fetch(live.port, "/inside.html").status == 200


def test_resolve_target_keeps_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "a" / "b.html").write_text("b")
    file = (root / "a" / "b.html").resolve()
    for path in ("/a/b.html?x#y", "/a/./b.html", "/a//b.html", "/a/%62.html"):
        target = resolve_target(root, path)
        assert target is not None and target.path == file, path
    top = resolve_target(root, "/")
    assert top is not None and top.path == root.resolve() and top.canonical == "/"
    folder = resolve_target(root, "/a")
    assert folder is not None and not folder.slash and folder.canonical == "/a/"
    assert resolve_target(root, "/a/../a/b.html") is None


# --- Host, Origin, CORS ----------------------------------------------------------------------------

@pytest.mark.parametrize(("host", "allowed"), [
    ("127.0.0.1:{port}", True),
    ("localhost:{port}", True),
    ("LOCALHOST:{port}", True),
    ("[::1]:{port}", True),
    ("evil.example:{port}", False),
    ("evil.example", False),
    ("127.0.0.1.evil.example:{port}", False),
    ("localhost.evil.example:{port}", False),
    ("127.0.0.1:1", False),
    ("localhost", False),
    ("127.0.0.1:{port}@evil.example", False),
    ("192.168.1.20:{port}", False),
    ("", False),
])
def test_host_header(shared: Live, host: str, allowed: bool) -> None:
    header = host.format(port=shared.port)
    for path in ("/", EVENTS_PATH) if not allowed else ("/",):
        reply = fetch(shared.port, path, host=header)
        assert reply.status == (200 if allowed else 403), (header, path)
        assert "access-control-allow-origin" not in reply.headers


def test_a_wildcard_bind_accepts_ip_addresses_but_not_names() -> None:
    listener = listen("0.0.0.0", 0)
    try:
        port = listener.port
        assert host_allowed(f"192.168.1.20:{port}", listener)
        assert host_allowed(f"127.0.0.1:{port}", listener)
        assert not host_allowed(f"evil.example:{port}", listener)
        assert listener.url == f"http://127.0.0.1:{port}/"
    finally:
        listener.socket.close()


def test_the_reload_channel_refuses_foreign_origins(shared: Live) -> None:
    for origin in ("http://evil.example", "https://127.0.0.1:1", f"http://localhost.evil.example:{shared.port}",
                   "null"):
        reply = fetch(shared.port, EVENTS_PATH, headers={"Origin": origin})
        assert reply.status == 403, origin
        assert "access-control-allow-origin" not in reply.headers
    stream = EventStream(shared.port, headers={"Origin": f"http://127.0.0.1:{shared.port}"})
    try:
        assert stream.response.status == 200
        assert stream.response.getheader("Content-Type") == "text/event-stream; charset=utf-8"
        assert stream.response.getheader("Access-Control-Allow-Origin") is None
        assert stream.next_state()["errors"] == []
    finally:
        stream.close()


def test_no_cors_header_even_when_asked(shared: Live) -> None:
    headers = {"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    for path in ("/", "/feed.xml", "/nothing", "/salt-and-signal"):
        assert "access-control-allow-origin" not in fetch(shared.port, path, headers=headers).headers
    assert fetch(shared.port, "/", method="OPTIONS", headers=headers).status >= 400


# --- Live reload ---------------------------------------------------------------------------------

def test_pages_get_the_reload_script_and_the_build_output_does_not(shared: Live) -> None:
    reply = fetch(shared.port, "/salt-and-signal/1-static/")
    assert reply.text.count('id="serialist-live-data"') == 1
    assert reply.text.index("serialist-live-data") < reply.text.rindex("</body>")
    assert f'<script src="{LIVE_SCRIPT_PATH}"></script>' in reply.text  # (a file: the pages' policy lets it run)
    assert "new EventSource" in fetch(shared.port, LIVE_SCRIPT_PATH).text
    for path in shared.output.rglob("*"):
        if path.is_file():
            assert b"serialist-live" not in path.read_bytes() and b"EventSource" not in path.read_bytes(), path
    assert "serialist-live" not in fetch(shared.port, "/assets/style.css").text


def test_serving_shows_drafts_and_links_feeds_to_the_local_server(shared: Live) -> None:
    page = fetch(shared.port, "/salt-and-signal/4-the-lighthouse-log/")
    assert page.status == 200 and "DRAFT" in page.text
    feed = fetch(shared.port, "/feed.xml").text
    assert f"http://127.0.0.1:{shared.port}/salt-and-signal/" in feed
    assert "example.github.io" not in feed


def test_the_event_stream_announces_each_build(live: Live) -> None:
    stream = EventStream(live.port)
    try:
        first = stream.next_state()
        assert first["build"] == page_state(fetch(live.port, "/").text)["build"] and first["errors"] == []
        live.server.rebuild(None)
        second = stream.next_state()
        assert second["build"] != first["build"] and second["errors"] == []
    finally:
        stream.close()


def test_what_a_build_leaves_for_after_the_reload_runs_once_the_reload_is_sent(tmp_path: Path) -> None:
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_text("<!doctype html><html><body>Home</body></html>")
    afterwards: list[Callable[[], BuildStatus | None]] = []
    server: LiveReloadServer[None] = LiveReloadServer(
        root, lambda _changes: BuildStatus(then=afterwards.pop(0)), listen("127.0.0.1", 0))
    with server:
        stream = EventStream(server.listener.port)
        try:
            start = stream.next_state()
            seen: list[dict[str, object]] = []

            def changed_after_all() -> BuildStatus:
                seen.append(stream.next_state())  # the reload is out before the rest runs
                return BuildStatus()

            def number(state: dict[str, object]) -> str:
                return str(state["build"]).rsplit(".", 1)[1]

            # One state per build, one more when what came after it changed something, or failed.
            def fails() -> BuildStatus | None:
                raise ZeroDivisionError("a bug")

            afterwards += [changed_after_all, lambda: None, fails]
            assert server.rebuild(None).ok
            assert [number(start), *map(number, seen), number(stream.next_state())] == ["0", "1", "2"]
            assert server.rebuild(None).ok
            assert number(stream.next_state()) == "3"
            assert server.rebuild(None).ok
            state = stream.next_state()
            if not state["errors"]:  # the stream may skip to the newest state
                state = stream.next_state()
            assert number(state) == "5" and "ZeroDivisionError" in str(state["errors"])
        finally:
            stream.close()


def test_the_channel_knows_when_every_open_stream_has_sent_the_latest_state() -> None:
    channel = ReloadChannel()
    a, b = object(), object()
    first = channel.attach(a)
    channel.sent(a, first)
    assert channel.wait_sent(0)
    latest = channel.publish(BuildStatus())
    assert channel.attach(b) is latest  # a stream opened since starts with the latest state
    assert not channel.wait_sent(0)
    channel.sent(a, first)  # an older state does not count
    assert not channel.wait_sent(0)
    channel.sent(a, latest)
    assert channel.wait_sent(0)
    channel.publish(BuildStatus())
    channel.detach(a)  # closed tabs are not waited for
    channel.detach(b)
    assert channel.wait_sent(0)


def test_a_content_error_keeps_serving_and_shows_the_message(live: Live) -> None:
    chapter = live.site / CHAPTER
    good = chapter.read_text("utf-8")
    stream = EventStream(live.port)
    try:
        stream.next_state()
        chapter.write_text(good.replace("title:", "title: [unclosed", 1), "utf-8")
        status = live.server.rebuild(None)
        assert not status.ok
        (message,) = status.errors
        assert re.search(r"1-static\.md:\d+: error: invalid YAML", message)
        assert message in live.lines.lines  # the terminal shows the same message as `build`
        assert any("build failed, 1 error" in line for line in live.lines.lines)

        state = stream.next_state()
        assert state["errors"] == [message]
        page = fetch(live.port, "/salt-and-signal/1-static/")  # the last good page, with the error injected
        assert page.status == 200 and "Static" in page.text
        assert page_state(page.text) == state

        chapter.write_text(good, "utf-8")
        assert live.server.rebuild(None).ok
        fixed = stream.next_state()
        assert fixed["errors"] == [] and fixed["build"] != state["build"]
        assert page_state(fetch(live.port, "/").text) == fixed
    finally:
        stream.close()


def test_requests_during_rebuilds_always_get_complete_pages(live: Live) -> None:
    chapter = live.site / CHAPTER
    original = chapter.read_text("utf-8")
    stop = threading.Event()
    problems: list[str] = []
    answered = [0]

    def hammer() -> None:
        while not stop.is_set():
            for path in ("/", "/salt-and-signal/", "/salt-and-signal/1-static/", "/salt-and-signal/all/"):
                reply = fetch(live.port, path)
                answered[0] += 1
                if reply.status != 200 or not is_complete_page(reply.body):
                    problems.append(f"{path}: {reply.status} {reply.body[-80:]!r}")

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        for n in range(8):
            chapter.write_text(original + f"\nRevision number {n}.\n", "utf-8")
            assert live.server.rebuild(None).ok
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert problems == []
    assert answered[0] > 20
    assert "Revision number 7." in fetch(live.port, "/salt-and-signal/1-static/").text


# --- The whole command: serve() with its watcher ---------------------------------------------------

@dataclass(frozen=True)
class Serving:
    site: Path
    url: str
    port: int
    lines: Lines


def start_serving(site: Path, **options: object) -> tuple[Serving, threading.Event, threading.Thread]:
    lines = Lines()
    stop = threading.Event()
    failures: list[BaseException] = []

    def run() -> None:
        try:
            serve(ServeOptions(site=site, port=0, **options), lines.console, stop)  # type: ignore[arg-type]
        except BaseException as exc:  # noqa: BLE001 (reported by the test)
            failures.append(exc)
            lines.console.info(f"serve raised {exc!r}")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    (line,) = lines.wait_for(r"^Serving |^serve raised ", timeout=10)
    assert not failures, failures
    url = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
    assert url, line
    return Serving(site, url.group(0), int(url.group(1)), lines), stop, thread


@pytest.fixture
def serving(sample_copy: Path) -> Iterator[Serving]:
    served, stop, thread = start_serving(sample_copy)
    try:
        yield served
    finally:
        stop.set()
        thread.join(10)
        assert not thread.is_alive()


def atomic_save(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text, "utf-8")
    os.replace(temp, path)


def test_serve_prints_the_url_and_leaves_the_site_folder_alone(sample_copy: Path) -> None:
    before = author_files(sample_copy)
    served, stop, thread = start_serving(sample_copy)
    try:
        served.lines.wait_for(r"^\d\d:\d\d:\d\d Built: \d+ files written in \d+ ms$")
        served.lines.wait_for(r"^Serving .* at http://127\.0\.0\.1:\d+/ \(drafts shown\)$")
        reply = fetch(served.port, "/salt-and-signal/4-the-lighthouse-log/")
        assert reply.status == 200 and "DRAFT" in reply.text
    finally:
        stop.set()
        thread.join(10)
    assert author_files(sample_copy) == before
    assert not (sample_copy / "output").exists()
    with pytest.raises(ConnectionError):
        fetch(served.port, "/")


def test_serve_no_drafts_hides_drafts(sample_copy: Path) -> None:
    served, stop, thread = start_serving(sample_copy, drafts=False)
    try:
        served.lines.wait_for(r"\(drafts hidden\)$")
        assert fetch(served.port, "/salt-and-signal/4-the-lighthouse-log/").status == 404
        assert fetch(served.port, "/salt-and-signal/1-static/").status == 200
    finally:
        stop.set()
        thread.join(10)


def test_a_burst_of_atomic_saves_is_exactly_one_rebuild(serving: Serving) -> None:
    chapter = serving.site / CHAPTER
    text = chapter.read_text("utf-8")
    for n in range(6):
        atomic_save(chapter, text.replace("Tamsin", f"Tamsin{n}", 1))
    (line,) = serving.lines.wait_for(r" changed: ")
    assert re.search(r"\d\d:\d\d:\d\d content/salt-and-signal/1-static\.md changed: \d+ files written in \d+ ms$",
                     line)
    serving.lines.settle()
    assert len(serving.lines.rebuilds()) == 1
    assert "Tamsin5" in fetch(serving.port, "/salt-and-signal/1-static/").text


def test_a_save_in_place_is_one_rebuild_and_one_reload(serving: Serving) -> None:
    stream = EventStream(serving.port)
    try:
        stream.next_state()
        chapter = serving.site / CHAPTER
        chapter.write_text(chapter.read_text("utf-8").replace("Tamsin", "Tamsyn", 1), "utf-8")
        assert stream.next_state()["errors"] == []
        assert "Tamsyn" in fetch(serving.port, "/salt-and-signal/1-static/").text
        serving.lines.settle()
        assert len(serving.lines.rebuilds()) == 1
        assert not any("after the reload" in line for line in serving.lines.lines)  # nothing changed after it
    finally:
        stream.close()



def test_a_new_word_count_reaches_every_page_of_the_story_after_one_reload(serving: Serving) -> None:
    """Every chapter page shows the story's word count: a save that changes it is followed, after the reload
    and without another, by the story's other pages (here chapter 4, no neighbour of chapter 1)."""
    words = re.compile(r"<dt>Words:</dt><dd>([\d,]+)</dd>")
    far = "/salt-and-signal/4-the-lighthouse-log/"
    before = int(words.search(fetch(serving.port, far).text).group(1).replace(",", ""))
    stream = EventStream(serving.port)
    try:
        stream.next_state()
        chapter = serving.site / CHAPTER
        chapter.write_text(chapter.read_text("utf-8") + "\nFive more words come here.\n", "utf-8")
        assert stream.next_state()["errors"] == []
        expected = f"<dt>Words:</dt><dd>{before + 5:,}</dd>"
        assert expected in fetch(serving.port, "/salt-and-signal/1-static/").text
        deadline = time.monotonic() + 30
        while expected not in fetch(serving.port, far).text:  # written right after the reload, unannounced
            assert time.monotonic() < deadline, "chapter 4 still shows the old word count"
        serving.lines.settle()
        assert len(serving.lines.rebuilds()) == 1
        assert not any("after the reload" in line for line in serving.lines.lines)
    finally:
        stream.close()

def test_writes_into_the_output_folder_never_rebuild(serving: Serving) -> None:
    output = serving.site / "output"
    output.mkdir()
    for n in range(20):
        (output / f"page-{n}.html").write_text("<html></html>")
    (serving.site / ".serialist-cache").mkdir(exist_ok=True)
    (serving.site / ".serialist-cache" / "x").write_text("cache")
    serving.lines.settle()
    assert serving.lines.rebuilds() == []


def test_an_idle_server_never_rebuilds(serving: Serving) -> None:
    for _ in range(3):
        assert fetch(serving.port, "/salt-and-signal/1-static/").status == 200  # reading is not writing
    serving.lines.settle()
    assert serving.lines.rebuilds() == []


def test_a_theme_change_is_picked_up(serving: Serving) -> None:
    (serving.site / "site.toml").write_text(
        (serving.site / "site.toml").read_text("utf-8") + 'theme = "mine"\n', "utf-8")
    serving.lines.wait_for(r"site\.toml changed: build failed")  # no such theme yet
    theme = serving.site / "themes" / "mine"
    (theme / "static").mkdir(parents=True)
    (theme / "templates").mkdir()
    (theme / "static" / "style.css").write_text("body { color: rebeccapurple; }\n")
    serving.lines.wait_for(r"themes.* changed: \d+ files written")
    assert "rebeccapurple" in fetch(serving.port, "/assets/style.css").text


def test_a_site_whose_first_build_fails_is_served_once_fixed(make_site) -> None:
    site = make_site({"content/s/story.md": STORY, "content/s/1-one.md": "---\ntitle: [broken\n---\nWords.\n"})
    served, stop, thread = start_serving(site)
    try:
        served.lines.wait_for(r"^\d\d:\d\d:\d\d Built: build failed, 1 error")
        reply = fetch(served.port, "/")
        assert reply.status == 503 and reply.headers["content-type"] == "text/html; charset=utf-8"
        errors = page_state(reply.text)["errors"]
        assert isinstance(errors, list) and len(errors) == 1
        assert re.search(r"1-one\.md:\d+: error: invalid YAML", errors[0])
        atomic_save(site / "content/s/1-one.md", chapter("One", body="Fixed words."))
        served.lines.wait_for(r"1-one\.md changed: \d+ files written")
        page = fetch(served.port, "/s/1-one/")
        assert page.status == 200 and "Fixed words." in page.text and page_state(page.text)["errors"] == []
    finally:
        stop.set()
        thread.join(10)


def test_a_port_in_use_is_a_usage_error(shared: Live, sample_copy: Path) -> None:
    with pytest.raises(UsageError, match=r"--port 0"):
        serve(ServeOptions(site=sample_copy, port=shared.port), Lines().console, threading.Event())


def test_a_missing_site_folder_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a folder"):
        serve(ServeOptions(site=tmp_path / "nope", port=0), Lines().console, threading.Event())


@pytest.mark.parametrize(("host", "warns"), [
    ("127.0.0.1", False), ("localhost", False), ("::1", False), ("127.0.0.2", False),
    ("0.0.0.0", True), ("::", True), ("192.168.1.20", True), ("my-laptop.local", True),
])
def test_exposure_warning(host: str, warns: bool) -> None:
    warning = exposure_warning(host)
    assert (warning is not None) is warns
    if warning:
        assert "drafts" in warning and host in warning


# --- The command line, as a user runs it -----------------------------------------------------------

def test_the_serve_command_runs_and_stops_cleanly_on_ctrl_c(sample_copy: Path, tmp_path: Path) -> None:
    before = author_files(sample_copy)
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "generator", "serve", str(sample_copy), "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               cwd=tmp_path)
    lines: queue.Queue[str] = queue.Queue()

    def read_stdout() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    reader = threading.Thread(target=read_stdout, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 20
        url = None
        while url is None:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            url = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert any(temp.iterdir())  # the private build folder
        reply = fetch(int(url.group(1)), "/salt-and-signal/1-static/")
        assert reply.status == 200 and "Static" in reply.text
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0, process.stderr.read()  # type: ignore[union-attr]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(5)
    rest = []
    while not lines.empty():
        rest.append(lines.get())
    assert "Stopped." in "".join(rest)
    assert author_files(sample_copy) == before
    assert list(temp.iterdir()) == []  # the private build folder is gone
