"""Pages made in forked worker processes: the same bytes, in the same order, and errors as they are."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from generator.output import AnyFile, LazyFile, OutputFile, Placed
from generator.parallel import PARALLEL_PAGES, can_fork, in_workers, made


@pytest.fixture(autouse=True)
def forking() -> None:
    """Workers are forked only from a process with no other thread (`can_fork`): let threads that other tests
    in this process left behind (a test server's last keep-alive connections) end first."""
    import threading

    for thread in threading.enumerate():
        if thread is not threading.current_thread():
            thread.join(timeout=5)
    if not can_fork():
        pytest.skip(f"other tests' threads still run in this process: {[t.name for t in threading.enumerate()]}")


def page(index: int) -> LazyFile:
    return LazyFile(f"p/{index}.html", lambda: f"page {index} by {os.getpid()}".encode())


class Placer:
    """A `place` for `made`: each file's bytes into a folder (in whichever process made them)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(exist_ok=True)

    def __call__(self, path: str, data: bytes) -> tuple[str, bool]:
        (self.folder / path.replace("/", "_")).write_bytes(data)
        return f"digest of {path}", True

    def data(self, path: str) -> bytes:
        return (self.folder / path.replace("/", "_")).read_bytes()


def made_here(files: list[AnyFile], placer: Placer) -> dict[str, bytes]:
    """What `made` gives, by path, in the order it gives it: each file's bytes, wherever they were made."""
    return {item.path: placer.data(item.path) if isinstance(item, Placed) else item.data
            for item in made(files, workers=2, place=placer)}


def test_pages_are_made_in_other_processes(tmp_path):
    files = [OutputFile("feed.xml", b"feed"), *(page(i) for i in range(PARALLEL_PAGES + 100)),
             OutputFile("book.epub", b"epub")]
    out = made_here(files, Placer(tmp_path / "out"))
    assert sorted(out) == sorted(f.path for f in files)
    assert out["feed.xml"] == b"feed" and out["book.epub"] == b"epub"
    texts = [out[f"p/{i}.html"].decode() for i in range(PARALLEL_PAGES + 100)]
    assert [t.split(" by ")[0] for t in texts] == [f"page {i}" for i in range(PARALLEL_PAGES + 100)]
    makers = {int(t.split(" by ")[1]) for t in texts}
    assert os.getpid() not in makers and len(makers) >= 1


def test_a_long_early_file_does_not_hold_up_the_pages(tmp_path):
    """An `early` file (a book) is started first and made while the other worker makes the pages, even
    pages far beyond what is kept ahead of the writer: here the book waits for the 400th page."""
    import multiprocessing

    page_400_made = multiprocessing.get_context("fork").Event()

    def book() -> bytes:
        return b"after page 400" if page_400_made.wait(timeout=20) else b"timed out"

    def page_400() -> bytes:
        page_400_made.set()
        return b"page 400"

    files = [*(page(i) for i in range(400)), LazyFile("p/400.html", page_400),
             *(page(i) for i in range(401, 500)), LazyFile("book.epub", book, weight=60, early=True)]
    out = made_here(files, Placer(tmp_path / "out"))
    assert out["book.epub"] == b"after page 400"
    assert sorted(out) == sorted(f.path for f in files)


def test_early_files_come_out_as_soon_as_they_are_made(tmp_path):
    """A site's books are given out as each is made, not held until the pages are all made."""
    books = [LazyFile(f"{n}.epub", lambda n=n: f"book {n}".encode(), weight=60, early=True) for n in range(4)]
    files = [*(page(i) for i in range(PARALLEL_PAGES + 300)), *books]
    out = made_here(files, Placer(tmp_path / "out"))
    assert sorted(out) == sorted(f.path for f in files) and out["3.epub"] == b"book 3"
    assert max(list(out).index(book.path) for book in books) < len(files) - 100


def test_few_pages_are_made_here(tmp_path):
    out = list(made([page(i) for i in range(5)], workers=2, place=Placer(tmp_path / "out")))
    assert {f.data.decode().split(" by ")[1] for f in out} == {str(os.getpid())}


def test_an_error_in_a_worker_is_raised_as_it_is(tmp_path):
    def broken() -> bytes:
        raise ValueError("the template broke on page 450")

    files = [*(page(i) for i in range(450)), LazyFile("p/broken.html", broken), *(page(i) for i in range(450, 500))]
    with pytest.raises(ValueError, match="broke on page 450"):
        for _ in made(files, workers=2, place=Placer(tmp_path / "out")):
            pass


def test_markdown_in_workers_is_the_markdown_rendered_here(monkeypatch, tmp_path):
    from generator import markdown

    target = tmp_path / "2.md"
    target.write_text("x")
    targets = markdown.LinkTargets({target.resolve(): ("s", "2")})
    jobs = [markdown.Job(f"s-{n}", f'"Text" -- {n}...[^1] [next](2.md) [gone](3.md)\n\n[^1]: Note {n}.',
                         markdown.Origin(tmp_path / f"{n}.md", 5)) for n in range(40)]
    with markdown.Rendering(jobs, targets, None, 1, []) as rendering:
        here = rendering.results()
    monkeypatch.setattr(markdown, "PARALLEL_THRESHOLD", 0)
    with markdown.Rendering(jobs, targets, None, 2, []) as rendering:
        assert rendering._pool is not None  # rendered in workers
        there = rendering.results()
    assert there == here and len(here) == 40
    assert "serialist:s/2" in here["s-7"][0] and here["s-7"][2]  # the link resolved; the broken one reported
    assert here["s-7"][2][0][:2] == (str(tmp_path / "7.md"), 5)  # problems come back with file and line



def test_the_workers_render_while_the_caller_does_other_work(monkeypatch, tmp_path):
    """Started, a rendering hands its texts to the workers at once: they are done before the results are asked
    for. Closed unasked, it stops its workers."""
    from concurrent.futures import wait

    from generator import markdown

    monkeypatch.setattr(markdown, "PARALLEL_THRESHOLD", 0)
    jobs = [markdown.Job(f"s-{n}", f"Text {n}.", markdown.Origin(tmp_path / f"{n}.md", 1)) for n in range(20)]
    with markdown.Rendering(jobs, markdown.LinkTargets({}), None, 2, []) as rendering:
        futures = rendering._futures
        assert futures and not wait(futures, timeout=60).not_done  # nobody asked for the results yet
        assert rendering.results()["s-3"] == ("<p>Text 3.</p>\n", 2, ())
    with markdown.Rendering(jobs, markdown.LinkTargets({}), None, 2, []) as unasked:
        assert unasked._pool is not None
        workers = list(unasked._pool._processes.values())
    assert unasked._pool is None and len(workers) == 2 and not any(worker.is_alive() for worker in workers)



@pytest.mark.parametrize("workers", [1, 2])
def test_a_rendering_lets_go_of_the_markdown_once_it_gives_its_results(monkeypatch, tmp_path, workers):
    """The build keeps the rendering until its end: the texts it was given (all of a long serial's Markdown)
    must not stay with it."""
    import sys

    from generator import markdown

    monkeypatch.setattr(markdown, "PARALLEL_THRESHOLD", 0)
    text = "".join(["A text of its own, ", str(tmp_path)])
    alone = sys.getrefcount(text)
    jobs = [markdown.Job("s-1", text, markdown.Origin(tmp_path / "1.md", 1))]
    with markdown.Rendering(jobs, markdown.LinkTargets({}), None, workers, []) as rendering:
        assert rendering.results()["s-1"][1] == 6
        del jobs
        assert sys.getrefcount(text) == alone


def test_batches_of_markdown_get_smaller_and_hold_every_text_once(tmp_path):
    from generator import markdown

    lengths = [3000 * (n % 7 + 1) for n in range(400)] + [40] * 300  # chapters, and short notes
    jobs = [markdown.Job(f"d{n}", "x" * length, markdown.Origin(tmp_path / f"{n}.md", 1))
            for n, length in enumerate(lengths)]
    batches = markdown._batches(jobs, 2)
    assert sorted(index for batch in batches for index, _ in batch) == list(range(len(jobs)))
    assert all(jobs[index] is job for batch in batches for index, job in batch)
    sizes = [sum(len(job.text) + markdown.JOB_CHARACTERS for _, job in batch) for batch in batches]
    assert 6 <= len(batches) <= 24 and sizes[0] >= sum(sizes) / 5 and sizes[-1] <= sum(sizes) / 20, sizes
    assert all(later <= earlier * 1.1 for earlier, later in zip(sizes, sizes[1:])), sizes
    huge = [markdown.Job(f"h{n}", "x" * 100_000, markdown.Origin(tmp_path / "h.md", 1)) for n in range(200)]
    assert max(sum(len(job.text) for _, job in batch) for batch in markdown._batches(huge, 2)) \
        <= markdown.BATCH_MOST + 100_000


@pytest.mark.skipif(not hasattr(__import__("fcntl"), "F_GETPIPE_SZ"), reason="pipe sizes are Linux's")
def test_the_pipes_to_the_workers_hold_a_whole_batch():
    """`widen_pipes` reaches into the pool's insides: a Python whose pool is built otherwise fails here, not
    silently in every build."""
    import fcntl
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from generator.parallel import PIPE_BYTES, widen_pipes

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        widen_pipes(pool)
        for connection in (pool._result_queue._reader, pool._call_queue._reader):
            assert fcntl.fcntl(connection.fileno(), fcntl.F_GETPIPE_SZ) >= PIPE_BYTES
        assert pool.submit(len, "x" * 3_000_000).result() == 3_000_000

@pytest.mark.parametrize("markdown_error", [True, False])
def test_a_template_compiled_while_the_workers_render_reports_after_the_markdown(make_site, monkeypatch,
                                                                                 markdown_error):
    """The build compiles the theme while its workers render the Markdown: a broken template is still named
    with its line, and the Markdown's own errors, found later, are reported first, as they always were."""
    from conftest import NOW, STORY, chapter
    from generator import markdown
    from generator.build import build
    from generator.config import BuildOptions
    from generator.errors import ContentError

    monkeypatch.setattr(markdown, "PARALLEL_THRESHOLD", 0)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    body = "See [the lost one](9.md)." if markdown_error else "Fine."
    site = make_site({"site.toml": 'title = "T"\ntheme = "mine"\n', "content/s/story.md": STORY,
                      **{f"content/s/{n}.md": chapter(f"C{n}", body=body if n == 2 else "Words.") for n in range(1, 5)},
                      "themes/mine/templates/chapter.html": '{% extends "default/chapter.html" %}\n{% if %}\n'})
    used = []
    real = markdown.Rendering.__init__
    monkeypatch.setattr(markdown.Rendering, "__init__",
                        lambda self, *args: real(self, *args) or used.append(self._pool is not None))
    with pytest.raises(ContentError) as raised:
        build(site, BuildOptions(output=site / "output", now=NOW, cache=False))
    assert used == [True]
    problems = [(p.path.name, p.line, p.message) for p in raised.value.problems]
    if markdown_error:
        assert len(problems) == 1 and problems[0][:2] == ("2.md", 5) and "9.md" in problems[0][2], problems
    else:
        assert problems[0][:2] == ("chapter.html", 2) and "template error" in problems[0][2], problems


BODIES = {  # chapter → its text, and whether a worker can deflate its document whole
    1: ('"Chapter" 1 -- see [the next](2.md#x).[^1]\n\n[^1]: N.', False),  # a link to an id in another document
    2: ("Chapter 2 and its note.[^1]\n\n[^1]: N.", True),  # its footnotes link within it
    3: ("Chapter 3, [back](2.md).", True),  # a link to another document, not to an id in it
    4: ("Chapter 4, [to nowhere](#nowhere).", False),  # an id it lacks: the link goes to the document itself
    5: ("Chapter 5.", True),
}


@pytest.mark.parametrize("zip64", [False, True])
def test_chapters_converted_for_the_epub_in_workers_give_the_same_book(make_site, monkeypatch, tmp_path, zip64):
    """Converted in workers, and deflated there when whole already: the same book as made here, also when the
    book has to go the zipfile way."""
    import shutil

    from conftest import NOW, STORY, chapter
    from generator import epub
    from generator.build import build
    from generator.config import BuildOptions

    files = {"site.toml": 'title = "T"\nbase_url = "https://example.org/"\n', "content/s/story.md": STORY}
    for n, (body, _) in BODIES.items():
        files[f"content/s/{n}.md"] = chapter(f"C{n}", body=body)
    site = make_site(files)
    other = tmp_path / "other"
    shutil.copytree(site, other)
    if zip64:
        monkeypatch.setattr(epub, "_MAX_ENTRIES", 4)
    build(site, BuildOptions(output=site / "output", now=NOW, cache=False))

    used, packed = [], []
    real_keep_packed = epub._Book.keep_packed
    monkeypatch.setattr(epub, "PARALLEL_CHAPTERS", 2)
    monkeypatch.setattr(epub, "EARLY_WORDS", 0)  # a long story's book: made in the EPUB stage
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(epub, "in_workers", lambda *args: used.append(1) or in_workers(*args))
    monkeypatch.setattr(epub._Book, "keep_packed", lambda book, file, *args: packed.append(file)
                        or real_keep_packed(book, file, *args))
    build(other, BuildOptions(output=other / "output", now=NOW, cache=False))
    assert used, "the chapters were not converted in workers"
    assert sorted(packed) == [f"chapter-{n}.xhtml" for n, (_, whole) in BODIES.items() if whole]
    assert (other / "output/s/s.epub").read_bytes() == (site / "output/s/s.epub").read_bytes()


def test_chapters_converted_in_workers_are_cached_deflated_when_whole(make_site, monkeypatch, tmp_path):
    """The conversions cache holds what the workers deflated (and the bodies of the others), and the next
    book, made from it, is the book made without any cache."""
    import marshal
    import shutil
    import sqlite3

    from conftest import NOW, STORY, chapter
    from generator import epub
    from generator.build import build
    from generator.config import BuildOptions

    files = {"site.toml": 'title = "T"\nbase_url = "https://example.org/"\n', "content/s/story.md": STORY}
    for n, (body, _) in BODIES.items():
        files[f"content/s/{n}.md"] = chapter(f"C{n}", body=body)
    site = make_site(files)
    monkeypatch.setattr(epub, "PARALLEL_CHAPTERS", 2)
    monkeypatch.setattr(epub, "EARLY_WORDS", 0)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    build(site, BuildOptions(output=site / "output", now=NOW))
    db = sqlite3.connect(site / ".serialist-cache/xhtml.sqlite")
    lengths = [len(marshal.loads(value)) for (value,) in db.execute("SELECT value FROM entries")]
    db.close()
    assert lengths.count(len(epub._Whole._fields)) == sum(whole for _, whole in BODIES.values())
    (site / "content/s/5.md").write_text(chapter("C5", body="Chapter 5, changed."))
    build(site, BuildOptions(output=site / "output", now=NOW))
    cold = tmp_path / "cold"
    shutil.copytree(site, cold, ignore=shutil.ignore_patterns(".serialist-cache", "output"))
    build(cold, BuildOptions(output=cold / "output", now=NOW, cache=False))
    assert (site / "output/s/s.epub").read_bytes() == (cold / "output/s/s.epub").read_bytes()


def test_books_made_by_page_workers_are_the_books_made_here(make_site, monkeypatch, tmp_path):
    """Shorter stories' books are made by the page workers, beside the pages: the same bytes as made here."""
    import shutil

    from conftest import NOW, STORY, chapter
    from generator import epub, parallel
    from generator.build import build
    from generator.config import BuildOptions

    files = {"site.toml": 'title = "T"\nbase_url = "https://example.org/"\n'}
    for story in ("a", "b", "c"):
        files[f"content/{story}/story.md"] = STORY.replace("A Story", f"Story {story}")
        files.update({f"content/{story}/{n}.md": chapter(f"C{n}", body=f"{story} {n} -- [to one](1.md).")
                      for n in range(1, 4)})
    site = make_site(files)
    other = tmp_path / "other"
    shutil.copytree(site, other)
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    build(site, BuildOptions(output=site / "output", now=NOW, cache=False))

    log = tmp_path / "makers.txt"  # a file: the books are made in other processes
    real = epub.make_epub

    def logged(*args, **kwargs):  # noqa: ANN002, ANN003
        with log.open("a") as handle:
            handle.write(f"{os.getpid()}\n")
        return real(*args, **kwargs)

    monkeypatch.setattr(epub, "make_epub", logged)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(parallel, "PARALLEL_PAGES", 1)
    build(other, BuildOptions(output=other / "output", now=NOW, cache=False))
    makers = log.read_text().split()
    assert len(makers) == 3 and str(os.getpid()) not in makers, "the books were not made in workers"
    for story in ("a", "b", "c"):
        book = f"output/{story}/{story}.epub"
        assert (other / book).read_bytes() == (site / book).read_bytes()


def test_the_page_workers_look_for_the_books_in_the_cache(make_site, monkeypatch, tmp_path):
    """What goes into a book (megabytes of a long story's text) is hashed, to find the book in the cache, by
    the worker that makes it, beside the pages, rather than by the build before the pages start."""
    import zipfile

    from conftest import NOW, STORY, chapter
    from generator import epub, parallel
    from generator.build import build
    from generator.config import BuildOptions

    files = {"site.toml": 'title = "T"\n'}
    for story in ("a", "b"):
        files[f"content/{story}/story.md"] = STORY.replace("A Story", f"Story {story}")
        files.update({f"content/{story}/{n}.md": chapter(f"C{n}", body=f"{story} {n}.") for n in range(1, 4)})
    site = make_site(files)
    log = tmp_path / "log.txt"  # a file: the books are looked for and made in other processes

    def logged(name, real):  # noqa: ANN001, ANN202
        def call(site, story, *args):  # noqa: ANN001, ANN202
            with log.open("a") as handle:
                handle.write(f"{name} {story.slug} {os.getpid()}\n")
            return real(site, story, *args)
        return call

    monkeypatch.setattr(epub, "cache_key", logged("key", epub.cache_key))
    monkeypatch.setattr(epub, "make_epub", logged("make", epub.make_epub))
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(parallel, "PARALLEL_PAGES", 1)
    build(site, BuildOptions(output=site / "output", now=NOW))
    first = (site / "output/b/b.epub").read_bytes()
    log.unlink()
    (site / "content/a/2.md").write_text(chapter("C2", body="a 2, again."))
    build(site, BuildOptions(output=site / "output", now=NOW))
    calls = [line.split() for line in log.read_text().splitlines()]
    assert sorted((name, story) for name, story, _ in calls) == [("key", "a"), ("key", "b"), ("make", "a")]
    assert str(os.getpid()) not in {pid for _, _, pid in calls}
    assert (site / "output/b/b.epub").read_bytes() == first  # from the cache
    with zipfile.ZipFile(site / "output/a/a.epub") as book:
        assert any(b"again" in book.read(name) for name in book.namelist())


@pytest.mark.parametrize("threshold, passes", [(10**9, 0), (0, 2)])
def test_memory_is_given_back_only_after_a_long_site(make_site, monkeypatch, threshold, passes):
    """The collector's pass over every object after the Markdown and EPUB stages pays only on a long site."""
    import gc

    from conftest import NOW, STORY, chapter
    from generator import build as build_module
    from generator.config import BuildOptions

    site = make_site({"site.toml": 'title = "T"\n', "content/s/story.md": STORY, "content/s/1.md": chapter("C1")})
    collected = []
    monkeypatch.setattr(build_module, "RELEASE_WORDS", threshold)
    monkeypatch.setattr(gc, "collect", lambda *args: collected.append(1) or 0)
    build_module.build(site, BuildOptions(output=site / "output", now=NOW, cache=False))
    assert len(collected) == passes


def test_work_ahead_runs_in_another_process_and_is_waited_for(tmp_path):
    from generator.parallel import ahead

    mark = tmp_path / "made-by"
    process = ahead(lambda: mark.write_text(str(os.getpid())))
    assert process is not None
    process.join(timeout=60)
    assert process.exitcode == 0 and int(mark.read_text()) not in (os.getpid(), 0)


def test_no_work_ahead_where_forking_is_unsafe(tmp_path):
    """With another thread running (the dev server's), nothing is forked: the caller does the work itself."""
    import threading

    from generator.parallel import ahead

    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert ahead(lambda: (tmp_path / "x").write_text("x")) is None
    finally:
        stop.set()
        thread.join()
    assert not (tmp_path / "x").exists()


def test_a_first_build_compiles_the_theme_in_another_process(make_site, monkeypatch, tmp_path):
    """On a first build (no compiled templates in the cache) the theme is compiled by a process of its own
    while the build loads the site, and the build loads it compiled: the same pages as a build that compiles
    it itself (without a cache). A later build, whose cache has them, starts no such process."""
    import shutil

    import jinja2

    from conftest import NOW, STORY, chapter
    from generator.build import build
    from generator.config import BuildOptions

    site = make_site({"site.toml": 'title = "T"\n', "content/s/story.md": STORY,
                      **{f"content/s/{n}.md": chapter(f"C{n}") for n in range(1, 4)}})
    real = jinja2.Environment.compile
    log = site / "compiled-by"

    def compile_and_say(self, *args, **kwargs):  # noqa: ANN001, ANN202
        with log.open("a") as out:  # (a forked process's list is its own: say it in a file)
            out.write(f"{os.getpid()}\n")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(jinja2.Environment, "compile", compile_and_say)
    other = tmp_path / "other"
    shutil.copytree(site, other)
    build(site, BuildOptions(output=site / "output", now=NOW))
    compiled_by = [int(line) for line in log.read_text().split()]
    assert compiled_by and os.getpid() not in compiled_by  # all of them elsewhere, none here
    log.unlink()
    build(other, BuildOptions(output=other / "output", now=NOW, cache=False))
    assert {int(line) for line in log.read_text().split()} == {os.getpid()}  # without a cache: all here
    pages = {p.relative_to(site / "output"): p.read_bytes() for p in (site / "output").rglob("*.html")}
    assert pages == {p.relative_to(other / "output"): p.read_bytes() for p in (other / "output").rglob("*.html")}

    log.unlink()
    (site / "content/s/1.md").write_text(chapter("C1", body="Other words."))
    build(site, BuildOptions(output=site / "output", now=NOW))
    assert not log.exists()  # loaded from the cache, here
    assert b"Other words." in (site / "output/s/1/index.html").read_bytes()


def test_workers_forked_from_the_build_are_sent_no_markdown(monkeypatch, tmp_path):
    """Forked, the Markdown workers share the build's texts: a batch is only their indices."""
    from concurrent.futures import ProcessPoolExecutor

    from generator import markdown

    monkeypatch.setattr(markdown, "PARALLEL_THRESHOLD", 0)
    sent: list[object] = []
    real = ProcessPoolExecutor.submit
    monkeypatch.setattr(ProcessPoolExecutor, "submit",
                        lambda pool, fn, batch: sent.append(batch) or real(pool, fn, batch))
    jobs = [markdown.Job(f"s-{n}", f"*Text* {n}.", markdown.Origin(tmp_path / f"{n}.md", 1)) for n in range(30)]
    with markdown.Rendering(jobs, markdown.LinkTargets({}), None, 2, []) as rendering:
        results = rendering.results()
    assert results["s-29"] == ("<p><em>Text</em> 29.</p>\n", 2, ())
    assert sent and all(isinstance(index, int) for batch in sent for index in batch)  # type: ignore[attr-defined]
    assert sorted(index for batch in sent for index in batch) == list(range(30))  # type: ignore[attr-defined]


def test_a_build_that_fails_leaves_nothing_at_work_in_its_site(make_site):
    """The theme's compiling, started ahead, is over when the build is, also when the content stopped it:
    nothing writes into the site after the command ends (or while a script deletes it)."""
    import multiprocessing

    from conftest import NOW
    from generator.build import build
    from generator.config import BuildOptions
    from generator.errors import ContentError

    site = make_site({"site.toml": 'title = "T"\n', "content/s/story.md": "---\ntitle: [unclosed\n---\n"})
    with pytest.raises(ContentError):
        build(site, BuildOptions(output=site / "output", now=NOW))
    assert (site / ".serialist-cache/jinja").is_dir()  # it did start
    assert multiprocessing.active_children() == []


def test_workers_put_the_pages_they_make_in_place_themselves(tmp_path):
    """Given where files go (`place`), a worker puts each page it makes there itself: only a small record
    comes back, never the page's bytes. What was made already is left for the caller to put in place, handed
    out only once the workers are forked (the caller's threads put it in place, and those must not fork)."""
    import multiprocessing

    from generator.output import Placed

    folder = tmp_path / "placed"
    folder.mkdir()

    def place(path: str, data: bytes) -> tuple[str, bool]:
        (folder / path.replace("/", "_")).write_bytes(data + f" placed by {os.getpid()}".encode())
        return f"digest of {path}", True

    files = [OutputFile("feed.xml", b"feed"), *(page(i) for i in range(PARALLEL_PAGES + 50))]
    out, workers_then = [], []
    for item in made(files, workers=2, place=place):
        out.append(item)
        if item == files[0]:
            workers_then.append(len(multiprocessing.active_children()))
    placed = [item for item in out if item != files[0]]
    assert len(out) == len(files) and workers_then and workers_then[0] >= 1
    assert all(isinstance(item, Placed) for item in placed)
    assert sorted(item.path for item in placed) == sorted(file.path for file in files[1:])
    assert all(item.digest == f"digest of {item.path}" and item.written for item in placed)
    for i in range(PARALLEL_PAGES + 50):
        text, maker, placer = re.fullmatch(r"(page \d+) by (\d+) placed by (\d+)",
                                           (folder / f"p_{i}.html").read_text()).groups()
        assert text == f"page {i}" and maker == placer != str(os.getpid())


def test_pages_put_in_place_by_workers_are_the_output_made_here(make_site, monkeypatch, tmp_path):
    """The same files and manifest whether the build process writes every file or the workers put the pages
    in place; and on a rebuild the same files are written, the unchanged ones kept as they were."""
    import shutil

    from conftest import NOW, STORY, chapter
    from generator import parallel
    from generator.build import build
    from generator.config import BuildOptions

    files = {"site.toml": 'title = "T"\nbase_url = "https://example.org/"\n', "content/s/story.md": STORY}
    files.update({f"content/s/{n}.md": chapter(f"C{n}", body=f"Chapter {n}.") for n in range(1, 9)})
    here = make_site(files)
    there = tmp_path / "there"
    shutil.copytree(here, there)
    monkeypatch.setattr(parallel, "PARALLEL_PAGES", 1)

    def tree(site: Path) -> dict[str, bytes]:
        return {p.relative_to(site / "output").as_posix(): p.read_bytes()
                for p in (site / "output").rglob("*") if p.is_file()}

    results = {}
    for site, cores in ((here, 1), (there, 2)):
        monkeypatch.setattr(os, "cpu_count", lambda cores=cores: cores)
        build(site, BuildOptions(output=site / "output", now=NOW))
        (site / "content/s/3.md").write_text(chapter("C3", body="Chapter 3, longer now."))
        times = {p: p.stat().st_mtime_ns for p in (site / "output").rglob("*.css")}
        results[cores] = build(site, BuildOptions(output=site / "output", now=NOW)).files_written
        assert times and all(p.stat().st_mtime_ns == t for p, t in times.items())
    assert tree(here) == tree(there) and ".serialist-manifest" in tree(here)
    assert results[1] == results[2] > 0


def test_the_markdown_workers_collector_leaves_what_they_share_alone(monkeypatch, tmp_path):
    """Forked with the build's objects frozen (`gc.freeze`), a worker's garbage collector does not write into
    every object it shares with the build, which would copy their pages; the build's own goes on as before."""
    import gc

    from generator import markdown

    monkeypatch.setattr(markdown, "PARALLEL_THRESHOLD", 0)
    monkeypatch.setattr(markdown, "render_job", lambda job, targets: (str(gc.get_freeze_count()), 0, ()))
    jobs = [markdown.Job(f"s-{n}", f"Text {n}.", markdown.Origin(tmp_path / f"{n}.md", 1)) for n in range(10)]
    with markdown.Rendering(jobs, markdown.LinkTargets({}), None, 2, []) as rendering:
        assert gc.get_freeze_count() == 0
        frozen = {int(html) for html, _, _ in rendering.results().values()}
    assert len(frozen) == 1 and frozen.pop() > 1000


def test_what_a_dead_markdown_worker_leaves_is_rendered_here(monkeypatch, tmp_path):
    """A worker killed while it renders (out of memory, say) breaks the pool: what it and the others had
    not sent back is rendered in the build's own process, and the results are the same."""
    from generator import markdown

    jobs = [markdown.Job(f"s-{n}", f"*Text* {n}. " * 50, markdown.Origin(tmp_path / f"{n}.md", 1)) for n in range(60)]
    with markdown.Rendering(jobs, markdown.LinkTargets({}), None, 1, []) as rendering:
        here = rendering.results()
    build = os.getpid()
    real = markdown.render_job

    def dying(job, targets):  # noqa: ANN001, ANN202
        if os.getpid() != build and job.doc_id == "s-7":
            os._exit(9)  # as the kernel's out-of-memory killer would end it
        return real(job, targets)

    monkeypatch.setattr(markdown, "PARALLEL_THRESHOLD", 0)
    monkeypatch.setattr(markdown, "render_job", dying)
    with markdown.Rendering(jobs, markdown.LinkTargets({}), None, 2, []) as rendering:
        assert rendering._pool is not None
        assert rendering.results() == here
