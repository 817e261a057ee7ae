"""The write stage against hostile or unlucky input: a manifest that names paths outside the output, files of
the author's where the build writes, a file added by hand inside a folder the build makes, an output folder
that is read-only, another user's, a symbolic link or a mount point, builds killed during the swap, and scratch
folders (with drafts in them) where `git add -A` would commit them."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import STORY, chapter, run_cli, tmpfs, tree_bytes
from generator import output as output_module
from generator.config import BuildOptions
from generator.errors import OutputError
from generator.incremental import BuildSession
from generator.output import (MANIFEST, OutputFile, previous_manifest, read_manifest, recover, scratch_for,
                              write_output)

BASE = {"site.toml": 'title = "T"\nbase_url = "https://example.org/"\n'}
MARKER = "DRAFT-MARKER-9c41"


def files_of(tree: dict[str, bytes]) -> list[OutputFile]:
    return [OutputFile(path, data) for path, data in tree.items()]


def ours(output: Path) -> dict[str, bytes]:
    return {path: data for path, data in tree_bytes(output).items() if path != MANIFEST}


def small_site(make_site, **extra: str | bytes) -> Path:
    return make_site({**BASE, "content/s/story.md": STORY, "content/s/1.md": chapter(), **extra})


def edit(site: Path, n: int) -> None:
    """A change of the content, so that the next build is not skipped as up to date."""
    (site / "content/s/1.md").write_text(chapter(body=f"Version {n} of the text."))


def rebuilt(site: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    result = run_cli("build", site, *args)
    assert "Traceback" not in result.stderr, result.stderr
    return result


# 1. The manifest cannot name anything outside the output ---------------------------------------------------

@pytest.mark.parametrize("separator", ["\n", "\r", "\x1c", "\x85", "\u2028"])
def test_a_name_with_a_line_break_cannot_make_the_build_delete_outside_the_output(tmp_path, separator):
    """`x` + line break + `..` / `content` was read back as two paths, `../content` one of them, which a later
    build deleted from beside its spare folder: the site's own `content/`."""
    site = tmp_path / "site"
    (site / "content").mkdir(parents=True)
    (site / "content/chapter.md").write_text("the author's only copy")
    output = site / "output"
    odd = f"s/x{separator}../content"
    write_output(files_of({"index.html": b"home", odd: b"an odd file"}), output)
    assert set(previous_manifest(output)) == {"index.html", odd}  # one path, as it was written
    for n in range(3):  # the spare holds the odd path's build, then the builds that no longer make it
        write_output(files_of({"index.html": f"home {n}".encode()}), output)
    assert (site / "content/chapter.md").read_text() == "the author's only copy"
    assert ours(output) == {"index.html": b"home 2"}


def test_a_story_folder_named_with_a_line_break_deletes_nothing_of_the_site(make_site):
    site = small_site(make_site, **{"content/s/x\n../content": b"a file in an odd folder"})
    for n in range(4):
        rebuilt(site)
        edit(site, n)
    assert (site / "content/s/story.md").read_text() == STORY
    assert (site / "content/s/x\n../content").read_bytes() == b"a file in an odd folder"


def hostile_manifest(victims: list[str], tab_format: bool) -> bytes:
    if tab_format:
        return "".join(f"{path}\t{'0' * 32}\n" for path in victims).encode()
    return json.dumps({"serialist-manifest": 2, "unpublished": False,
                       "files": {path: "0" * 32 for path in victims}}).encode()


@pytest.mark.parametrize("tab_format", [True, False], ids=["earlier-format", "json"])
def test_a_manifest_naming_paths_outside_the_output_deletes_none_of_them(tmp_path, tab_format):
    """As a cloned repository's or a hand-edited manifest may: `../../victim/file` and the like."""
    victim = tmp_path / "victim"
    (victim / "folder").mkdir(parents=True)
    (victim / "file").write_text("keep me")
    (victim / "folder/inside").write_text("keep me too")
    output = tmp_path / "a/site/output"
    output.mkdir(parents=True)
    (output / MANIFEST).write_bytes(hostile_manifest(
        ["../../../victim/file", "../../../victim/folder", str(victim / "file"), "ok/../../../../victim/file"],
        tab_format))
    assert previous_manifest(output) is None  # refused whole
    for n in range(3):
        write_output(files_of({"index.html": f"home {n}".encode()}), output)
    assert tree_bytes(victim) == {"file": b"keep me", "folder/inside": b"keep me too"}
    assert ours(output) == {"index.html": b"home 2"}


def test_a_refused_manifest_leaves_the_files_it_names_to_the_author_and_says_why(tmp_path):
    output = tmp_path / "output"
    output.mkdir()
    (output / "index.html").write_bytes(b"whose is it?")
    (output / MANIFEST).write_bytes(hostile_manifest(["index.html", "../victim"], tab_format=False))
    with pytest.raises(OutputError) as caught:
        write_output(files_of({"index.html": b"home"}), output)
    assert "index.html" in str(caught.value) and MANIFEST in str(caught.value) and "--output" in str(caught.value)
    assert (output / "index.html").read_bytes() == b"whose is it?"


def test_a_spare_folder_replaced_by_a_link_does_not_lead_deletions_outside(tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "page.html").write_text("keep me")
    output = tmp_path / "output"
    write_output(files_of({"index.html": b"home", "s/page.html": b"page"}), output)
    write_output(files_of({"index.html": b"home", "s/page.html": b"page"}), output)
    spare = scratch_for(Path(os.path.abspath(output)), None).spare
    shutil.rmtree(spare / "s")
    (spare / "s").symlink_to(victim)  # the spare's manifest still lists s/page.html
    write_output(files_of({"index.html": b"home 2"}), output)
    assert (victim / "page.html").read_text() == "keep me"
    assert ours(output) == {"index.html": b"home 2"}


def test_the_manifest_is_written_in_one_place_for_full_and_incremental_builds(make_site, tmp_path):
    site = small_site(make_site, **{"content/s/2.md": chapter("Two", "2025-01-02")})
    out = tmp_path / "served"
    for drafts in (True, False):
        session = BuildSession(site, BuildOptions(output=out, drafts=drafts, scratch=tmp_path))
        session.build()
        assert read_manifest(out).unpublished is drafts
        (site / "content/s/2.md").write_text(chapter("Two", "2025-01-02", body=f"Reworded {drafts}."))
        session.build([site / "content/s/2.md"])
        session.finish()
        manifest = read_manifest(out)  # still the JSON format, still saying whether it holds drafts
        assert (out / MANIFEST).read_bytes().startswith(b"{") and manifest.unpublished is drafts
        assert manifest.files == {name: output_module.file_hash(data) for name, data in ours(out).items()}


# 2. Files of the author's where the build writes ----------------------------------------------------------

def test_files_of_the_authors_where_the_build_writes_stop_it_and_are_never_deleted(make_site):
    site = small_site(make_site)
    out = site / "output"
    (out / "assets").mkdir(parents=True)
    (out / "assets/photo.jpg").write_bytes(b"the author's photo")
    (out / "index.html").write_bytes(b"the author's page")
    (out / "CNAME").write_bytes(b"example.org\n")
    (out / ".nojekyll").write_bytes(b"")  # the same as the build's own: in nobody's way
    for n in range(2):
        result = rebuilt(site)
        assert result.returncode == 1
        assert "assets/photo.jpg, index.html." in result.stderr
        assert "did not make" in result.stderr and "--output" in result.stderr
        edit(site, n)
    assert tree_bytes(out) == {"assets/photo.jpg": b"the author's photo", "index.html": b"the author's page",
                               "CNAME": b"example.org\n", ".nojekyll": b""}
    shutil.rmtree(out / "assets")
    (out / "index.html").unlink()
    assert rebuilt(site).returncode == 0
    assert (out / "CNAME").read_bytes() == b"example.org\n" and (out / "assets/style.css").is_file()


# 3. A file added inside a folder the build makes -----------------------------------------------------------

def test_a_file_added_inside_a_folder_the_build_makes_stays_with_a_warning(make_site):
    site = small_site(make_site)
    out = site / "output"
    rebuilt(site)
    (out / "assets/favicon.ico").write_bytes(b"icon")
    (out / "s/1/notes.txt").write_bytes(b"notes")
    for n in range(3):
        edit(site, n)
        result = rebuilt(site)
        assert result.returncode == 0, result.stderr
        assert (out / "assets/favicon.ico").read_bytes() == b"icon", f"gone after build {n + 1}"
        assert (out / "s/1/notes.txt").read_bytes() == b"notes"
        assert f"{out / 'assets/favicon.ico'}: warning:" in result.stderr
        assert "s/1/notes.txt: warning:" in result.stderr
        assert f"Version {n} of" in (out / "s/1/index.html").read_text()


# 4. The output folder itself --------------------------------------------------------------------------------

def test_the_output_folder_keeps_its_permissions(tmp_path):
    output = tmp_path / "output"
    output.mkdir(mode=0o700)
    os.chmod(output, 0o700)
    for n in range(3):
        write_output(files_of({"index.html": f"home {n}".encode()}), output)
        assert stat.S_IMODE(output.stat().st_mode) == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_the_output_folder_keeps_its_owner(tmp_path):
    output = tmp_path / "output"
    write_output(files_of({"index.html": b"home"}), output)
    os.chown(output, 65534, 65534)
    for n in range(2):
        write_output(files_of({"index.html": f"home {n}".encode()}), output)
        assert (output.stat().st_uid, output.stat().st_gid) == (65534, 65534)


def in_a_process_of_another_user(call) -> str:
    """`call()` in a forked process, as the user `nobody` when this one is root: "ok" or the error's text.

    (Everything it needs is imported already: as `nobody`, this Python's own files may not be readable.)"""
    import fcntl  # noqa: F401 (imported by the lock, which `nobody` could not import)

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        os.close(read)
        try:
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            call()
            message = "ok"
        except BaseException as exc:  # noqa: BLE001
            message = f"{type(exc).__name__}: {exc}"
        os.write(write, message.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        message = pipe.read().decode()
    os.waitpid(pid, 0)
    return message


def test_an_output_folder_the_user_cannot_write_is_not_replaced():
    """Renaming a folder needs only its parent to be writable: another user's, or a read-only, output folder
    would be replaced by the build of whoever can write to the folder above it."""
    base = Path(tempfile.mkdtemp(prefix="serialist-test-"))
    try:
        os.chmod(base, 0o755)
        parent = base / "site"
        parent.mkdir()
        output = parent / "output"
        write_output(files_of({"index.html": b"home"}), output)
        (parent / ".output.serialist-lock").unlink()  # (the other user makes their own)
        if os.geteuid() == 0:
            os.chown(parent, 65534, 65534)  # the folder above is nobody's; the output is root's
        else:
            os.chmod(output, 0o555)
        before = tree_bytes(output)
        message = in_a_process_of_another_user(lambda: write_output(files_of({"index.html": b"theirs"}), output))
        assert message.startswith("OutputError") and "not writable" in message and "--output" in message
        assert tree_bytes(output) == before
    finally:
        for folder, _, _ in os.walk(base):
            os.chmod(folder, 0o755)
        shutil.rmtree(base)


def test_an_output_that_is_a_link_is_written_where_it_points(tmp_path):
    real = tmp_path / "realout"
    real.mkdir()
    output = tmp_path / "site/output"
    output.parent.mkdir()
    output.symlink_to(real)
    kept: dict[str, bytes] = {}
    for n in range(3):
        write_output(files_of({"index.html": f"home {n}".encode(), "s/1/index.html": b"one"}), output)
        assert output.is_symlink() and output.resolve() == real.resolve()
        assert ours(real) == {"index.html": f"home {n}".encode(), "s/1/index.html": b"one", **kept}
        kept = {"CNAME": b"example.org\n"}
        (real / "CNAME").write_bytes(b"example.org\n")


def test_an_output_linking_to_a_folder_of_the_authors_is_refused(tmp_path, make_site):
    site = small_site(make_site)
    elsewhere = tmp_path / "documents"
    elsewhere.mkdir()
    (elsewhere / "letter.txt").write_text("private")
    (site / "output").symlink_to(elsewhere)
    result = rebuilt(site)
    assert result.returncode == 1 and "symbolic link" in result.stderr and "letter.txt" not in os.listdir(site)
    assert tree_bytes(elsewhere) == {"letter.txt": b"private"}


def refuse_to_rename(monkeypatch, output: Path, exchange: bool) -> None:
    """The output folder as a mount point: it cannot be renamed or swapped (EBUSY)."""
    busy = OSError(errno.EBUSY, os.strerror(errno.EBUSY), str(output))
    if exchange:
        def exchange_busy(a, b):
            raise busy
        monkeypatch.setattr(output_module, "_exchange", exchange_busy)
    else:
        monkeypatch.setattr(output_module, "_exchange", lambda a, b: False)
        rename = os.rename

        def rename_busy(source, destination, *args, **kwargs):
            if Path(source) == output:
                raise busy
            return rename(source, destination, *args, **kwargs)
        monkeypatch.setattr(os, "rename", rename_busy)


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "rename"])
def test_an_output_folder_that_cannot_be_swapped_is_written_file_by_file(tmp_path, monkeypatch, exchange):
    output = tmp_path / "output"
    write_output(files_of({"index.html": b"home", "a/old.html": b"old", "b": b"a file"}), output)
    (output / "CNAME").write_bytes(b"example.org\n")
    (output / "a/favicon.ico").write_bytes(b"icon")
    folder = output.stat().st_ino
    refuse_to_rename(monkeypatch, output, exchange)
    builds = [{"index.html": b"home 2", "a/new.html": b"new", "b/index.html": b"b is a folder"},
              {"index.html": b"home 3", "a/new.html": b"new", "b": b"a file again"},
              {"index.html": b"home 3", "c/index.html": b"c"}]
    for tree in builds:
        write_output(files_of(tree), output)
        assert ours(output) == {**tree, "CNAME": b"example.org\n", "a/favicon.ico": b"icon"}
        assert previous_manifest(output) == {path: output_module.file_hash(data) for path, data in tree.items()}
        assert output.stat().st_ino == folder


@pytest.fixture
def mounted_output(make_site):
    """A site whose `output` folder is a tmpfs mount point (root only)."""
    site = small_site(make_site)
    out = site / "output"
    out.mkdir()
    with tmpfs(out, "8m"):
        yield site


def test_a_mount_point_as_output_is_written_into(mounted_output):
    site = mounted_output
    out = site / "output"
    (out / "CNAME").write_bytes(b"example.org\n")
    for n in range(3):
        edit(site, n)
        result = rebuilt(site)
        assert result.returncode == 0, result.stderr
        assert os.path.ismount(out)
        assert f"Version {n} of" in (out / "s/1/index.html").read_text()
        assert (out / "CNAME").read_bytes() == b"example.org\n"
    built = ours(out)
    assert previous_manifest(out).keys() == built.keys() - {"CNAME"}


# 5. Killed during the swap ---------------------------------------------------------------------------------------

def swap_scene(tmp_path: Path) -> tuple[Path, Path, dict[str, bytes]]:
    """An output with files Serialist did not make, and the new output made in its spare, ready to swap."""
    output = tmp_path / "output"
    write_output(files_of({"index.html": b"old home", "assets/style.css": b"old"}), output)
    foreign = {"CNAME": b"example.org\n", ".git/HEAD": b"ref: refs/heads/main\n", "assets/favicon.ico": b"icon"}
    for path, data in foreign.items():
        (output / path).parent.mkdir(parents=True, exist_ok=True)
        (output / path).write_bytes(data)
    scratch = scratch_for(Path(os.path.abspath(output)), None)
    staging = scratch.spare
    staging.mkdir()
    (staging / "assets").mkdir()
    (staging / "index.html").write_bytes(b"new home")
    (staging / "assets/style.css").write_bytes(b"new")
    output_module.write_manifest(staging, {"index.html": "0" * 32, "assets/style.css": "1" * 32}, False)
    return output, staging, foreign


class Killed(BaseException):
    """The build, killed."""


def test_files_serialist_did_not_make_are_in_the_new_output_the_moment_it_is_swapped_in(tmp_path, monkeypatch):
    output, staging, foreign = swap_scene(tmp_path)
    monkeypatch.setattr(output_module, "_exchange", lambda a, b: False)  # no renameat2: two renames
    seen: list[dict[str, bytes]] = []
    rename = os.rename

    def watching(source, destination, *args, **kwargs):
        if Path(source) == staging and Path(destination) == output:
            seen.append(tree_bytes(staging))
        return rename(source, destination, *args, **kwargs)

    monkeypatch.setattr(os, "rename", watching)
    output_module._swap_in(staging, output, sorted(["CNAME", ".git", "assets/favicon.ico"]),
                           scratch_for(Path(os.path.abspath(output)), None))
    assert len(seen) == 1 and all(seen[0].get(path) == data for path, data in foreign.items())
    assert ours(output) == {"index.html": b"new home", "assets/style.css": b"new", **foreign}


def test_a_build_killed_between_the_two_renames_is_undone_by_the_next(tmp_path, monkeypatch):
    output, staging, foreign = swap_scene(tmp_path)
    before = tree_bytes(output)
    monkeypatch.setattr(output_module, "_exchange", lambda a, b: False)
    rename = os.rename

    def killed_before_the_second(source, destination, *args, **kwargs):
        if Path(source) == staging and Path(destination) == output:
            raise Killed()
        return rename(source, destination, *args, **kwargs)

    monkeypatch.setattr(os, "rename", killed_before_the_second)
    with pytest.raises(Killed):
        output_module._swap_in(staging, output, sorted(["CNAME", ".git", "assets/favicon.ico"]),
                               scratch_for(Path(os.path.abspath(output)), None))
    assert not output.exists()
    monkeypatch.setattr(os, "rename", rename)
    recover(output)
    assert tree_bytes(output) == before
    write_output(files_of({"index.html": b"home"}), output)  # and the next build is whole
    assert ours(output) == {"index.html": b"home", **foreign}


# 6. Scratch folders where `.gitignore` keeps them out of commits -----------------------------------------------

def outside_the_cache(site: Path) -> dict[str, bytes]:
    return {path: data for path, data in tree_bytes(site).items() if not path.startswith(".serialist-cache/")}


def test_no_scratch_folder_and_no_draft_beside_an_output_of_any_name(make_site):
    site = small_site(make_site, **{"content/s/2.md": f"---\ntitle: {MARKER}\ndraft: true\n---\n{MARKER} words\n"})
    for n, args in enumerate([("--drafts",), (), ("--drafts",), ()]):
        edit(site, n)
        for out in ("docs", "a/out", "b/out"):
            result = rebuilt(site, "-o", site / out, *args)
            assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(site)) == [".serialist-cache", "a", "b", "content", "docs", "site.toml"]
    assert os.listdir(site / "a") == ["out"] and os.listdir(site / "b") == ["out"]
    leaks = [path for path, data in outside_the_cache(site).items() if MARKER.encode() in data
             and not path.startswith("content/")]
    assert leaks == []
    assert len(os.listdir(site / ".serialist-cache/output")) == 3  # one for each output folder


@pytest.mark.parametrize("out", [".serialist-cache", ".serialist-cache/out", "."])
def test_an_output_folder_in_or_around_the_cache_is_refused(make_site, out):
    """The cache holds every output's scratch folders: an output there would be swapped with its own spare."""
    site = small_site(make_site)
    assert rebuilt(site, "-o", site / "output").returncode == 0
    before = tree_bytes(site)
    result = rebuilt(site, "-o", site / out)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "cache" in result.stderr or "site folder" in result.stderr
    assert tree_bytes(site) == before


def test_scratch_folders_of_earlier_versions_beside_the_output_are_removed(make_site):
    site = small_site(make_site)
    rebuilt(site)
    legacy = site / ".output.serialist-spare"
    shutil.copytree(site / "output", legacy)
    (legacy / "s/1/index.html").write_text(MARKER)
    (site / ".output.serialist-lock").write_bytes(b"")
    edit(site, 1)
    assert rebuilt(site).returncode == 0
    assert sorted(os.listdir(site)) == [".serialist-cache", "content", "output", "site.toml"]


def test_beside_an_output_on_another_disk_no_spare_keeps_a_build_with_drafts(tmp_path, monkeypatch):
    monkeypatch.setattr(output_module, "_same_device", lambda a, b: False)  # the cache cannot take the spare
    output = tmp_path / "output"
    cache = tmp_path / "site/.serialist-cache"
    published = {"index.html": b"home"}
    drafts = {"index.html": b"home", "s/draft.html": MARKER.encode()}
    spare = scratch_for(output, None).spare
    for tree, unpublished in [(published, False), (drafts, True), (published, False), (published, False)]:
        write_output(files_of(tree), output, scratch=cache, unpublished=unpublished)
        assert ours(output) == tree
        leaks = [path for path, data in tree_bytes(tmp_path).items() if MARKER.encode() in data
                 and not path.startswith("output/")]
        assert leaks == []
    assert spare.is_dir()  # kept after two builds without drafts in a row
    assert not list((cache / "output").glob("*/spare"))
