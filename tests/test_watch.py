"""The watcher: temp-file filter, change classification, debouncing, and a real observer."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileClosedNoWriteEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileOpenedEvent,
    FileSystemEvent,
)

from conftest import STORY, chapter
from generator.watch import (
    ChangeBatch,
    ChangeKind,
    Debouncer,
    SiteLayout,
    SiteWatcher,
    classify,
    event_paths,
    is_temp_file,
    written_path,
)

CONTENT, CONFIG, THEME, IGNORED = ChangeKind.CONTENT, ChangeKind.CONFIG, ChangeKind.THEME, ChangeKind.IGNORED
# How long "nothing happens" is watched for: several quiet periods.
NOTHING_SECONDS = 0.6


@pytest.mark.parametrize(("name", "temp"), [
    ("4913", True),  # vim's probe that it may write in the folder
    ("1-static.md~", True),  # vim / emacs backup
    (".1-static.md.swp", True),
    (".1-static.md.swx", True),
    ("1-static.md.swp", True),
    ("1-static.md___jb_tmp___", True),
    ("1-static.md___jb_old___", True),
    (".goutputstream-3XTQ1Z", True),
    (".#1-static.md", True),  # emacs lock file
    ("#1-static.md#", True),  # emacs auto-save
    (".DS_Store", True),
    ("~$story.docx", True),
    ("1-static.md.tmp", True),
    (".git", True),
    ("1-static.md", False),
    ("story.md", False),
    ("site.toml", False),
    ("4913.md", False),
    ("49130", False),
    ("cover.png", False),
    ("notes~draft.md", False),
    ("chapter#2.md", False),
])
def test_temp_file_filter(name: str, temp: bool) -> None:
    assert is_temp_file(name) is temp


@pytest.fixture
def layout(tmp_path: Path) -> SiteLayout:
    return SiteLayout.of(tmp_path / "site", ignore=(tmp_path / "site" / "private-build",))


@pytest.mark.parametrize(("relative", "kind"), [
    ("content/salt/1-static.md", CONTENT),
    ("content/salt/story.md", CONTENT),
    ("content/the-last-ferry.md", CONTENT),
    ("content/salt/cover.png", CONTENT),
    ("content/salt", CONTENT),  # a story folder created, deleted or renamed
    ("content", CONTENT),
    ("site.toml", CONFIG),
    ("themes/mine/templates/chapter.html", THEME),
    ("themes/mine/static/style.css", THEME),
    ("content/salt/.1-static.md.swp", IGNORED),
    ("content/salt/4913", IGNORED),
    ("content/salt/1-static.md~", IGNORED),
    ("content/salt/1-static.md___jb_tmp___", IGNORED),
    ("content/salt/.goutputstream-AB12CD", IGNORED),
    ("content/salt/#1-static.md#", IGNORED),
    ("content/.DS_Store", IGNORED),
    ("content/.hidden/1.md", IGNORED),
    ("themes/mine/templates/base.html~", IGNORED),
    ("site.toml~", IGNORED),
    ("output/index.html", IGNORED),
    ("output", IGNORED),
    ("output/content/x.md", IGNORED),
    (".git/index", IGNORED),
    (".serialist-cache/pages.json", IGNORED),
    (".output.serialist-new-123/index.html", IGNORED),
    ("private-build/site/index.html", IGNORED),
    ("README.md", IGNORED),
    ("notes/ideas.md", IGNORED),
    ("", IGNORED),
])
def test_change_classification(layout: SiteLayout, relative: str, kind: ChangeKind) -> None:
    assert classify(layout.root / relative, layout) is kind


def test_paths_outside_the_site_are_ignored(layout: SiteLayout) -> None:
    assert classify(layout.root.parent / "elsewhere" / "content" / "x.md", layout) is IGNORED
    assert classify(layout.root.parent / "site-other" / "site.toml", layout) is IGNORED


@pytest.mark.parametrize(("event", "paths"), [
    (FileCreatedEvent("/s/a.md"), ("/s/a.md",)),
    (FileModifiedEvent("/s/a.md"), ("/s/a.md",)),
    (FileDeletedEvent("/s/a.md"), ("/s/a.md",)),
    (FileMovedEvent("/s/.a.md.tmp", "/s/a.md"), ("/s/.a.md.tmp", "/s/a.md")),
    (DirCreatedEvent("/s/story"), ("/s/story",)),
    (DirDeletedEvent("/s/story"), ("/s/story",)),
    (DirMovedEvent("/s/story", "/s/renamed"), ("/s/story", "/s/renamed")),
    (DirModifiedEvent("/s"), ()),  # a file in it changed: that file's own event counts
    (FileOpenedEvent("/s/a.md"), ()),  # the build reading a chapter
    (FileClosedNoWriteEvent("/s/a.md"), ()),
    (FileClosedEvent("/s/a.md"), ()),  # comes with a modified event
])
def test_event_paths(event: FileSystemEvent, paths: tuple[str, ...]) -> None:
    assert event_paths(event) == tuple(Path(p) for p in paths)


@pytest.mark.parametrize(("event", "path"), [
    (FileClosedEvent("/s/a.md"), "/s/a.md"),  # written and closed: an in-place save is over
    (FileClosedNoWriteEvent("/s/a.md"), None),  # the build reading a chapter
    (FileModifiedEvent("/s/a.md"), None),
    (FileOpenedEvent("/s/a.md"), None),
    (DirModifiedEvent("/s"), None),
])
def test_written_path(event: FileSystemEvent, path: str | None) -> None:
    assert written_path(event) == (Path(path) if path else None)


def test_batch_kind_is_the_one_needing_most_rebuilding(tmp_path: Path) -> None:
    a, b, c = tmp_path / "content/a.md", tmp_path / "themes/t/x.css", tmp_path / "site.toml"
    assert ChangeBatch.of({a: CONTENT}).kind is CONTENT
    assert ChangeBatch.of({a: CONTENT, b: THEME}).kind is THEME
    assert ChangeBatch.of({b: THEME, c: CONFIG, a: CONTENT}).kind is CONFIG
    assert ChangeBatch.of({a: CONTENT, b: THEME}).paths == {a, b}


def test_batch_description(tmp_path: Path) -> None:
    one = ChangeBatch.of({tmp_path / "content/s/3.md": CONTENT})
    assert one.describe(tmp_path) == "content/s/3.md changed"
    many = ChangeBatch.of({tmp_path / f"content/s/{n}.md": CONTENT for n in range(1, 6)})
    assert many.describe(tmp_path) == "content/s/1.md and 4 more changed"


class Recorder:
    """Collects batches from a watcher; waits for them without sleeping blindly."""

    def __init__(self) -> None:
        self.batches: list[ChangeBatch] = []
        self._changed = threading.Condition()

    def __call__(self, batch: ChangeBatch) -> None:
        with self._changed:
            self.batches.append(batch)
            self._changed.notify_all()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ChangeBatch]:
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.batches) >= count, timeout), \
                f"expected {count} batches within {timeout} s, got {self.batches}"
            return list(self.batches)

    def settle(self, seconds: float = NOTHING_SECONDS) -> list[ChangeBatch]:
        """The batches after nothing more has come for `seconds`."""
        with self._changed:
            while self._changed.wait(seconds):
                pass
            return list(self.batches)


def test_debouncer_turns_a_burst_into_one_batch(tmp_path: Path) -> None:
    recorder = Recorder()
    debouncer = Debouncer(recorder, quiet=0.1)
    debouncer.start()
    try:
        for n in range(50):
            debouncer.add(tmp_path / f"{n}.md", CONTENT)
        debouncer.add(tmp_path / "site.toml", CONFIG)
        (batch,) = recorder.wait_for(1)
        assert len(batch.paths) == 51 and batch.kind is CONFIG
        assert recorder.settle() == [batch]
    finally:
        debouncer.stop()


def test_debouncer_keeps_going_after_a_failing_callback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recorder = Recorder()

    def callback(batch: ChangeBatch) -> None:
        recorder(batch)
        if len(recorder.batches) == 1:
            raise RuntimeError("a bug in the build callback")

    debouncer = Debouncer(callback, quiet=0.05)
    debouncer.start()
    try:
        debouncer.add(tmp_path / "a.md", CONTENT)
        recorder.wait_for(1)
        debouncer.add(tmp_path / "b.md", CONTENT)
        assert recorder.wait_for(2)[1].paths == {tmp_path / "b.md"}
    finally:
        debouncer.stop()
    assert "a bug in the build callback" in capsys.readouterr().err


def test_a_finished_in_place_write_does_not_wait_the_full_quiet_moment(tmp_path: Path) -> None:
    recorder = Recorder()
    debouncer = Debouncer(recorder, quiet=5.0, written_quiet=0.01)
    debouncer.start()
    try:
        for n in range(3):  # each burst: modified (maybe twice), then closed after writing
            path = tmp_path / f"{n}.md"
            debouncer.add(path, CONTENT, in_place=True)
            debouncer.add(path, CONTENT, in_place=True)
            debouncer.written(path)
            assert recorder.wait_for(n + 1, timeout=2.5)[n].paths == {path}  # well before 5 s
    finally:
        debouncer.stop()


@pytest.mark.parametrize("burst", ["not closed yet", "created", "moved onto", "closed, then another change"])
def test_other_changes_wait_the_full_quiet_moment(tmp_path: Path, burst: str) -> None:
    recorder = Recorder()
    debouncer = Debouncer(recorder, quiet=5.0, written_quiet=0.01)
    debouncer.start()
    path = tmp_path / "a.md"
    try:
        if burst == "not closed yet":
            debouncer.add(path, CONTENT, in_place=True)
        elif burst == "created":
            debouncer.add(path, CONTENT)  # a created file is written and closed too: a copy of many may go on
            debouncer.add(path, CONTENT, in_place=True)
            debouncer.written(path)
        elif burst == "moved onto":
            debouncer.add(path, CONTENT)
        else:
            debouncer.add(path, CONTENT, in_place=True)
            debouncer.written(path)
            debouncer.add(tmp_path / "b.md", CONTENT)  # deleted, say
        assert recorder.settle() == []
    finally:
        debouncer.stop()


# --- A real observer on a real folder ------------------------------------------------------------

@pytest.fixture
def site(make_site) -> Path:
    return make_site({
        "site.toml": 'title = "Test"\n',
        "content/s/story.md": STORY,
        "content/s/1-one.md": chapter("One"),
        "content/s/2-two.md": chapter("Two"),
        "themes/mine/templates/base.html": "<html></html>\n",
        "output/index.html": "<html></html>\n",
        "README.md": "A site.\n",
    })


@pytest.fixture(params=[False, True], ids=["inotify", "poll"])
def watching(request: pytest.FixtureRequest, site: Path):
    """A started SiteWatcher on `site` (OS events, then polling), and what it reported. A test marked
    `written_quiet(seconds)` has the watcher wait that long after a finished write, rather than 10 ms."""
    recorder = Recorder()
    marker = request.node.get_closest_marker("written_quiet")
    watcher = SiteWatcher(SiteLayout.of(site), recorder, poll=request.param, quiet=0.15,
                          **({"written_quiet": marker.args[0]} if marker else {}))
    watcher.start()
    try:
        yield recorder
    finally:
        watcher.stop()


def atomic_save(path: Path, text: str, temp_name: str | None = None) -> None:
    """Save as many editors do: write a temp file beside the real one, rename it over the real one."""
    temp = path.with_name(temp_name or f".{path.name}.tmp")
    temp.write_text(text, "utf-8")
    os.replace(temp, path)


@pytest.mark.written_quiet(0.15)  # a save finished 10 ms before the next would be a batch of its own: on a
# loaded machine, the five saves of the loop can be that far apart
def test_a_burst_of_atomic_saves_is_one_batch_naming_the_real_file(site: Path, watching: Recorder) -> None:
    target = site / "content/s/1-one.md"
    for n in range(5):
        atomic_save(target, chapter("One", body=f"Version {n}."))
    (batch,) = watching.wait_for(1)
    assert batch.paths == {target} and batch.kind is CONTENT
    assert len(watching.settle()) == 1


def test_vim_style_save_is_one_batch(site: Path, watching: Recorder) -> None:
    target = site / "content/s/2-two.md"
    probe = target.with_name("4913")
    probe.write_text("")
    probe.unlink()
    backup = target.with_name(target.name + "~")
    os.rename(target, backup)
    swap = target.with_name(f".{target.name}.swp")
    swap.write_bytes(b"b0VIM 9.0")
    target.write_text(chapter("Two", body="Saved by vim."), "utf-8")
    backup.unlink()
    swap.unlink()
    (batch,) = watching.wait_for(1)
    assert batch.paths == {target}
    assert len(watching.settle()) == 1


def test_temp_files_alone_never_trigger(site: Path, watching: Recorder) -> None:
    folder = site / "content/s"
    for name in ("4913", ".1-one.md.swp", "1-one.md~", "1-one.md___jb_tmp___", ".goutputstream-XYZ",
                 ".#1-one.md", "#1-one.md#", ".DS_Store"):
        (folder / name).write_text("scratch")
        (folder / name).unlink()
    (site / "themes/mine/templates/.base.html.swp").write_text("scratch")
    assert watching.settle() == []


def test_writes_to_output_git_and_other_files_never_trigger(site: Path, watching: Recorder) -> None:
    (site / "output/index.html").write_text("<html>changed</html>")
    (site / "output/new").mkdir()
    (site / "output/new/index.html").write_text("<html>new</html>")
    (site / ".git").mkdir()
    (site / ".git/index").write_bytes(b"DIRC")
    (site / "README.md").write_text("Changed.\n")
    assert watching.settle() == []


def test_an_idle_site_never_triggers(watching: Recorder) -> None:
    assert watching.settle() == []


def test_each_kind_is_reported(site: Path, watching: Recorder) -> None:
    (site / "site.toml").write_text('title = "Renamed"\n')
    assert watching.wait_for(1)[0].kind is CONFIG
    (site / "themes/mine/templates/base.html").write_text("<html><body></body></html>\n")
    assert watching.wait_for(2)[1].kind is THEME
    shutil.rmtree(site / "content/s")
    assert watching.wait_for(3)[2].kind is CONTENT


def test_copying_in_200_chapters_is_at_most_two_batches(site: Path, tmp_path: Path, watching: Recorder) -> None:
    source = tmp_path / "import"
    source.mkdir()
    (source / "story.md").write_text(STORY)
    for n in range(1, 201):
        (source / f"{n:03}-chapter.md").write_text(chapter(f"Chapter {n}"))
    shutil.copytree(source, site / "content/imported")
    watching.wait_for(1)
    batches = watching.settle()
    assert 1 <= len(batches) <= 2
    assert all(batch.kind is CONTENT for batch in batches)


def test_an_in_place_save_is_reported_once_closed_without_the_full_quiet_moment(site: Path) -> None:
    recorder = Recorder()
    watcher = SiteWatcher(SiteLayout.of(site), recorder, quiet=5.0)  # OS events: "closed after writing"
    watcher.start()
    try:
        target = site / "content/s/1-one.md"
        target.write_text(chapter("One", body="Written in place."), "utf-8")
        (batch,) = recorder.wait_for(1, timeout=2.5)
        assert batch.paths == {target} and batch.kind is CONTENT
    finally:
        watcher.stop()


def test_stop_returns_promptly_with_changes_pending(site: Path) -> None:
    recorder = Recorder()
    watcher = SiteWatcher(SiteLayout.of(site), recorder, quiet=5.0, written_quiet=5.0)
    watcher.start()
    (site / "content/s/1-one.md").write_text(chapter("One", body="Pending."))
    started = time.monotonic()
    watcher.stop()
    assert time.monotonic() - started < 3
    assert recorder.batches == []
