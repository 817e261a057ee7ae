"""Worker processes: for rendering Markdown (`markdown.py`) and for making pages as they are written.

Pages are made in processes forked from the build, which share its rendered site and theme
without copying or pickling them; each sends back only the bytes of its pages.
"""

from __future__ import annotations

import gc
import multiprocessing
import multiprocessing.context
import threading
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Iterator, Sequence

from generator.output import AnyFile, LazyFile, OutputFile
from generator.progress import ProgressCallback, no_progress

PARALLEL_PAGES = 200  # pages to make before other processes pay off (forking costs about 20 ms)
CHUNK = 32  # pages a worker makes at a time (by `LazyFile.weight`)


def pool_context() -> multiprocessing.context.BaseContext:
    """`fork` where it is safe (cheap, and this process has no other threads), else `forkserver` or `spawn`."""
    methods = multiprocessing.get_all_start_methods()
    if can_fork():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1


# In a worker process only: the files of the build that forked it (set by `_adopt`, read by `_make`).
_inherited: Sequence[AnyFile] = ()


def _adopt(files: Sequence[AnyFile]) -> None:
    global _inherited
    _inherited = files


def _make(indices: list[int]) -> list[bytes]:
    return [_inherited[index].data for index in indices]


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


def made(files: Sequence[AnyFile], workers: int, progress: ProgressCallback = no_progress) -> Iterator[AnyFile]:
    """`files` in order, the bytes of each `LazyFile` made in `workers` forked processes when there are enough
    of them and forking is safe (else here, as each is asked for).

    A chunk that fails in a worker is made again here, so that its error is raised as it is.
    """
    lazy = [index for index, file in enumerate(files) if isinstance(file, LazyFile)]
    if workers < 2 or len(lazy) < PARALLEL_PAGES or not can_fork():
        for done, file in enumerate(files, start=1):
            yield file
            progress("Rendering pages", done, len(files))
        return
    waiting = deque(_chunks(files, lazy))
    gc.freeze()  # the workers' garbage collector leaves what they share with this process alone: no copies of it
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"),
                               initializer=_adopt, initargs=(files,))
    try:
        # A few chunks ahead of the writer: enough to keep the workers busy, not so many that made pages pile up.
        futures: deque[tuple[list[int], Future[list[bytes]]]] = deque()
        while waiting and len(futures) < workers * 3:
            futures.append((waiting[0], pool.submit(_make, waiting.popleft())))
        ready: dict[int, bytes] = {}
        for done, (index, file) in enumerate(enumerate(files), start=1):
            if isinstance(file, LazyFile):
                if not ready:
                    chunk, future = futures.popleft()
                    if waiting:
                        futures.append((waiting[0], pool.submit(_make, waiting.popleft())))
                    try:
                        datas = future.result()
                    except Exception:  # noqa: BLE001 (made again below, raising what it raises)
                        datas = [files[i].data for i in chunk]
                    ready = dict(zip(chunk, datas))
                file = OutputFile(file.path, ready.pop(index))
            yield file
            progress("Rendering pages", done, len(files))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        gc.unfreeze()
