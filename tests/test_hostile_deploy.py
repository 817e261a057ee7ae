"""`serialist deploy` against unlucky and hostile input: branches it must never replace, names that are
not plain branch names, symbolic links and other oddities in the output folder.

Real git throughout, in repositories under tmp_path (the fixtures of tests/test_deploy.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import run_cli
from generator.deploy import output_files
from generator.errors import UsageError
from generator.init import init_site
from test_deploy import branch_files, commit_all, git, git_identity, published, remote, site, state  # noqa: F401


def tip(repo: Path, ref: str) -> str | None:
    result = subprocess.run(["git", "rev-parse", "--verify", "--quiet", ref], cwd=repo, capture_output=True, text=True)
    return result.stdout.strip() or None


def refused(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr, (word, result.stderr)


# Branches that hold the author's work ---------------------------------------------------------------------

def test_a_detached_head_does_not_let_deploy_replace_main(site: Path, remote: Path) -> None:
    git(site, "push", "-q", "origin", "main")
    main = tip(site, "main")
    git(site, "switch", "-q", "--detach")
    result = run_cli("deploy", site, "--branch", "main")
    refused(result, "`main` is the default branch of `origin`", "`--branch main --overwrite-branch`")
    assert tip(site, "main") == main and tip(remote, "main") == main
    assert not (site / "output").exists()  # refused before building


@pytest.mark.parametrize("detached", [False, True])
def test_a_branch_checked_out_in_another_worktree_is_refused(site: Path, tmp_path: Path, detached: bool) -> None:
    assert run_cli("deploy", site, "--no-push").returncode == 0
    pages = tmp_path / "pages"
    git(site, "worktree", "add", "-q", str(pages), "gh-pages")
    before = tip(site, "gh-pages")
    if detached:
        git(site, "switch", "-q", "--detach")
    chapter = site / "content" / "the-night-bakery" / "02-paid-in-buttons.md"
    chapter.write_text(chapter.read_text("utf-8").replace("Thursday", "Friday"), "utf-8")
    result = run_cli("deploy", site, "--no-push", "--overwrite-branch", "--branch", "gh-pages")
    refused(result, "`gh-pages` is checked out in the worktree", str(pages))
    assert tip(site, "gh-pages") == before
    assert git(pages, "status", "--porcelain") == ""  # its files still match its branch


def test_main_lines_are_refused(site: Path, remote: Path) -> None:
    git(site, "switch", "-q", "notes")
    git(site, "branch", "master")
    for branch in ("main", "master"):
        result = run_cli("deploy", site, "--branch", branch)
        refused(result, f"`{branch}` is a main branch", f"`--branch {branch} --overwrite-branch`")
    assert git(remote, "for-each-ref") == ""


def test_the_remotes_default_branch_is_refused(site: Path, remote: Path) -> None:
    git(site, "push", "-q", "origin", "main:trunk")
    git(remote, "symbolic-ref", "HEAD", "refs/heads/trunk")
    result = run_cli("deploy", site, "--branch", "trunk")
    refused(result, "`trunk` is the default branch of `origin`")
    assert tip(remote, "trunk") == tip(site, "main")


def test_the_remotes_default_branch_known_from_a_clone_is_refused_without_push(site: Path, remote: Path,
                                                                                tmp_path: Path) -> None:
    git(site, "push", "-q", "origin", "main:trunk")
    git(remote, "symbolic-ref", "HEAD", "refs/heads/trunk")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(remote), str(clone))  # refs/remotes/origin/HEAD → origin/trunk
    git(clone, "switch", "-q", "-c", "work")
    before = tip(clone, "trunk")
    result = run_cli("deploy", clone, "--branch", "trunk", "--no-push")
    refused(result, "`trunk` is the default branch of `origin`")
    assert tip(clone, "trunk") == before


def test_the_upstream_of_the_current_branch_is_refused(site: Path, remote: Path) -> None:
    git(site, "push", "-q", "origin", "notes:shared-notes")
    git(site, "switch", "-q", "notes")
    git(site, "branch", "-q", "--set-upstream-to", "origin/shared-notes")
    result = run_cli("deploy", site, "--branch", "shared-notes")
    refused(result, "`shared-notes` is the upstream of your current branch `notes`")
    assert tip(remote, "shared-notes") == tip(site, "notes")


def test_a_branch_of_the_works_history_is_refused(site: Path, remote: Path) -> None:
    """`notes` points at the commit checked out: it holds the sources, not built sites."""
    before = state(site)
    result = run_cli("deploy", site, "--branch", "notes")
    refused(result, "`notes` is part of the history of your current work", "`--branch notes --overwrite-branch`")
    assert state(site) == before
    assert git(remote, "for-each-ref") == ""


def test_overwriting_a_main_line_needs_the_branch_named_and_the_flag(site: Path, remote: Path) -> None:
    git(site, "switch", "-q", "notes")
    main = tip(site, "main")
    result = run_cli("deploy", site, "--overwrite-branch")
    refused(result, "`--branch gh-pages --overwrite-branch`")
    assert tip(site, "gh-pages") is None

    result = run_cli("deploy", site, "--branch", "main", "--overwrite-branch")
    assert result.returncode == 0, result.stderr
    assert tip(site, "main^") == main and tip(remote, "main") == tip(site, "main")
    assert branch_files(remote, "main") == published(site / "output")


# Names that are not plain branch names -------------------------------------------------------------------

@pytest.mark.parametrize(("name", "hint"), [
    ("origin/main", "`origin/main` is a branch of the remote `origin`; to publish to the branch `main` of "
                    "`origin`, type `--remote origin --branch main`"),
    ("refs/remotes/origin/site", "type `--remote origin --branch site`"),
    ("refs/heads/site", "`refs/heads/site` is the full name of the branch `site`; type `--branch site`"),
    ("@", "`@` is not a valid branch name"),
    ("@{-1}", "`@{-1}` is not a valid branch name"),
    ("FETCH_HEAD", "`FETCH_HEAD` is not a valid branch name"),
])
def test_names_that_are_not_plain_branch_names_are_refused(site: Path, remote: Path, name: str, hint: str) -> None:
    git(site, "switch", "-q", "notes")
    git(site, "switch", "-q", "main")  # `@{-1}` now means `notes`
    branches = git(site, "for-each-ref", "--format=%(refname) %(objectname)")
    result = run_cli("deploy", site, "--branch", name)
    refused(result, hint)
    assert git(site, "for-each-ref", "--format=%(refname) %(objectname)") == branches
    assert git(remote, "for-each-ref") == ""


def test_a_remote_named_like_an_option_is_refused(site: Path, remote: Path) -> None:
    git(site, "remote", "add", "--", "--upload-pack=false", str(remote))  # git allows the name
    result = run_cli("deploy", site, "--remote=--upload-pack=false")
    refused(result, "starts with `-`", "git remote rename")
    assert not (site / "output").exists()


# What the output folder holds ------------------------------------------------------------------------------

@pytest.mark.parametrize("link", ["passwd", "extras/theme.css", "CNAME", "private", "copy.html"])
def test_a_symbolic_link_in_the_output_is_refused(site: Path, remote: Path, tmp_path: Path, link: str) -> None:
    """Whether it points to a file or a folder, outside the output or inside it: nothing is read through it."""
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key.txt").write_text("SECRET KEY\n")
    first = run_cli("deploy", site)
    assert first.returncode == 0, first.stderr
    before = tip(remote, "gh-pages")
    target = {"private": secret, "copy.html": site / "output" / "index.html"}.get(link, secret / "key.txt")
    (site / "output" / link).parent.mkdir(exist_ok=True)  # `extras/`: a folder of the author's, kept by builds
    (site / "output" / link).symlink_to(target)

    result = run_cli("deploy", cwd=site)
    refused(result, f"cannot publish {Path('output', link)}: it is a symbolic link", "Delete the link")
    assert tip(remote, "gh-pages") == before == tip(site, "gh-pages")
    assert not [name for name, data in branch_files(site, "gh-pages").items() if b"SECRET" in data]


def test_an_output_folder_that_is_a_link_is_not_read(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "diary.txt").write_text("private\n")
    (tmp_path / "output").symlink_to(elsewhere)
    with pytest.raises(UsageError, match="is a symbolic link"):
        output_files(tmp_path / "output")


def test_a_folder_too_deep_to_read_is_named(site: Path) -> None:
    assert run_cli("deploy", site, "--no-push").returncode == 0
    before = tip(site, "gh-pages")
    folder = os.open(site / "output", os.O_RDONLY)
    try:
        for _ in range(20):  # 20 × 251 characters: longer than any path the system opens
            os.mkdir("d" * 250, dir_fd=folder)
            inner = os.open("d" * 250, os.O_RDONLY, dir_fd=folder)
            os.close(folder)
            folder = inner
    finally:
        os.close(folder)
    try:
        result = run_cli("deploy", "--no-push", cwd=site)
        refused(result, "cannot read output/ddd")
        assert tip(site, "gh-pages") == before
    finally:
        shutil.rmtree(site / "output" / ("d" * 250))  # by folder handles: no path too long is left behind


def test_names_git_cannot_store_are_named_not_dropped(site: Path) -> None:
    assert run_cli("deploy", site, "--no-push").returncode == 0
    before = tip(site, "gh-pages")
    (site / "output" / "notes").mkdir()
    (site / "output" / "notes" / "git~1").write_text("x")
    (site / "output" / ".GIT").write_text("y")
    result = run_cli("deploy", "--no-push", cwd=site)
    refused(result, "git cannot store output/.GIT, output/notes/git~1")
    assert tip(site, "gh-pages") == before


def test_a_folder_named_cname_is_published_whole(site: Path, remote: Path, tmp_path: Path) -> None:
    assert run_cli("deploy", site).returncode == 0
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", "--branch", "gh-pages", str(remote), str(other))
    (other / "CNAME").write_text("fiction.example.org")
    commit_all(other, "Create CNAME")
    git(other, "push", "-q", "origin", "gh-pages")

    (site / "output" / "CNAME").mkdir()  # the branch's CNAME file would replace it in the commit
    (site / "output" / "CNAME" / "a.txt").write_text("kept\n")
    result = run_cli("deploy", site)
    assert result.returncode == 0, result.stderr
    assert branch_files(remote, "gh-pages") == published(site / "output")


def test_a_cname_on_the_branch_that_is_not_a_file_is_not_kept(site: Path, remote: Path, tmp_path: Path) -> None:
    assert run_cli("deploy", site).returncode == 0
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", "--branch", "gh-pages", str(remote), str(other))
    (other / "CNAME").symlink_to("/etc/hostname")
    commit_all(other, "A CNAME that is a link")
    git(other, "push", "-q", "origin", "gh-pages")

    chapter = site / "content" / "the-night-bakery" / "02-paid-in-buttons.md"
    chapter.write_text(chapter.read_text("utf-8").replace("Thursday", "Friday"), "utf-8")
    commit_all(site, "Edit chapter 2")
    result = run_cli("deploy", site)
    assert result.returncode == 0, result.stderr
    assert branch_files(remote, "gh-pages") == published(site / "output")


# A site in a subfolder of its repository, deployed from elsewhere ----------------------------------------------

def test_a_site_in_a_subfolder_named_from_outside_the_repository(tmp_path: Path, remote: Path) -> None:
    repo = tmp_path / "repo"
    init_site(repo / "fiction")
    git(repo, "init", "-q")
    commit_all(repo, "Start")
    git(repo, "remote", "add", "origin", str(remote))
    result = run_cli("deploy", Path("repo", "fiction"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    files = branch_files(remote, "gh-pages")
    assert files == published(repo / "fiction" / "output")
    assert f"({len(files)} files)" in result.stdout


def test_a_site_in_a_subfolder_keeps_the_cname_of_the_branch(tmp_path: Path, remote: Path) -> None:
    repo = tmp_path / "repo"
    init_site(repo / "fiction")
    git(repo, "init", "-q")
    commit_all(repo, "Start")
    git(repo, "remote", "add", "origin", str(remote))
    assert run_cli("deploy", "fiction", cwd=repo).returncode == 0
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", "--branch", "gh-pages", str(remote), str(other))
    (other / "CNAME").write_text("fiction.example.org")
    commit_all(other, "Create CNAME")
    git(other, "push", "-q", "origin", "gh-pages")

    chapter = repo / "fiction" / "content" / "the-night-bakery" / "02-paid-in-buttons.md"
    chapter.write_text(chapter.read_text("utf-8").replace("Thursday", "Friday"), "utf-8")
    commit_all(repo, "Edit chapter 2")
    result = run_cli("deploy", "fiction", cwd=repo)
    assert result.returncode == 0, result.stderr
    assert branch_files(remote, "gh-pages")["CNAME"] == b"fiction.example.org"
