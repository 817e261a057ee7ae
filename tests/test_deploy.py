"""`serialist deploy`: the built site as a commit on gh-pages, pushed to a local bare repository.

Real git throughout, isolated from the machine's git settings.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import REPO, run_cli, tree_bytes
from generator.deploy import DeployOptions, deploy, output_files
from generator.errors import UsageError
from generator.init import init_site
from generator.output import MANIFEST


@pytest.fixture(autouse=True)
def git_identity(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Git as on a fresh machine, with a name to commit under; no repository above tmp_path."""
    config = tmp_path / "gitconfig"
    config.write_text("[init]\n\tdefaultBranch = main\n")
    for key, value in {"GIT_CONFIG_GLOBAL": str(config), "GIT_CONFIG_NOSYSTEM": "1",
                       "GIT_AUTHOR_NAME": "Wren Halloway", "GIT_AUTHOR_EMAIL": "wren@example.org",
                       "GIT_COMMITTER_NAME": "Wren Halloway", "GIT_COMMITTER_EMAIL": "wren@example.org",
                       "GIT_CEILING_DIRECTORIES": str(tmp_path)}.items():
        monkeypatch.setenv(key, value)
    for key in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(key, raising=False)


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr}"
    return result.stdout.strip()


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    return bare


@pytest.fixture
def site(tmp_path: Path, remote: Path) -> Path:
    """A site made by `serialist init`, committed on main, with the bare repository as `origin`."""
    folder = tmp_path / "site"
    init_site(folder)
    git(folder, "init", "-q")
    commit_all(folder, "Start the site")
    git(folder, "remote", "add", "origin", str(remote))
    git(folder, "branch", "notes")  # another branch, which deploy must leave alone
    return folder


def branch_files(repo: Path, ref: str) -> dict[str, bytes]:
    names = git(repo, "ls-tree", "-r", "-z", "--name-only", ref).split("\0")
    return {name: subprocess.run(["git", "show", f"{ref}:{name}"], cwd=repo, capture_output=True,
                                 check=True).stdout for name in names if name}


def published(output: Path) -> dict[str, bytes]:
    return {name: data for name, data in tree_bytes(output).items() if name != MANIFEST}


def state(repo: Path) -> dict[str, object]:
    """Everything of the repository that deploy must not change."""
    return {
        "status": git(repo, "status", "--porcelain=v1", "--untracked-files=all"),
        "staged": git(repo, "ls-files", "--stage"),
        "head": git(repo, "symbolic-ref", "HEAD"),
        "head_commit": git(repo, "rev-parse", "HEAD"),
        "branches": [line for line in git(repo, "for-each-ref", "--format=%(refname) %(objectname)",
                                          "refs/heads/").splitlines()
                     if not line.startswith("refs/heads/gh-pages ")],
        "files": {k: v for k, v in tree_bytes(repo).items()  # less what git and the build make
                  if not k.startswith((".git/", "output/", ".output.serialist-", ".serialist-cache/"))},
    }


def options(site: Path, **kwargs: object) -> DeployOptions:
    return DeployOptions(output=site / "output", **kwargs)  # type: ignore[arg-type]


# The main route ----------------------------------------------------------------------------------------

def test_deploy_commits_the_output_and_pushes_it(site: Path, remote: Path) -> None:
    before = state(site)
    index_before = (site / ".git" / "index").read_bytes()
    result = run_cli("deploy", site)
    assert result.returncode == 0, result.stderr
    assert (site / ".git" / "index").read_bytes() == index_before
    assert state(site) == before
    assert "Pushed `gh-pages` to `origin`" in result.stdout

    files = branch_files(remote, "gh-pages")
    assert files == published(site / "output")
    assert ".nojekyll" in files and "index.html" in files and "assets/style.css" in files
    assert MANIFEST not in files
    assert git(remote, "for-each-ref", "--format=%(refname)") == "refs/heads/gh-pages"  # nothing else pushed
    assert git(site, "rev-parse", "gh-pages") == git(remote, "rev-parse", "gh-pages")


def test_the_branch_holds_only_built_sites(site: Path) -> None:
    first = deploy(site, options(site))
    assert git(site, "rev-list", "--count", "gh-pages") == "1"  # no history of main on it
    assert git(site, "log", "-1", "--format=%an <%ae>", "gh-pages") == "Wren Halloway <wren@example.org>"
    assert git(site, "rev-parse", "--short", "main") in git(site, "log", "-1", "--format=%s", "gh-pages")
    assert first.committed and first.pushed


def test_each_deploy_builds_on_the_last(site: Path, remote: Path) -> None:
    first = deploy(site, options(site))
    chapter = site / "content" / "the-night-bakery" / "02-paid-in-buttons.md"
    chapter.write_text(chapter.read_text("utf-8").replace("Thursday", "Friday"), "utf-8")
    commit_all(site, "Edit chapter 2")
    second = deploy(site, options(site))
    assert second.committed
    assert git(remote, "rev-parse", "gh-pages^") == first.commit
    assert b"Friday" in branch_files(remote, "gh-pages")["the-night-bakery/02-paid-in-buttons/index.html"]

    third = run_cli("deploy", site)
    assert third.returncode == 0, third.stderr
    assert "nothing new to commit" in third.stdout
    assert git(remote, "rev-parse", "gh-pages") == second.commit


def test_only_published_chapters_go_out(site: Path, remote: Path) -> None:
    story = site / "content" / "the-night-bakery"
    (story / "03-draft.md").write_text("---\ntitle: Not Yet\ndate: 2025-02-01\ndraft: true\n---\nSecret draft.\n")
    (story / "04-scheduled.md").write_text("---\ntitle: Later\ndate: 2999-01-01\n---\nFrom the future.\n")
    commit_all(site, "A draft and a scheduled chapter")
    deploy(site, options(site))
    files = branch_files(remote, "gh-pages")
    assert not [name for name in files if "03-draft" in name or "04-scheduled" in name]
    assert not [name for name, data in files.items() if b"Secret draft" in data or b"From the future" in data]


def test_message_and_base_url_options(site: Path, remote: Path) -> None:
    result = run_cli("deploy", site, "--message", "Chapter two is up", "--base-url", "https://wren.github.io/night")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # a base URL: no warning
    assert git(remote, "log", "-1", "--format=%B", "gh-pages") == "Chapter two is up"
    assert b"https://wren.github.io/night/" in branch_files(remote, "gh-pages")["feed.xml"]


def test_other_remote_branch_and_output_folder(site: Path, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror.git"
    git(tmp_path, "init", "-q", "--bare", str(mirror))
    git(site, "remote", "add", "mirror", str(mirror))
    out = tmp_path / "elsewhere"
    result = run_cli("deploy", site, "--remote", "mirror", "--branch", "site", "--output", out)
    assert result.returncode == 0, result.stderr
    assert branch_files(mirror, "site") == published(out)
    assert git(site, "branch", "--list", "gh-pages") == ""


def test_no_push_commits_locally_only(site: Path, remote: Path) -> None:
    result = run_cli("deploy", site, "--no-push")
    assert result.returncode == 0, result.stderr
    assert "Not pushed" in result.stdout
    assert branch_files(site, "gh-pages") == published(site / "output")
    assert git(remote, "for-each-ref") == ""


def test_site_in_a_subfolder_of_the_repository(tmp_path: Path, remote: Path) -> None:
    repo = tmp_path / "repo"
    init_site(repo / "fiction")
    (repo / "README.md").write_text("Hello\n")
    git(repo, "init", "-q")
    commit_all(repo, "Start")
    git(repo, "remote", "add", "origin", str(remote))
    result = run_cli("deploy", "fiction", cwd=repo)
    assert result.returncode == 0, result.stderr
    files = branch_files(remote, "gh-pages")
    assert "index.html" in files and "README.md" not in files


# What the output folder may hold --------------------------------------------------------------------------

def test_cname_from_site_toml_is_published(site: Path, remote: Path) -> None:
    settings = site / "site.toml"
    settings.write_text(settings.read_text("utf-8").replace('# cname = "fiction.example.org"',
                                                            'cname = "fiction.example.org"'), "utf-8")
    commit_all(site, "Set the custom domain")
    deploy(site, options(site))
    assert branch_files(remote, "gh-pages")["CNAME"] == b"fiction.example.org\n"


def test_cname_set_on_the_branch_is_kept(site: Path, remote: Path, tmp_path: Path) -> None:
    """GitHub's Pages settings commit a CNAME to the branch; the next deploy keeps it."""
    deploy(site, options(site))
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", "--branch", "gh-pages", str(remote), str(other))
    (other / "CNAME").write_text("fiction.example.org")
    commit_all(other, "Create CNAME")
    git(other, "push", "-q", "origin", "gh-pages")
    with_cname = git(remote, "rev-parse", "gh-pages")

    unchanged = deploy(site, options(site))
    assert not unchanged.committed  # the output plus the kept CNAME is what the branch has
    assert git(site, "rev-parse", "gh-pages") == with_cname

    chapter = site / "content" / "the-night-bakery" / "02-paid-in-buttons.md"
    chapter.write_text(chapter.read_text("utf-8").replace("Thursday", "Friday"), "utf-8")
    commit_all(site, "Edit chapter 2")
    changed = deploy(site, options(site))
    assert changed.committed
    assert git(remote, "rev-parse", "gh-pages^") == with_cname
    files = branch_files(remote, "gh-pages")
    assert files["CNAME"] == b"fiction.example.org"
    assert {k: v for k, v in files.items() if k != "CNAME"} == published(site / "output")


def test_nojekyll_is_added_and_foreign_files_published(site: Path, remote: Path) -> None:
    output = site / "output"
    deploy(site, options(site, push=False))
    (output / "my notes é.txt").write_text("kept\n")
    (output / ".git").mkdir()
    (output / ".git" / "HEAD").write_text("ref: refs/heads/x\n")
    (output / ".nojekyll").unlink()
    deploy(site, options(site))
    files = branch_files(remote, "gh-pages")
    assert files["my notes é.txt"] == b"kept\n"
    assert files[".nojekyll"] == b""
    assert not [name for name in files if name.startswith(".git/")]


def test_output_files_skip_the_manifest_and_git_folders(tmp_path: Path) -> None:
    out = tmp_path / "out"
    for name in ("index.html", MANIFEST, "a/.serialist-manifest", ".git/config", "a/.git/x", ".nojekyll"):
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(name)
    assert [name for name, _ in output_files(out)] == [".nojekyll", "a/.serialist-manifest", "index.html"]


# Deploying from another clone -------------------------------------------------------------------------------

def test_a_second_clone_continues_the_branch(site: Path, remote: Path, tmp_path: Path) -> None:
    git(site, "push", "-q", "origin", "main")
    first = deploy(site, options(site))
    clone = tmp_path / "laptop"
    git(tmp_path, "clone", "-q", str(remote), str(clone))
    assert git(clone, "branch", "--list", "gh-pages") == ""
    (clone / "content" / "the-night-bakery" / "story.md").write_text(
        (clone / "content" / "the-night-bakery" / "story.md").read_text("utf-8").replace("wet November", "cold March"),
        "utf-8")
    commit_all(clone, "Edit the summary")
    second = deploy(clone, options(clone))
    assert second.committed
    assert git(remote, "rev-parse", "gh-pages^") == first.commit


def test_diverged_branches_are_refused(site: Path, remote: Path, tmp_path: Path) -> None:
    deploy(site, options(site))
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", "--branch", "gh-pages", str(remote), str(other))
    (other / "extra.txt").write_text("x")
    commit_all(other, "Remote change")
    git(other, "push", "-q", "origin", "gh-pages")
    chapter = site / "content" / "the-night-bakery" / "01-flour-before-dawn.md"
    chapter.write_text(chapter.read_text("utf-8") + "\nOne more line.\n", "utf-8")
    commit_all(site, "Edit chapter 1")
    deploy(site, options(site, push=False))  # a local commit the remote does not have

    result = run_cli("deploy", site)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "git branch -D gh-pages" in result.stderr


# Refusals -------------------------------------------------------------------------------------------------

def test_refuses_a_folder_that_is_not_a_git_repository(tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    init_site(folder)
    result = run_cli("deploy", folder)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "not inside a git repository" in result.stderr
    assert not (folder / "output").exists()  # refused before building


def test_refuses_a_missing_remote(site: Path) -> None:
    result = run_cli("deploy", site, "--remote", "upstream")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "no git remote `upstream`" in result.stderr and "origin" in result.stderr
    assert git(site, "branch", "--list", "gh-pages") == ""
    assert not (site / "output").exists()


def test_missing_remote_is_fine_without_push(site: Path) -> None:
    git(site, "remote", "remove", "origin")
    assert run_cli("deploy", site, "--no-push").returncode == 0
    assert "index.html" in branch_files(site, "gh-pages")


def test_refuses_when_the_branch_is_checked_out(site: Path) -> None:
    git(site, "switch", "-q", "-c", "gh-pages")
    result = run_cli("deploy", site)
    assert result.returncode == 1
    assert "checked out" in result.stderr and "Traceback" not in result.stderr


def test_refuses_a_bad_branch_name(site: Path) -> None:
    with pytest.raises(UsageError, match="not a valid branch name"):
        deploy(site, options(site, branch="bad..name"))
    with pytest.raises(UsageError, match="not a valid branch name"):
        deploy(site, options(site, branch="--force"))


def test_unreachable_remote_is_reported(site: Path, remote: Path) -> None:
    git(site, "remote", "set-url", "origin", str(remote.parent / "gone.git"))
    result = run_cli("deploy", site)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "cannot reach the remote `origin`" in result.stderr
    assert not (site / "output").exists()  # refused before building


def test_content_errors_stop_the_deploy(site: Path) -> None:
    (site / "content" / "the-night-bakery" / "03-broken.md").write_text("no front matter\n")
    commit_all(site, "A broken chapter")
    result = run_cli("deploy", site)
    assert result.returncode == 1
    assert "03-broken.md" in result.stderr and "Traceback" not in result.stderr
    assert git(site, "branch", "--list", "gh-pages") == ""


# The documentation ------------------------------------------------------------------------------------------

def test_readme_describes_publishing() -> None:
    docs = (REPO / "README.md").read_text("utf-8")
    for topic in ("Source", "GitHub Actions", "base_url", "cname", "CNAME", "60 days", "serialist deploy",
                  "serialist init", "Deploy from a branch", "gh-pages"):
        assert topic in docs, topic
