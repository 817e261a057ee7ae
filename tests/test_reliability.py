"""Nothing lost, nothing leaked: killed and concurrent builds, full and read-only disks,
unpublished chapters, awkward file names, large inputs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import pytest

from conftest import STORY, chapter, run_cli, tmpfs, tree_bytes

BASE = {"site.toml": 'title = "T"\nbase_url = "https://example.org/"\n'}


def big_site(make_site, chapters: int = 300, words: int = 400) -> Path:
    text = " ".join(["word"] * words)
    files = {**BASE, "content/s/story.md": STORY}
    for n in range(1, chapters + 1):
        files[f"content/s/{n:04d}.md"] = chapter(f"C{n}", body=f"{text}\n\n* * *\n\n{text}")
    return make_site(files)


def building(site: Path) -> list[int]:
    """The processes whose command line names `site` (Linux /proc)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if str(site).encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def wait_for(predicate, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.002)


def test_sigkill_mid_write_keeps_previous_output(make_site):
    site = big_site(make_site)
    run_cli("build", site, check=True)
    (site / "content/s/0002.md").write_text(chapter("Second build", body="Other text."))
    run_cli("build", site, check=True)  # now there is a spare copy for the next build to update
    (site / "output/.git").mkdir()
    (site / "output/.git/HEAD").write_text("ref\n")
    before = tree_bytes(site / "output")
    spare_manifest = next((site / ".serialist-cache/output").glob("output-*")) / "spare/.serialist-manifest"
    assert spare_manifest.is_file()
    for n in range(1, 301):
        (site / f"content/s/{n:04d}.md").write_text(chapter(f"Changed {n}", body="New text."))
    proc = subprocess.Popen([sys.executable, "-m", "generator", "build", str(site), "--no-cache"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: not spare_manifest.exists() or proc.poll() is not None,
                 what="the build to start writing")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the build finished before it could be killed"
    # Its worker processes end with it (they would otherwise wait for work forever).
    wait_for(lambda: not building(site), what="the killed build's worker processes to end")
    assert tree_bytes(site / "output") == before, "a killed build changed the output"
    # The next build cleans up and succeeds.
    run_cli("build", site, check=True)
    final = tree_bytes(site / "output")
    assert b"New text." in final["s/0001/index.html"] and final[".git/HEAD"] == b"ref\n"
    assert not [p for p in site.iterdir() if ".serialist-new-" in p.name or ".serialist-old-" in p.name]


def test_two_builds_at_once_do_not_corrupt_each_other(make_site):
    site = big_site(make_site, chapters=100)
    procs = [subprocess.Popen([sys.executable, "-m", "generator", "build", str(site)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate()
        assert proc.returncode == 0, err
    first = tree_bytes(site / "output")
    run_cli("build", site, check=True)
    assert tree_bytes(site / "output") == first


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs at tmp_path/disk (root only)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    with tmpfs(disk, "1m"):
        yield disk


def test_full_disk_gives_clear_error_and_keeps_output(make_site, small_disk):
    site = make_site({**BASE, "content/s/story.md": STORY, "content/s/1.md": chapter()})
    out = small_disk / "output"
    run_cli("build", site, "--output", out, check=True)
    before = tree_bytes(out)
    huge = "\n\n".join(f"Paragraph {i} " + "lorem ipsum " * 50 for i in range(1000))
    (site / "content/s/2.md").write_text(chapter("Huge", body=huge))
    result = run_cli("build", site, "--output", out)
    assert result.returncode == 1
    assert "cannot write the output" in result.stderr and "No space left" in result.stderr
    assert "Traceback" not in result.stderr
    assert tree_bytes(out) == before


def test_read_only_disk_gives_clear_error_and_keeps_output(make_site, small_disk):
    site = make_site({**BASE, "content/s/story.md": STORY, "content/s/1.md": chapter()})
    out = small_disk / "output"
    run_cli("build", site, "--output", out, check=True)
    before = tree_bytes(out)
    assert subprocess.run(["mount", "-o", "remount,ro", str(small_disk)]).returncode == 0
    (site / "content/s/1.md").write_text(chapter(body="Changed."))
    result = run_cli("build", site, "--output", out)
    assert result.returncode == 1
    assert "cannot write the output" in result.stderr and "Read-only" in result.stderr
    assert tree_bytes(out) == before


MARKER = "UNPUBLISHED-MARKER-7f3a"


def test_scheduled_and_draft_chapters_leak_nowhere(make_site):
    site = make_site({
        **BASE,
        "content/s/story.md": STORY,
        "content/s/1.md": chapter("One", body="one two three"),
        "content/s/2.md": f"---\ntitle: {MARKER} title\ndraft: true\nsummary: {MARKER}\ntags: [{MARKER}]\n---\n"
                          f"{MARKER} draft words here\n",
        "content/s/3.md": f"---\ntitle: {MARKER} sched\ndate: 2999-01-01\nnotes_after: {MARKER}\n---\n"
                          f"{MARKER} scheduled words\n",
        "content/hidden/story.md": f"---\ntitle: {MARKER} story\n---\n{MARKER}\n",
        "content/hidden/1.md": f"---\ntitle: x\ndate: 2999-01-01\n---\n{MARKER}\n",
        "content/oneshot.md": f"---\ntitle: {MARKER} oneshot\ndraft: true\n---\n{MARKER}\n",
    })
    run_cli("build", site, check=True)
    out = tree_bytes(site / "output")
    leaks = [name for name, data in out.items() if MARKER.encode() in data or MARKER in name]
    assert leaks == []
    story = out["s/index.html"].decode()
    assert "1/?" in story and "<dd>3</dd>" in story  # one chapter, three words
    assert "scheduled for 2999-01-01" in out["s/1/index.html"].decode()
    run_cli("build", site, "--drafts", "--future", check=True)
    assert MARKER.encode() in tree_bytes(site / "output")["s/2/index.html"]


def test_nfd_and_nfc_names_give_one_nfc_slug(make_site):
    nfd = unicodedata.normalize("NFD", "café")
    site = make_site({**BASE, f"content/{nfd}/story.md": STORY, f"content/{nfd}/1-{nfd}.md": chapter()})
    run_cli("build", site, check=True)
    names = set(tree_bytes(site / "output"))
    assert "café/1-café/index.html" in names  # NFC
    site2 = make_site({**BASE, "content/s/story.md": STORY, f"content/s/1-{nfd}.md": chapter(),
                       "content/s/2-café.md": chapter("Two", extra="slug: 1-café\n")}, "second")
    result = run_cli("build", site2)
    assert result.returncode == 1 and "also used by" in result.stderr


def test_case_only_collision_names_both_files(make_site):
    site = make_site({**BASE, "content/s/story.md": STORY, "content/s/Chapter.md": chapter(),
                      "content/s/chapter.md": chapter("Two", "2025-01-02", extra="number: 2\n")})
    result = run_cli("build", site)
    assert result.returncode == 1
    assert "Chapter.md" in result.stderr and "chapter.md" in result.stderr
    assert "URL name `chapter` is also used by" in result.stderr


def test_symlink_loops_are_reported_not_followed(make_site):
    site = make_site({**BASE, "content/s/story.md": STORY, "content/s/1.md": chapter()})
    (site / "content/loop").symlink_to(site / "content")
    (site / "content/s/self.md").symlink_to(site / "content/s/self.md")
    result = run_cli("build", site)
    assert result.returncode == 1
    assert "content/loop: error:" in result.stderr and "loop" in result.stderr
    assert "self.md: error:" in result.stderr


@pytest.mark.slow
def test_large_inputs_build(make_site):
    paragraph = "She said \"no\" -- and then... she *left*.[^1] " * 40
    five_mb = "\n\n".join([paragraph] * (5_000_000 // len(paragraph) + 1)) + "\n\n[^1]: A note.\n"
    files = {**BASE, "content/big/story.md": STORY, "content/big/1.md": chapter(body=five_mb),
             "content/tagged/story.md": "---\ntitle: Tags\ntags:\n" + "".join(f"  - tag {i}\n" for i in range(10_000))
             + "---\n", "content/tagged/1.md": chapter(), "content/long/story.md": STORY}
    for n in range(1, 2001):
        files[f"content/long/{n}.md"] = chapter(f"C{n}", body=f"Chapter {n} text.")
    site = make_site(files)
    result = run_cli("build", site)
    assert result.returncode == 0, result.stderr
    assert (site / "output/long/2000/index.html").is_file()
    assert "2,000/?" in (site / "output/long/index.html").read_text() or "2000/?" in (site / "output/long/index.html").read_text()
    assert "tag 9999" in (site / "output/tagged/index.html").read_text()
