"""`serialist deploy` publishes what is committed: uncommitted sources stop it, unless `--allow-dirty`.

Real git throughout, in repositories under tmp_path (the fixtures of tests/test_deploy.py).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from conftest import run_cli
from generator import __version__
from generator.deploy import DeployOptions, deploy
from generator.init import init_site
from test_deploy import branch_files, commit_all, git, git_identity, remote, site, state  # noqa: F401

STORY = Path("content", "the-night-bakery")
NEW_CHAPTER = "---\ntitle: The Oven Door\ndate: 2025-02-01\n---\nThe oven door would not close.\n"


def refused(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr, (word, result.stderr)


def listed(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The lines of the error that name a file (indented, with what happened to it in brackets)."""
    return [line.strip() for line in result.stderr.splitlines() if line.startswith("  ") and line.endswith(")")]


def nothing_published(repo: Path) -> None:
    assert git(repo, "branch", "--list", "gh-pages") == ""
    assert not (repo / "output").exists()  # refused before building


def edit(path: Path) -> None:
    path.write_text(path.read_text("utf-8").replace("Ines", "Inès"), "utf-8")


# What stops the deploy -------------------------------------------------------------------------------------

def test_an_untracked_chapter_stops_the_deploy(site: Path, remote: Path) -> None:
    (site / STORY / "03-the-oven-door.md").write_text(NEW_CHAPTER)
    before = state(site)
    index = (site / ".git" / "index").read_bytes()
    result = run_cli("deploy", cwd=site)
    refused(result, "deploy publishes the site as it is in your last git commit",
            'git add -- content && git commit -m "Update the site"', "`--allow-dirty`")
    assert listed(result) == [f"{STORY / '03-the-oven-door.md'} (new, not in git yet)"]
    nothing_published(site)
    assert git(remote, "for-each-ref") == ""
    assert state(site) == before and (site / ".git" / "index").read_bytes() == index


@pytest.mark.parametrize(("change", "words"), [
    ("modified", "changed, not committed"),
    ("staged", "changed, added but not committed"),
    ("deleted", "deleted, not committed"),
    ("removed", "deleted, not committed"),  # `git rm`: staged
])
def test_a_changed_chapter_stops_the_deploy(site: Path, change: str, words: str) -> None:
    chapter = site / STORY / "02-paid-in-buttons.md"
    if change in ("modified", "staged"):
        edit(chapter)
    if change == "staged":
        git(site, "add", str(chapter))
    if change == "deleted":
        chapter.unlink()
    if change == "removed":
        git(site, "rm", "-q", str(chapter))
    result = run_cli("deploy", site)
    refused(result)
    assert listed(result) == [f"{site / STORY / '02-paid-in-buttons.md'} ({words})"]  # outside the cwd: as is
    nothing_published(site)


def test_a_changed_site_toml_and_theme_stop_the_deploy(site: Path) -> None:
    settings = site / "site.toml"
    settings.write_text(settings.read_text("utf-8").replace("My Serial Fiction", "Night Shifts"), "utf-8")
    (site / "themes" / "mine" / "templates").mkdir(parents=True)
    (site / "themes" / "mine" / "templates" / "base.html").write_text("{{ config.title }}")
    result = run_cli("deploy", cwd=site)
    refused(result, 'git add -- site.toml themes && git commit -m "Update the site"')
    assert listed(result) == ["site.toml (changed, not committed)",
                              "themes/mine/templates/base.html (new, not in git yet)"]
    nothing_published(site)


def test_a_site_without_a_commit_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "site"
    init_site(folder)
    git(folder, "init", "-q")
    result = run_cli("deploy", "--no-push", cwd=folder)
    refused(result, "this repository has no commit yet", "git add -- content site.toml")
    assert "content/the-night-bakery/story.md (new, not in git yet)" in listed(result)
    nothing_published(folder)


def test_odd_file_names_are_listed_one_per_line(site: Path) -> None:
    """Spaces, accents, quotes, line breaks and tabs: git's -z output, and one line for each file."""
    cafe, broken, quoted, tab = "03 the café.md", "04 two\nlines.md", '05 "quoted" ünïcode.md', "06 tab\there.md"
    for name in (cafe, broken, quoted):
        (site / STORY / name).write_text(NEW_CHAPTER.replace("The oven", "Ines and the oven"))
    commit_all(site, "Three more chapters")
    (site / STORY / cafe).unlink()
    edit(site / STORY / broken)
    edit(site / STORY / quoted)
    (site / STORY / tab).write_text(NEW_CHAPTER)
    result = run_cli("deploy", cwd=site)
    refused(result)
    assert listed(result) == [f"{STORY / cafe} (deleted, not committed)",
                              f"{STORY}/04 two\\x0alines.md (changed, not committed)",
                              f"{STORY / quoted} (changed, not committed)",
                              f"{STORY}/06 tab\\x09here.md (new, not in git yet)"]
    nothing_published(site)


def test_a_name_with_a_line_break_is_one_entry(site: Path) -> None:
    (site / STORY / "04 two\nlines.md").write_text(NEW_CHAPTER)
    result = run_cli("deploy", cwd=site)
    refused(result)
    assert listed(result) == [f"{STORY}/04 two\\x0alines.md (new, not in git yet)"]


# What does not count -----------------------------------------------------------------------------------------

def test_ignored_files_do_not_count(site: Path) -> None:
    assert run_cli("build", site).returncode == 0  # output/ and .serialist-cache/: ignored by the site's .gitignore
    (site / ".gitignore").write_text((site / ".gitignore").read_text("utf-8") + "*.private\n")
    (site / "themes").mkdir()
    (site / "themes" / "notes.private").write_text("ignored\n")
    (site / STORY / "03-the-oven-door.md").write_text(NEW_CHAPTER)
    result = run_cli("deploy", cwd=site)
    refused(result)
    assert listed(result) == [f"{STORY / '03-the-oven-door.md'} (new, not in git yet)"]

    commit_all(site, "Chapter 3")  # the ignored files stay where they are
    assert (site / "themes" / "notes.private").exists() and (site / ".serialist-cache").is_dir()
    result = run_cli("deploy", cwd=site)
    assert result.returncode == 0, result.stderr
    assert "uncommitted" not in git(site, "log", "-1", "--format=%B", "gh-pages")


def test_editors_scratch_files_in_content_do_not_count(site: Path) -> None:
    """The build never reads them, so they cannot be published."""
    for name in (".02-paid-in-buttons.md.swp", ".DS_Store", "02-paid-in-buttons.md~", "4913"):
        (site / STORY / name).write_text("scratch\n")
    (site / "content" / ".notes").mkdir()
    (site / "content" / ".notes" / "ideas.md").write_text(NEW_CHAPTER)
    (site / STORY / "03-the-oven-door.md").write_text(NEW_CHAPTER)
    result = run_cli("deploy", cwd=site)
    refused(result)
    assert listed(result) == [f"{STORY / '03-the-oven-door.md'} (new, not in git yet)"]


def test_changes_outside_the_sources_do_not_count(site: Path, remote: Path) -> None:
    (site / "README.md").write_text("My serial\n")
    (site / ".github" / "workflows" / "pages.yml").write_text("# edited\n")
    edit(site / STORY / "02-paid-in-buttons.md")
    result = run_cli("deploy", cwd=site)
    refused(result)
    assert listed(result) == [f"{STORY / '02-paid-in-buttons.md'} (changed, not committed)"]

    git(site, "add", "content")
    git(site, "commit", "-q", "-m", "Edit chapter 2")  # README.md and the workflow: still not committed
    result = run_cli("deploy", cwd=site)
    assert result.returncode == 0, result.stderr
    assert "not committed" not in result.stderr
    short = git(site, "rev-parse", "--short", "HEAD")
    assert (git(remote, "log", "-1", "--format=%B", "gh-pages")
            == f"Publish the site from {short} with Serialist {__version__}")


# A site in a subfolder of its repository ---------------------------------------------------------------------

@pytest.fixture
def nested(tmp_path: Path, remote: Path) -> Path:
    """repo/fiction (the site to deploy) and repo/poems (another site), committed, with `origin`."""
    repo = tmp_path / "repo"
    init_site(repo / "fiction")
    init_site(repo / "poems")
    git(repo, "init", "-q")
    commit_all(repo, "Start")
    git(repo, "remote", "add", "origin", str(remote))
    return repo


def test_a_site_in_a_subfolder_lists_its_own_changes_from_where_the_user_is(nested: Path, tmp_path: Path) -> None:
    (nested / "poems" / STORY / "03-the-oven-door.md").write_text(NEW_CHAPTER)  # the other site: not counted
    (nested / "README.md").write_text("Two sites\n")
    (nested / "fiction" / STORY / "03-the-oven-door.md").write_text(NEW_CHAPTER)
    new = "(new, not in git yet)"

    result = run_cli("deploy", "fiction", cwd=nested)
    refused(result, 'git add -- fiction/content && git commit -m "Update the site"')
    assert listed(result) == [f"{Path('fiction', STORY, '03-the-oven-door.md')} {new}"]

    result = run_cli("deploy", "..", cwd=nested / "fiction" / "content")
    refused(result)
    assert listed(result) == [f"{Path('the-night-bakery', '03-the-oven-door.md')} {new}"]

    result = run_cli("deploy", Path("repo", "fiction"), cwd=tmp_path)  # outside the repository
    refused(result, 'cd repo/fiction && git add -- content && git commit -m "Update the site"')
    assert listed(result) == [f"{Path('repo', 'fiction', STORY, '03-the-oven-door.md')} {new}"]
    assert git(nested, "branch", "--list", "gh-pages") == ""


@pytest.mark.parametrize("where", ["repo", "outside"])
def test_the_command_given_commits_the_changes(nested: Path, tmp_path: Path, remote: Path, where: str) -> None:
    """What the message says to type works, from where the user is, and the deploy then goes through."""
    site = nested / "fiction"
    (site / STORY / "03 the oven door.md").write_text(NEW_CHAPTER)
    (site / STORY / "01-flour-before-dawn.md").unlink()
    (site / "site.toml").write_text((site / "site.toml").read_text("utf-8") + "# edited\n", "utf-8")
    cwd, name = (nested, "fiction") if where == "repo" else (tmp_path, str(Path("repo", "fiction")))
    result = run_cli("deploy", name, cwd=cwd)
    refused(result)
    command = result.stderr.split("deploy again:\n", 1)[1].splitlines()[0].strip()
    subprocess.run(command, shell=True, cwd=cwd, check=True, capture_output=True)
    assert git(nested, "status", "--porcelain", "--", "fiction") == ""
    assert git(nested, "status", "--porcelain", "--", "poems") == ""  # only the site's own files

    result = run_cli("deploy", name, cwd=cwd)
    assert result.returncode == 0, result.stderr
    assert "the-night-bakery/03-the-oven-door/index.html" in branch_files(remote, "gh-pages")


# --allow-dirty ------------------------------------------------------------------------------------------------

def test_allow_dirty_publishes_and_says_so(site: Path, remote: Path) -> None:
    (site / STORY / "03-the-oven-door.md").write_text(NEW_CHAPTER)
    edit(site / STORY / "02-paid-in-buttons.md")
    before = state(site)
    # the same content, another time: git would refresh the index; deploy must leave it as it is
    untouched = site / STORY / "01-flour-before-dawn.md"
    os.utime(untouched, (untouched.stat().st_atime, untouched.stat().st_mtime - 100))
    index = (site / ".git" / "index").read_bytes()

    result = run_cli("deploy", "--allow-dirty", cwd=site)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[-3:] == [
        "warning: published with 2 files not committed to git (--allow-dirty):",
        f"  {STORY / '02-paid-in-buttons.md'} (changed, not committed)",
        f"  {STORY / '03-the-oven-door.md'} (new, not in git yet)"]
    short = git(site, "rev-parse", "--short", "HEAD")
    assert (git(remote, "log", "-1", "--format=%B", "gh-pages")
            == f"Publish the site from {short} with uncommitted changes, with Serialist {__version__}")
    files = branch_files(remote, "gh-pages")
    assert b"The oven door would not close." in files["the-night-bakery/03-the-oven-door/index.html"]
    assert "Inès".encode() in files["the-night-bakery/02-paid-in-buttons/index.html"]
    assert (site / ".git" / "index").read_bytes() == index
    assert state(site) == before


def test_allow_dirty_with_a_message_of_ones_own(site: Path) -> None:
    (site / STORY / "03-the-oven-door.md").write_text(NEW_CHAPTER)
    result = deploy(site, DeployOptions(output=site / "output", push=False, message="Chapter 3",
                                        allow_dirty=True))
    assert [str(change.path.relative_to(site)) for change in result.uncommitted] == [
        str(STORY / "03-the-oven-door.md")]
    short = git(site, "rev-parse", "--short", "HEAD")
    assert (git(site, "log", "-1", "--format=%B", "gh-pages")
            == f"Chapter 3\n\nPublished from {short} with uncommitted changes.")
