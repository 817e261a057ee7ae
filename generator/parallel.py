"""Worker processes: for rendering Markdown (`markdown.py`), converting an EPUB's chapters (`epub.py`)
and making pages as they are written (`made`); and a process doing work ahead of the build (`ahead`:
compiling the theme while the build loads the site).

The pages and chapters are made in processes forked from the build (`in_workers`), which share its
rendered site and theme without copying or pickling them; each sends back only bytes, or, putting the
pages in place itself, only what the build has to know of them.
"""

from __future__ import annotations

import gc
import multiprocessing
import multiprocessing.context
import os
import signal
import threading
from collections import deque
from functools import partial
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

from generator.output import AnyFile, LazyFile, Placed, Placing
from generator.progress import ProgressCallback, no_progress

T = TypeVar("T")

PARALLEL_PAGES = 200  # pages to make before other processes pay off (forking costs about 20 ms)
CHUNK = 32  # pages a worker makes at a time (by `LazyFile.weight`)


def pool_context() -> multiprocessing.context.BaseContext:
    """`fork` where it is safe (cheap, and this process has no other threads), else `forkserver` or `spawn`."""
    methods = multiprocessing.get_all_start_methods()
    if can_fork():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def can_fork() -> bool:
    """Whether forking is available and safe: a process with other threads (the dev server) must not fork."""
    return "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1


# In a worker process only: what to do with each index (set by `_adopt` in the process that forked it).
_task: Callable[[int], object] | None = None


PIPE_BYTES = 1 << 20  # what the pipes between the build and its workers hold (Linux's most, unprivileged)


def widen_pipes(pool: ProcessPoolExecutor) -> None:
    """Let the pool's pipes hold a whole batch: a worker's results for a batch are a megabyte of HTML or
    more, which through a pipe of 64 KiB (the default) goes in some twenty turns of this process and the
    worker, each of them waiting for the other (Linux's F_SETPIPE_SZ; elsewhere, or in another version of
    the pool's insides, nothing changes)."""
    try:
        import fcntl

        for connection in (pool._result_queue._reader, pool._call_queue._reader):  # type: ignore[attr-defined]
            fcntl.fcntl(connection.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (ImportError, AttributeError, OSError):
        pass


def ahead(task: Callable[[], object]) -> multiprocessing.process.BaseProcess | None:
    """`task` started in a process forked from this one, for what it leaves behind (files): work for a processor
    that would otherwise wait while this one does something else. `join()` it to wait for it. None where forking
    is not safe: the caller does without (the task's results must be something the caller can make itself)."""
    if not can_fork():
        return None
    process = multiprocessing.get_context("fork").Process(target=_ahead, args=(task, os.getpid()), daemon=False)
    try:
        process.start()
    except OSError:  # no more processes to be had: the caller does the work itself
        return None
    return process


def _ahead(task: Callable[[], object], parent: int) -> None:
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the caller, which says so; this ends with it
    task()


def die_with_parent(parent: int | None) -> None:
    """(In a worker process.) End when the process that started it ends, even when it is killed, rather
    than wait on for work that will never come (Linux; elsewhere the pool's own shutdown has to do).
    `parent`: the build's process id, when it forked this one itself."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if parent is not None and os.getppid() != parent:  # the build died before the call
        os._exit(1)


def _adopt(task: Callable[[int], object], parent: int) -> None:
    global _task
    die_with_parent(parent)
    _task = task


def _run(indices: list[int]) -> list[object]:
    assert _task is not None
    return [_task(index) for index in indices]


def in_workers(task: Callable[[int], T], chunks: Iterable[list[int]],
               workers: int, ordered: bool = True) -> Iterator[tuple[list[int], list[T]]]:
    """(chunk, `task` of each index in it) for every chunk, done in `workers` processes forked from this
    one, which share its memory (nothing is pickled but the indices and what `task` gives); in order, or with
    `ordered=False` as they are done (a long chunk does not hold up the others).

    Only a few chunks are ahead of the caller, so results do not pile up. A chunk that fails in a worker
    is done here again, so that its error is raised as it is. Call only when `can_fork()`.
    """
    waiting = deque(chunks)
    gc.freeze()  # the workers' garbage collector leaves what they share with this process alone: no copies of it
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"),
                               initializer=_adopt, initargs=(task, os.getpid()))
    widen_pipes(pool)
    try:
        futures: deque[tuple[list[int], Future[list[T]]]] = deque()

        def submit() -> None:
            chunk = waiting.popleft()
            futures.append((chunk, pool.submit(_run, chunk)))

        while waiting and len(futures) < workers * 3:
            submit()
        while futures:
            if ordered:
                chunk, future = futures.popleft()
            else:
                wait([future for _, future in futures], return_when=FIRST_COMPLETED)
                position = next(i for i, (_, future) in enumerate(futures) if future.done())
                chunk, future = futures[position]
                del futures[position]
            if waiting:
                submit()
            try:
                results = future.result()
            except Exception:  # noqa: BLE001 (done again below, raising what it raises)
                results = [task(index) for index in chunk]
            yield chunk, results
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        gc.unfreeze()


def _chunks(files: Sequence[AnyFile], lazy: list[int]) -> Iterator[list[int]]:
    """`lazy` in runs of about `CHUNK` pages' weight: a page of a long work makes a run of its own."""
    chunk: list[int] = []
    weight = 0
    for index in lazy:
        file = files[index]
        assert isinstance(file, LazyFile)
        if chunk and weight + file.weight > CHUNK:
            yield chunk
            chunk, weight = [], 0
        chunk.append(index)
        weight += file.weight
    if chunk:
        yield chunk


def _make(files: Sequence[AnyFile], index: int) -> bytes:
    """(In a worker process.) The file's bytes; after a big one (a book, a page of a long work's text), the
    memory it took is given back to the system, which glibc's malloc would otherwise keep."""
    file = files[index]
    data = file.data
    if isinstance(file, LazyFile) and (file.early or file.weight >= CHUNK):
        give_back_memory()
    return data


def give_back_memory() -> None:
    """Return the memory glibc's malloc keeps after it is freed to the system (elsewhere, nothing)."""
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _make_and_place(files: Sequence[AnyFile], place: Placing, index: int) -> tuple[str, bool]:
    """(In a worker process.) The file made and put in place: what `place` says of it."""
    return place(files[index].path, _make(files, index))


def made(files: Sequence[AnyFile], workers: int, place: Placing,
         progress: ProgressCallback = no_progress) -> Iterator[AnyFile | Placed]:
    """Each of `files`, its `LazyFile`s made, when there are enough of them and forking is safe, in `workers`
    forked processes that put each in place themselves (`place`, `output.write_output`'s): only its `Placed`
    record comes back, in no particular order, and its bytes never go through a pipe. The `early` ones are
    started first, so that a worker makes them while the others make the pages. Otherwise `files` in order,
    each made here as it is asked for."""
    lazy = [index for index, file in enumerate(files) if isinstance(file, LazyFile)]
    if workers < 2 or len(lazy) < PARALLEL_PAGES or not can_fork():
        for done, file in enumerate(files, start=1):
            yield file
            progress("Rendering pages", done, len(files))
        return
    early = {index for index in lazy if files[index].early}  # type: ignore[union-attr]
    chunks = [*([index] for index in sorted(early)), *_chunks(files, [index for index in lazy if index not in early])]
    yield from _placed(files, chunks, workers, place, progress)


def _placed(files: Sequence[AnyFile], chunks: list[list[int]], workers: int, place: Placing,
            progress: ProgressCallback) -> Iterator[AnyFile | Placed]:
    """`made` in workers: the `Placed` record of each page as the workers are done with it, and the files
    already made, for the caller to put in place, once the workers are forked (the caller puts them in place
    on threads of its own, and a process with other threads must not fork)."""
    here = deque(file for file in files if not isinstance(file, LazyFile))
    done = 0
    batches = in_workers(partial(_make_and_place, files, place), chunks, workers, ordered=False)
    try:
        for chunk, results in batches:  # (the workers are forked before the first chunk comes back)
            for index, (digest, written) in zip(chunk, results):
                done += 1
                yield Placed(files[index].path, digest, written)
                progress("Rendering pages", done, len(files))
            while here:
                done += 1
                yield here.popleft()
                progress("Rendering pages", done, len(files))
    finally:
        batches.close()
    for file in here:  # (no chunk came back)
        done += 1
        yield file
        progress("Rendering pages", done, len(files))
