"""The write stage on its own: streaming writes into the spare copy, and paths that change kind."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import tree_bytes
from generator.output import MANIFEST, MAX_PENDING, LazyFile, OutputFile, previous_manifest, write_output


def files_of(tree: dict[str, bytes]) -> list[OutputFile]:
    return [OutputFile(path, data) for path, data in tree.items()]


def ours(output: Path) -> dict[str, bytes]:
    return {path: data for path, data in tree_bytes(output).items() if path != MANIFEST}


# Builds in a row. The spare copy a build writes into holds the build before last, so a path changes
# between file and folder from each build to the one after next.
BUILDS = [
    {"index.html": b"home", "a": b"a file", "b/index.html": b"b page", "c/d/e.html": b"deep"},
    {"index.html": b"home"},
    {"index.html": b"home", "a/index.html": b"a is a folder now", "b": b"b is a file now", "c/d": b"d is a file"},
    {"index.html": b"home 2", "c/d/e.html": b"deep"},
    {"index.html": b"home 2", "a": b"a file again", "b/x/index.html": b"a folder again", "c/d/e.html": b"deep"},
    {"index.html": b"home 2", "c/d": b"d is a file"},
]


def test_paths_that_change_between_file_and_folder(tmp_path):
    output = tmp_path / "output"
    output.mkdir()
    (output / "CNAME").write_bytes(b"example.org\n")
    (output / ".git").mkdir()
    (output / ".git" / "HEAD").write_bytes(b"ref: refs/heads/main\n")
    for tree in BUILDS:  # the spare copy of the build before last is reused from the third build on
        write_output(files_of(tree), output)
        assert ours(output) == {**tree, "CNAME": b"example.org\n", ".git/HEAD": b"ref: refs/heads/main\n"}
        assert sorted(previous_manifest(output)) == sorted(tree)


def test_files_are_written_as_they_are_made(tmp_path):
    """A page's bytes are made only when it is about to be written: no more than `MAX_PENDING` pages made
    before it are still waiting for the writing threads, so a build never holds every page at once."""
    output = tmp_path / "output"
    made: list[str] = []
    count = 4 * MAX_PENDING

    def page(index: int) -> LazyFile:
        def make() -> bytes:
            earlier = index - MAX_PENDING - 2
            if earlier >= 0:
                assert list(tmp_path.rglob(f"{earlier}.html")), f"{earlier}.html is not written yet"
            made.append(f"{index}.html")
            return f"page {index}".encode()
        return LazyFile(f"{index}.html", make)

    write_output([page(index) for index in range(count)], output)
    assert made == [f"{index}.html" for index in range(count)]
    assert ours(output) == {f"{index}.html": f"page {index}".encode() for index in range(count)}


def test_a_page_failing_mid_write_leaves_the_output_as_it_was(tmp_path):
    output = tmp_path / "output"
    write_output(files_of(BUILDS[0]), output)
    write_output(files_of(BUILDS[1]), output)  # there is a spare copy now
    before = tree_bytes(output)

    def broken() -> bytes:
        raise RuntimeError("a template error")

    with pytest.raises(RuntimeError):
        write_output([*files_of(BUILDS[2]), LazyFile("late.html", broken)], output)
    assert tree_bytes(output) == before
    write_output(files_of(BUILDS[2]), output)  # and the next build is whole
    assert ours(output) == BUILDS[2]


def test_a_changed_file_is_never_written_through_to_the_output(tmp_path):
    """From the second build on, an unchanged file in the spare copy is the output's own file (a hard link):
    a new version goes in as a new file, so a build that fails afterwards leaves the output as it was."""
    output = tmp_path / "output"
    tree = {"index.html": b"home", "a.html": b"version 1"}
    write_output(files_of(tree), output)
    write_output(files_of(tree), output)  # the spare copy is the output before, its files linked into the output
    before = tree_bytes(output)

    def broken() -> bytes:
        raise RuntimeError("a template error")

    with pytest.raises(RuntimeError):
        write_output([OutputFile("a.html", b"version 2"), OutputFile("new.html", b"new"),
                      LazyFile("late.html", broken)], output)
    assert tree_bytes(output) == before
    write_output([OutputFile("a.html", b"version 2"), OutputFile("new.html", b"new")], output)
    assert ours(output) == {"a.html": b"version 2", "new.html": b"new"}


def test_a_changed_file_that_is_the_spares_own_is_written_over_in_place(tmp_path):
    """A file of the spare copy that is not linked into the output is written over where it is (no new file
    to make, none to free), and cut to its new length."""
    output = tmp_path / "output"
    write_output(files_of({"a.html": b"the first version, the longest of them"}), output)
    first = (output / "a.html").stat().st_ino
    write_output(files_of({"a.html": b"second"}), output)  # a new file: the first one is the spare's own now
    assert (output / "a.html").stat().st_ino != first
    write_output(files_of({"a.html": b"third"}), output)
    assert (output / "a.html").stat().st_ino == first
    assert ours(output) == {"a.html": b"third"}
    write_output(files_of({"a.html": b"the fourth version, longer than the second"}), output)
    assert ours(output) == {"a.html": b"the fourth version, longer than the second"}
