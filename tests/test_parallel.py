"""Pages made in forked worker processes: the same bytes, in the same order, and errors as they are."""

from __future__ import annotations

import os

import pytest

from generator.output import LazyFile, OutputFile
from generator.parallel import PARALLEL_PAGES, made


def page(index: int) -> LazyFile:
    return LazyFile(f"p/{index}.html", lambda: f"page {index} by {os.getpid()}".encode())


def test_pages_are_made_in_other_processes_in_order():
    files = [OutputFile("feed.xml", b"feed"), *(page(i) for i in range(PARALLEL_PAGES + 100)),
             OutputFile("book.epub", b"epub")]
    out = list(made(files, workers=2))
    assert [f.path for f in out] == [f.path for f in files]
    assert out[0].data == b"feed" and out[-1].data == b"epub"
    texts = [f.data.decode() for f in out[1:-1]]
    assert [t.split(" by ")[0] for t in texts] == [f"page {i}" for i in range(PARALLEL_PAGES + 100)]
    makers = {int(t.split(" by ")[1]) for t in texts}
    assert os.getpid() not in makers and len(makers) >= 1


def test_few_pages_are_made_here():
    out = list(made([page(i) for i in range(5)], workers=2))
    assert {f.data.decode().split(" by ")[1] for f in out} == {str(os.getpid())}


def test_an_error_in_a_worker_is_raised_as_it_is():
    def broken() -> bytes:
        raise ValueError("the template broke on page 450")

    files = [*(page(i) for i in range(450)), LazyFile("p/broken.html", broken), *(page(i) for i in range(450, 500))]
    with pytest.raises(ValueError, match="broke on page 450"):
        for _ in made(files, workers=2):
            pass
