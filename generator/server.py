"""The dev server: static files from one folder, plus a live-reload channel.

It knows nothing about stories. It gets a build callback (`builder`) and a
folder to serve; `rebuild(changes)` runs the callback and tells every open
page what happened over Server-Sent Events: reload, or show the build's
errors in an overlay. The reload script (served at `LIVE_SCRIPT_PATH`, so
that the pages' Content-Security-Policy lets it run) and the overlay are
injected into HTML responses here and never exist on disk.

Every request looks the output folder up again, so a build that swaps a new
folder in (see `generator.output`) is seen by the next request, and requests
made while a build runs get the previous complete site.

Security, for a server on an author's laptop full of unpublished drafts:
only files inside the served folder (after resolving symlinks) are answered,
`Host` must name this server (DNS rebinding), the reload channel refuses
foreign `Origin`s, and no CORS header is ever sent.

Holding up against clients that misbehave: a connection that has not sent its
whole request head within `header_timeout` seconds is closed (a total deadline,
not one per read, so sending a byte now and then does not keep it open); at
most `max_connections` are handled at once, and more wait in the listening
socket's queue until one ends; once a response is under way, a client that
stops reading for `SEND_TIMEOUT_SECONDS` is dropped. Files are sent in chunks
straight from disk, never read whole, so a big file costs no memory; the
reload script is put into pages on the way.
"""

from __future__ import annotations

import io
import ipaddress
import json
import os
import secrets
import socket
import stat
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO, Callable, Generic, TypeVar
from urllib.parse import quote, unquote

EVENTS_PATH = "/__serialist/events"
LIVE_SCRIPT_PATH = "/__serialist/live.js"  # the reload script, a file of this server's (see `live_snippet`)
DEFAULT_HOST = "127.0.0.1"
HEARTBEAT_SECONDS = 10.0
RETRY_MILLISECONDS = 1000
# How long a request waits for the served folder to reappear while a build swaps it in.
SWAP_WAIT_SECONDS = 2.0
# How long the rest of a build (`BuildStatus.then`) waits for open event streams to send the reload.
SEND_WAIT_SECONDS = 0.25
# How long a new connection has to send its whole request head (the request line and headers).
HEADER_TIMEOUT_SECONDS = 5.0
# How long a response may wait for its client to read on (a tab that stopped reading is dropped).
SEND_TIMEOUT_SECONDS = 30.0
# How many connections are handled at once; more wait until one ends. Each open page's reload channel is one.
MAX_CONNECTIONS = 64
# How much of a file is read at once where it must be read (looking for a page's `</body>`).
CHUNK_BYTES = 64 * 1024

_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]"})

C = TypeVar("C")


@dataclass(frozen=True, slots=True)
class BuildStatus:
    """All the server needs to know about a finished build: the messages to show, if it failed.

    `then`: what is left of the build once open pages have been told to reload (work that
    should change nothing they show); it returns the status to announce if it did change
    something after all, else None.
    """

    errors: tuple[str, ...] = ()
    then: Callable[[], BuildStatus | None] | None = field(default=None, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        return not self.errors


# The build callback: gets what changed (None: build everything), never raises for bad input.
Builder = Callable[[C | None], BuildStatus]


# --- Listening ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Listener:
    """A bound, listening socket and the address it answers to."""

    socket: socket.socket
    host: str  # as asked for: `127.0.0.1`, `localhost`, `0.0.0.0`, `::1`
    port: int  # the real port (not 0)

    @property
    def url_host(self) -> str:
        """The host to put in URLs: loopback for a wildcard address, brackets around IPv6."""
        if self.host in _WILDCARD_HOSTS:
            return "127.0.0.1"
        return f"[{self.host.strip('[]')}]" if ":" in self.host else self.host

    @property
    def url(self) -> str:
        return f"http://{self.url_host}:{self.port}/"


def listen(host: str, port: int) -> Listener:
    """Bind `host:port` (port 0: any free port); raises OSError when the address cannot be used."""
    family, _, _, _, address = socket.getaddrinfo(host.strip("[]") or None, port, type=socket.SOCK_STREAM,
                                                  flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(64)
    except OSError:
        sock.close()
        raise
    return Listener(sock, host, sock.getsockname()[1])


def is_exposed(host: str) -> bool:
    """Whether serving on `host` makes the site reachable from other computers."""
    name = host.strip("[]")
    if name == "localhost":
        return False
    try:
        return not ipaddress.ip_address(name).is_loopback
    except ValueError:
        return True  # a host name: may resolve to a public address


# --- Requests: which host, which file ----------------------------------------------------------

def _split_host(value: str) -> tuple[str, int | None] | None:
    """`name:port` → (lower-case name, port); IPv6 names keep their brackets. None when malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        name, bracket, rest = value.partition("]")
        name += bracket
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port_text = rest[1:]
    else:
        name, _, port_text = value.partition(":")
    if not name:
        return None
    if not port_text:
        return name.rstrip("."), None
    if not port_text.isdigit():
        return None
    return name.rstrip("."), int(port_text)


def _is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def host_allowed(header: str | None, listener: Listener) -> bool:
    """Whether a request's `Host` names this server (a DNS-rebinding page sends its own domain).

    Allowed: the bound host, `localhost`, `127.0.0.1` and `[::1]`, with this server's port.
    Bound to a wildcard address (`0.0.0.0`), any IP address is allowed too, so that other
    devices can reach it by IP; a DNS-rebinding attack always sends a domain name.
    """
    if not header:
        return False
    parsed = _split_host(header)
    if parsed is None:
        return False
    name, port = parsed
    if port != listener.port and not (port is None and listener.port == 80):
        return False
    bound = listener.host.lower()
    allowed = _LOOPBACK_NAMES | {bound, f"[{bound.strip('[]')}]"}
    return name in allowed or (bound in _WILDCARD_HOSTS and _is_ip_literal(name))


def origin_allowed(origin: str | None, host_header: str | None) -> bool:
    """Whether a reload-channel request comes from a page of this server (or from no page at all)."""
    if origin is None:
        return True
    if not host_header:
        return False
    return origin.strip().lower().rstrip("/") == f"http://{host_header.strip().lower()}"


@dataclass(frozen=True, slots=True)
class Target:
    """What a request path names inside the served folder."""

    path: Path  # resolved, inside the folder
    parts: tuple[str, ...]  # the decoded path segments
    slash: bool  # whether the request path ended with `/`

    @property
    def canonical(self) -> str:
        """The path, re-encoded, with a trailing slash: where a folder request is redirected to."""
        return "/" + "".join(quote(part) + "/" for part in self.parts)


def resolve_target(root: Path, request_path: str) -> Target | None:
    """The file or folder inside `root` that `request_path` names; None for anything else.

    Refuses `..` (plain or percent-encoded), backslashes, NUL bytes, invalid UTF-8,
    absolute-form targets, and anything whose real path (symlinks resolved) is
    outside `root`.
    """
    raw = request_path.split("?", 1)[0].split("#", 1)[0]
    if not raw.startswith("/"):
        return None
    try:
        decoded = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        return None
    if "\x00" in decoded or "\\" in decoded:
        return None
    parts = tuple(part for part in decoded.split("/") if part not in ("", "."))
    if ".." in parts:
        return None
    try:
        base = root.resolve(strict=True)
        real = base.joinpath(*parts).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        return None
    if not real.is_relative_to(base):
        return None
    return Target(real, parts, raw.endswith("/"))


_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
    ".xml": "application/xml; charset=utf-8",
    ".rss": "application/rss+xml; charset=utf-8",
    ".atom": "application/atom+xml; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
    ".epub": "application/epub+zip",
    ".pdf": "application/pdf",
    ".zip": "application/zip",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".mp4": "video/mp4",
}


def content_type(path: Path, start: bytes) -> str:
    """The Content-Type of a file by suffix; RSS feeds saved as `.xml` are recognised by their root.

    `start`: the file's first kilobyte (or more).
    """
    suffix = path.suffix.lower()
    if suffix == ".xml" and b"<rss" in start[:1024]:
        return "application/rss+xml; charset=utf-8"
    if not suffix and path.name == "CNAME":
        return "text/plain; charset=utf-8"
    return _CONTENT_TYPES.get(suffix, "application/octet-stream")


# --- The reload channel ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ReloadState:
    """What open pages should show: the latest build's id, and its errors if it failed."""

    build: str  # `<server token>.<build number>`: a page from an older build (or server) reloads
    errors: tuple[str, ...] = ()

    def as_json(self) -> str:
        return json.dumps({"build": self.build, "errors": list(self.errors)})

    def event(self) -> bytes:
        return f"id: {self.build}\nevent: state\ndata: {self.as_json()}\n\n".encode()


class ReloadChannel:
    """The current ReloadState, and a way for event streams to wait until it changes.

    Event streams `attach`, say when they have `sent` a state, and `detach`; `wait_sent`
    waits until every open stream has sent the latest state.
    """

    def __init__(self) -> None:
        self._token = secrets.token_hex(4)
        self._count = 0
        self._state = ReloadState(f"{self._token}.0")
        self._closed = False
        self._changed = threading.Condition()
        self._streams: set[object] = set()
        self._behind: set[object] = set()  # open streams that have not sent the latest state yet

    @property
    def state(self) -> ReloadState:
        with self._changed:
            return self._state

    @property
    def closed(self) -> bool:
        with self._changed:
            return self._closed

    def publish(self, status: BuildStatus) -> ReloadState:
        with self._changed:
            self._count += 1
            self._state = ReloadState(f"{self._token}.{self._count}", status.errors)
            self._behind = set(self._streams)
            self._changed.notify_all()
            return self._state

    def attach(self, stream: object) -> ReloadState:
        """A new event stream (any object that stands for it); the state it starts with."""
        with self._changed:
            self._streams.add(stream)
            return self._state

    def sent(self, stream: object, state: ReloadState) -> None:
        with self._changed:
            if state is self._state and stream in self._behind:
                self._behind.discard(stream)
                self._changed.notify_all()

    def detach(self, stream: object) -> None:
        with self._changed:
            self._streams.discard(stream)
            self._behind.discard(stream)
            self._changed.notify_all()

    def wait_sent(self, timeout: float) -> bool:
        """Wait until every open event stream has sent the latest state (or `timeout` seconds)."""
        with self._changed:
            return self._changed.wait_for(lambda: self._closed or not self._behind, timeout)

    def wait_for_change(self, seen: ReloadState, timeout: float) -> ReloadState:
        """The state once it is not `seen` (or `seen` after `timeout` seconds, or when closed)."""
        with self._changed:
            self._changed.wait_for(lambda: self._closed or self._state is not seen, timeout)
            return self._state

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()


# The reload script: scroll kept across reloads, closed while the tab is hidden.
_LIVE_SCRIPT = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("serialist-live-data").textContent);
  var scrollKey = "serialist-scroll:" + location.pathname;
  var source = null;
  var overlay = null;

  function restoreScroll() {
    var raw = sessionStorage.getItem(scrollKey);
    if (raw === null) return;
    sessionStorage.removeItem(scrollKey);
    var saved;
    try { saved = JSON.parse(raw); } catch (e) { return; }
    if (!saved || Date.now() - saved.time > 30000) return;
    if ("scrollRestoration" in history) history.scrollRestoration = "manual";
    var go = function () { window.scrollTo(saved.x, saved.y); };
    go();
    window.addEventListener("load", go, { once: true });
  }

  function reload() {
    try {
      sessionStorage.setItem(scrollKey, JSON.stringify({ x: window.scrollX, y: window.scrollY, time: Date.now() }));
    } catch (e) { /* storage full or disabled: reload anyway */ }
    disconnect();
    location.reload();
  }

  var overlayStyle =
    ":host{all:initial}" +
    ".backdrop{position:fixed;inset:0;z-index:2147483647;background:rgba(15,15,15,.72);display:flex;" +
    "align-items:flex-start;justify-content:center;padding:6vh 1rem;overflow:auto;" +
    "font:15px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif}" +
    ".box{background:#fff;color:#1b1b1b;max-width:62rem;width:100%;border-top:6px solid #c62828;" +
    "border-radius:6px;padding:1.1rem 1.4rem;box-shadow:0 10px 40px rgba(0,0,0,.4)}" +
    "h2{margin:0 0 .6rem;font-size:1.15rem;color:#b71c1c}" +
    "pre{margin:0 0 .8rem;white-space:pre-wrap;word-break:break-word;background:#fbeaea;padding:.75rem;" +
    "border-radius:4px;font:13px/1.5 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}" +
    "p{margin:0;color:#444}" +
    "button{float:right;border:0;background:none;font-size:1.4rem;line-height:1;cursor:pointer;color:#555}";

  function showOverlay(errors) {
    if (!overlay) {
      overlay = document.createElement("serialist-overlay");
      overlay.id = "serialist-overlay";
      var root = overlay.attachShadow({ mode: "open" });
      root.innerHTML = '<style>' + overlayStyle + '</style><div class="backdrop"><div class="box" role="alert">' +
        '<button type="button" title="Hide until the next build" aria-label="Hide">\u00d7</button>' +
        '<h2>The site could not be rebuilt</h2><pre class="serialist-errors"></pre>' +
        '<p>Fix the file and save: this page reloads by itself. Until then you see the last version that built.</p>' +
        '</div></div>';
      root.querySelector("button").addEventListener("click", hideOverlay);
      document.documentElement.appendChild(overlay);
    }
    overlay.shadowRoot.querySelector("pre").textContent = errors.join("\n");
  }

  function hideOverlay() {
    if (overlay) { overlay.remove(); overlay = null; }
  }

  function onState(state) {
    if (state.errors.length) {
      showOverlay(state.errors);
    } else if (state.build !== data.build) {
      reload();
    } else {
      hideOverlay();
    }
  }

  function connect() {
    if (source || document.visibilityState === "hidden") return;
    source = new EventSource("/__serialist/events");
    source.addEventListener("state", function (event) { onState(JSON.parse(event.data)); });
  }

  function disconnect() {
    if (source) { source.close(); source = null; }
  }

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") { disconnect(); } else { connect(); }
  });
  window.addEventListener("pagehide", disconnect);
  window.addEventListener("pageshow", function (event) { if (event.persisted) connect(); });

  restoreScroll();
  if (data.errors.length) showOverlay(data.errors);
  connect();
})();
"""


def live_snippet(state: ReloadState) -> bytes:
    """The `<script>`s injected before `</body>`: the state the page was served at (data, which runs nothing),
    and the reload script, from this server's own address (`LIVE_SCRIPT_PATH`): so the page's
    Content-Security-Policy, which lets scripts come only from the site itself, lets it run as it is, and the
    pages are served with the policy they are published with."""
    data = state.as_json().replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return (f'<script type="application/json" id="serialist-live-data">{data}</script>\n'
            f'<script src="{LIVE_SCRIPT_PATH}"></script>\n').encode("utf-8")


_BODY_END = b"</body>"


def inject(html: bytes, snippet: bytes) -> bytes:
    """`html` with `snippet` before its last `</body>` (or at the end when there is none)."""
    index = html.lower().rfind(_BODY_END)
    return html + snippet if index < 0 else html[:index] + snippet + html[index:]


def body_end(file: BinaryIO, size: int, chunk: int = CHUNK_BYTES) -> int:
    """Where the last `</body>` (in any case) of the first `size` bytes of `file` starts; `size` if there is none.

    Reads backwards a chunk at a time (usually once: pages end with it), never the whole file.
    """
    end = size
    while end > 0:
        start = max(0, end - chunk)
        file.seek(start)
        # Reaching a little past `end`, so that a tag across the boundary is found in this chunk.
        block = file.read(min(size, end + len(_BODY_END) - 1) - start)
        index = block.lower().rfind(_BODY_END)
        if index >= 0:
            return start + index
        end = start
    return size


_UNBUILT_PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Serialist: not built yet</title></head>
<body><h1>The site has not been built yet</h1>
<p>The errors are shown in the terminal. This page reloads by itself when the site builds.</p>
</body></html>
"""


# --- HTTP --------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class FileBody:
    """An open file to send as a response body, with `insert` (the reload script) put in at byte `at`.

    Sent straight from disk in chunks. Whoever has it closes `file` (`_Handler._send` does, sent or not).
    """

    file: BinaryIO
    size: int  # how much of the file to send: its size when it was opened
    insert: bytes = b""
    at: int = 0

    @property
    def length(self) -> int:
        return self.size + len(self.insert)


@dataclass(frozen=True, slots=True)
class Response:
    status: HTTPStatus
    body: bytes | FileBody = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = field(default=())

    def close(self) -> None:
        if isinstance(self.body, FileBody):
            self.body.file.close()


def _text(status: HTTPStatus, message: str) -> Response:
    return Response(status, f"{status.value} {status.phrase}: {message}\n".encode())


class _DeadlineReader(io.RawIOBase):
    """A connection's incoming bytes; once `deadline` (`time.monotonic()`) has passed, reading raises TimeoutError.

    Each read waits only for what is left until the deadline, so a client sending a byte
    now and then cannot stretch it. `deadline = None`: reads wait as long as the socket's timeout.
    """

    def __init__(self, sock: socket.socket, deadline: float | None) -> None:
        super().__init__()
        self._sock = sock
        self.deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self.deadline is not None:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the request head did not come in time")
            self._sock.settimeout(remaining)
        return self._sock.recv_into(buffer)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    server_version = "Serialist"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # the base class's: read through the deadline instead
        self._reader = _DeadlineReader(self.connection, time.monotonic() + self.server.header_timeout)
        self.rfile = io.BufferedReader(self._reader)

    def parse_request(self) -> bool:
        """Read the headers (within the header deadline); after them, only a stalled client is dropped."""
        parsed = super().parse_request()
        self._reader.deadline = None
        self.connection.settimeout(SEND_TIMEOUT_SECONDS)
        return parsed

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
        """Quiet: the terminal shows one line per rebuild, not one per request."""

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def _answer(self, head: bool) -> None:
        app = self.server.app
        host = self.headers.get("Host")
        if not host_allowed(host, app.listener):
            self._send(_text(HTTPStatus.FORBIDDEN, f"this server answers only to {app.listener.url}"), head)
        elif self.path.split("?", 1)[0] == LIVE_SCRIPT_PATH:
            self._send(Response(HTTPStatus.OK, _LIVE_SCRIPT.encode("utf-8"), "text/javascript; charset=utf-8"), head)
        elif self.path.split("?", 1)[0] == EVENTS_PATH:
            if not origin_allowed(self.headers.get("Origin"), host):
                self._send(_text(HTTPStatus.FORBIDDEN, "the reload channel is only for this server's pages"), head)
            else:
                self._stream_events(app.channel, head)
        else:
            self._send(app.respond(self.path), head)

    def _send(self, response: Response, head: bool) -> None:
        body = response.body
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(body) if isinstance(body, bytes) else body.length))
            self._common_headers()
            for name, value in response.headers:
                self.send_header(name, value)
            self.end_headers()
            if head:
                return
            if isinstance(body, bytes):
                self.wfile.write(body)
                return
            # Straight from the file to the socket (os.sendfile where there is one), the insert in between.
            if body.at:
                self.connection.sendfile(body.file, 0, body.at)
            self.wfile.write(body.insert)
            if body.size > body.at:
                self.connection.sendfile(body.file, body.at, body.size - body.at)
        finally:
            response.close()

    def _common_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "same-origin")

    def _stream_events(self, channel: ReloadChannel, head: bool) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self._common_headers()
        self.end_headers()
        if head:
            return
        stream = object()
        state = channel.attach(stream)
        try:
            self.wfile.write(f"retry: {RETRY_MILLISECONDS}\n\n".encode() + state.event())
            channel.sent(stream, state)
            while not channel.closed:
                latest = channel.wait_for_change(state, HEARTBEAT_SECONDS)
                if channel.closed:
                    break
                # A comment line as heartbeat: finds tabs that went away without closing.
                self.wfile.write(b": ping\n\n" if latest is state else latest.event())
                channel.sent(stream, latest)
                state = latest
        except ConnectionError:
            pass  # the tab was closed or reloaded
        finally:
            channel.detach(stream)


class _HTTPServer(ThreadingHTTPServer):
    """One thread per connection, at most `max_connections` of them; the rest wait to be accepted."""

    daemon_threads = True

    def __init__(self, listener: Listener, app: LiveReloadServer[object], header_timeout: float,
                 max_connections: int) -> None:
        super().__init__(listener.socket.getsockname()[:2], _Handler, bind_and_activate=False)
        self.socket.close()  # the one made by the base class: we already have a bound socket
        self.socket = listener.socket
        self.address_family = listener.socket.family
        self.server_name = listener.host
        self.server_port = listener.port
        self.app = app
        self.header_timeout = header_timeout
        self._slots = threading.BoundedSemaphore(max_connections)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        self._closing = False

    def get_request(self) -> tuple[socket.socket, object]:
        # At the limit, leave the connection in the listening socket's queue; serve_forever asks again.
        if not self._slots.acquire(timeout=0.2):
            raise OSError("every connection slot is in use")
        try:
            request, address = super().get_request()
        except BaseException:
            self._slots.release()
            raise
        with self._open_lock:
            self._open.add(request)
            closing = self._closing
        if closing:
            request.shutdown(socket.SHUT_RDWR)  # the server is stopping: the handler ends at once
        return request, address

    def process_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        try:
            super().process_request(request, client_address)  # type: ignore[arg-type]
        except BaseException:  # no thread to give the slot back
            self._done(request)
            raise

    def process_request_thread(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        try:
            super().process_request_thread(request, client_address)  # type: ignore[arg-type]
        finally:
            self._done(request)

    def _done(self, request: socket.socket) -> None:
        with self._open_lock:
            self._open.discard(request)
        self._slots.release()

    def close_connections(self) -> None:
        """End every open connection (the handlers' reads and writes fail) and every one accepted from now on."""
        with self._open_lock:
            self._closing = True
            connections = list(self._open)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class LiveReloadServer(Generic[C]):
    """Serves `root` on `listener`; `rebuild(changes)` runs `builder` and reloads every open page.

    `builder` gets whatever the caller passes to `rebuild` (the watcher's batch of
    changes, or None for "build everything") and returns a BuildStatus. Builds run
    one at a time; requests are never blocked by them. `header_timeout` and
    `max_connections`: see the module's doc.
    """

    def __init__(self, root: Path, builder: Builder[C], listener: Listener, *,
                 header_timeout: float = HEADER_TIMEOUT_SECONDS, max_connections: int = MAX_CONNECTIONS) -> None:
        self.root = root
        self.listener = listener
        self.channel = ReloadChannel()
        self._builder = builder
        self._build_lock = threading.Lock()
        self._httpd = _HTTPServer(listener, self, header_timeout, max_connections)  # type: ignore[arg-type]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self.listener.url

    def start(self) -> None:
        """Answer requests from a background thread."""
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="serialist-http", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        """Stop answering, end every event stream and open connection, close the socket."""
        self.channel.close()
        self._httpd.close_connections()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> LiveReloadServer[C]:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    def rebuild(self, changes: C | None) -> BuildStatus:
        """Run the build callback, then tell every open page to reload or to show the errors.

        What the build left for after the reload (`BuildStatus.then`) runs next, before any
        other build; open pages hear of it only if it changed something.
        """
        with self._build_lock:
            try:
                status = self._builder(changes)
            except Exception as exc:  # a bug in the callback must not take the server down
                traceback.print_exc()
                status = BuildStatus((f"internal error while building: {exc!r}",))
            self.channel.publish(status)
            if status.then is not None:
                self.channel.wait_sent(SEND_WAIT_SECONDS)  # the reload first: `then` holds the GIL for a while
                try:
                    again = status.then()
                except Exception as exc:
                    traceback.print_exc()
                    again = BuildStatus((f"internal error while building: {exc!r}",))
                if again is not None:
                    self.channel.publish(again)
            return status

    def respond(self, request_path: str) -> Response:
        """The response to a GET of `request_path` (anything but the event stream)."""
        state = self.channel.state
        if not self._root_ready(state):
            return self._html(HTTPStatus.SERVICE_UNAVAILABLE, _UNBUILT_PAGE, state)
        target = resolve_target(self.root, request_path)
        if target is None:
            return self._not_found(state)
        if target.path.is_dir():
            if not target.slash:
                query = request_path.partition("?")[2]
                location = target.canonical + (f"?{query}" if query else "")
                return Response(HTTPStatus.MOVED_PERMANENTLY, f"Moved to {location}\n".encode(),
                                headers=(("Location", location),))
            index = resolve_target(self.root, target.canonical + "index.html")
            if index is None:
                return self._not_found(state)
            target = index
        return self._file(HTTPStatus.OK, target.path, state) or self._not_found(state)

    def _root_ready(self, state: ReloadState) -> bool:
        """Whether the served folder exists, waiting briefly if a build is swapping it in."""
        deadline = time.monotonic() + (0 if state.errors else SWAP_WAIT_SECONDS)
        while not self.root.is_dir():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def _file(self, status: HTTPStatus, path: Path, state: ReloadState) -> Response | None:
        """The response for a regular file, to be sent from disk; None when there is none at `path` (any more)."""
        try:
            if not path.is_file():  # a folder, or a pipe or device, which would block or never end
                return None
            file = path.open("rb")
        except OSError:  # gone since it was resolved (a rebuild removed it), or unreadable
            return None
        try:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode):
                file.close()
                return None
            kind = content_type(path, file.read(1024))
            if kind.startswith("text/html"):
                body = FileBody(file, info.st_size, live_snippet(state), body_end(file, info.st_size))
                return Response(status, body, "text/html; charset=utf-8")
            return Response(status, FileBody(file, info.st_size), kind)
        except OSError:
            file.close()
            return None
        except BaseException:
            file.close()
            raise

    def _html(self, status: HTTPStatus, html: bytes, state: ReloadState) -> Response:
        return Response(status, inject(html, live_snippet(state)), "text/html; charset=utf-8")

    def _not_found(self, state: ReloadState) -> Response:
        page = resolve_target(self.root, "/404.html")
        response = self._file(HTTPStatus.NOT_FOUND, page.path, state) if page else None
        return response or _text(HTTPStatus.NOT_FOUND, "there is nothing at this address")
