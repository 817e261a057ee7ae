"""The sample site built and served over loopback HTTP, and Debian's Chromium, for the browser tests.

Served over http (not file://, where every file has its own localStorage) from
a folder that puts the site under `/serialist/`, its path in `base_url`; a
second copy built for `https://example.github.io/other/` is served under
`/other/` on the same origin, as two project sites on one github.io domain.
"""

from __future__ import annotations

import functools
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import NOW, SAMPLE_SITE
from generator.build import build
from generator.config import BuildOptions

CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
SITE_PATH = "/serialist/"
OTHER_PATH = "/other/"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        pass


def build_sample(folder: Path, base_url: str | None = None) -> Path:
    """Build a copy of the sample site into `folder` (which must not exist yet)."""
    source = folder.with_name(folder.name + "-source")
    source.mkdir(parents=True)
    shutil.copy(SAMPLE_SITE / "site.toml", source / "site.toml")
    shutil.copytree(SAMPLE_SITE / "content", source / "content")
    build(source, BuildOptions(output=folder, now=NOW, base_url=base_url, quiet=True))
    return folder


@pytest.fixture(scope="module")
def site_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`http://127.0.0.1:PORT/serialist/`: the sample site; `…/other/` is another site on the same origin."""
    docroot = tmp_path_factory.mktemp("served")
    build_sample(docroot / SITE_PATH.strip("/"))
    build_sample(docroot / OTHER_PATH.strip("/"), base_url=f"https://example.github.io{OTHER_PATH}")
    (docroot / "favicon.ico").write_bytes(b"")  # browsers ask for it; a 404 would log a console error
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(docroot)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{SITE_PATH}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("no `chromium` on PATH: install Debian's chromium package to run the browser tests")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
