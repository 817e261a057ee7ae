"""`serialist deploy`: build, then publish the output as a commit on the `gh-pages` branch.

Like ghp-import, but with git's plumbing only: the output's files are hashed
into the repository, listed in a temporary index (never the repository's own),
written as a tree and committed with the branch's previous tip as parent. The
working tree, the index, HEAD and every other branch stay as they were. The
commit holds exactly the output folder (without the build's manifest) plus a
`.nojekyll`; a `CNAME` that the branch had is kept when the output has none.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from generator import __version__
from generator.build import BuildResult, build
from generator.config import BuildOptions
from generator.errors import SerialistError, UsageError, display_path
from generator.output import MANIFEST

NOJEKYLL = ".nojekyll"
CNAME = "CNAME"
_SKIPPED_DIRS = frozenset({".git"})


@dataclass(frozen=True, slots=True)
class DeployOptions:
    """What `serialist deploy` was asked to do."""

    output: Path
    remote: str = "origin"
    branch: str = "gh-pages"
    push: bool = True
    message: str | None = None
    base_url: str | None = None


@dataclass(frozen=True, slots=True)
class DeployResult:
    build: BuildResult
    commit: str  # the branch's tip after the deploy
    committed: bool  # False when the output was the same as the branch's last commit
    files: int  # files in the deployed tree
    pushed: bool


@dataclass(frozen=True, slots=True)
class Git:
    """Runs git in one repository (found from `cwd`), optionally with extra environment."""

    cwd: Path
    env: tuple[tuple[str, str], ...] = ()

    def run(self, *args: str, stdin: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        environment = {**os.environ, **dict(self.env)} if self.env else None
        try:
            result = subprocess.run(["git", *args], cwd=self.cwd, input=stdin, capture_output=True, env=environment)
        except FileNotFoundError:
            raise UsageError("git is not installed (or not on PATH); install git to use `serialist deploy`") from None
        if check and result.returncode != 0:
            detail = result.stderr.decode("utf-8", "replace").strip() or f"exit status {result.returncode}"
            raise SerialistError(f"`git {args[0]}` failed: {detail}")
        return result

    def out(self, *args: str, stdin: bytes | None = None) -> str:
        return self.run(*args, stdin=stdin).stdout.decode("utf-8", "replace").strip()

    def ok(self, *args: str) -> bool:
        return self.run(*args, check=False).returncode == 0

    def commit_of(self, ref: str) -> str | None:
        result = self.run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        return result.stdout.decode().strip() if result.returncode == 0 else None

    def with_index(self, index: Path) -> Git:
        return Git(self.cwd, (*self.env, ("GIT_INDEX_FILE", str(index))))


# Checks before anything is built -------------------------------------------------------------------

def open_repository(site_dir: Path) -> Git:
    """The git repository the site folder is in; UsageError when there is none."""
    where = _folder_name(site_dir)
    if not site_dir.is_dir():
        raise UsageError(f"the site folder {where} does not exist")
    git = Git(site_dir)
    probe = git.run("rev-parse", "--git-dir", check=False)
    if probe.returncode != 0 and b"dubious ownership" in probe.stderr:
        raise UsageError(f"git refuses to work in {where}: {probe.stderr.decode('utf-8', 'replace').strip()}")
    if probe.returncode != 0:
        raise UsageError(f"{where} is not inside a git repository. `serialist deploy` publishes "
                         "to a branch of the site's repository: run `git init` there and add your GitHub "
                         "repository as a remote, or publish with the GitHub Actions workflow instead")
    if git.out("rev-parse", "--is-bare-repository") == "true":
        raise UsageError(f"{where} is inside a bare git repository; run deploy from a clone")
    return git


def _folder_name(folder: Path) -> str:
    shown = display_path(folder)
    return f"the current folder ({folder.resolve()})" if shown == "." else shown


def check_branch(git: Git, branch: str) -> None:
    if not branch or branch.startswith("-") or not git.ok("check-ref-format", "--branch", branch):
        raise UsageError(f"`{branch}` is not a valid branch name; use something like `--branch gh-pages`")
    current = git.run("symbolic-ref", "--quiet", "HEAD", check=False).stdout.decode().strip()
    if current == f"refs/heads/{branch}":
        raise UsageError(f"the branch `{branch}` is checked out here; switch to your main branch first "
                         f"(`git switch main`), because deploy replaces everything on `{branch}`")


def check_remote(git: Git, remote: str) -> None:
    remotes = git.out("remote").split()
    if remote not in remotes:
        known = f" The remotes here are: {', '.join(remotes)}." if remotes else " This repository has no remotes."
        raise UsageError(f"there is no git remote `{remote}`.{known} Add it with `git remote add {remote} URL`, "
                         "choose another with `--remote NAME`, or commit without pushing with `--no-push`")


# The commit ------------------------------------------------------------------------------------------

def output_files(output: Path) -> list[tuple[str, Path]]:
    """(`/`-separated path in the tree, file) for each file to publish, sorted; dot-files included."""
    found: list[tuple[str, Path]] = []
    for folder, dirs, files in os.walk(output):
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS and not Path(folder, d).is_symlink())
        for name in files:
            path = Path(folder, name)
            relative = path.relative_to(output).as_posix()
            if relative == MANIFEST or not path.is_file():
                continue
            if "\n" in relative or "\r" in relative:
                raise UsageError(f"cannot publish {display_path(path)}: its name has a line break")
            found.append((relative, path))
    return sorted(found)


def _mode(path: Path) -> str:
    return "100755" if os.stat(path).st_mode & 0o111 else "100644"


def _index_lines(git: Git, files: list[tuple[str, Path]]) -> bytes:
    """`git update-index -z --index-info` input for `files`, their contents stored in the repository."""
    if not files:
        return b""
    paths = "".join(f"{path}\n" for _, path in files).encode("utf-8", "surrogateescape")
    blobs = git.out("hash-object", "-w", "--no-filters", "--stdin-paths", stdin=paths).split()
    return b"".join(f"{_mode(path)} {blob}\t".encode() + name.encode("utf-8", "surrogateescape") + b"\0"
                    for (name, path), blob in zip(files, blobs, strict=True))


def _extra_entries(git: Git, published: set[str], parent: str | None) -> bytes:
    """`.nojekyll` when the output lacks it; the previous `CNAME` when the output has none."""
    lines = b""
    if NOJEKYLL not in published:
        empty = git.out("hash-object", "-w", "--stdin", stdin=b"")
        lines += f"100644 {empty}\t{NOJEKYLL}\0".encode()
    if CNAME not in published and parent:
        entry = git.out("ls-tree", parent, "--", CNAME)
        if entry:
            mode_type_blob = entry.split("\t", 1)[0].split()
            lines += f"{mode_type_blob[0]} {mode_type_blob[2]}\t{CNAME}\0".encode()
    return lines


def write_tree(git: Git, output: Path, parent: str | None) -> tuple[str, int]:
    """The tree object of the output (plus `.nojekyll` and a kept `CNAME`), and how many files it has."""
    files = output_files(output)
    with tempfile.TemporaryDirectory(prefix="serialist-deploy-") as scratch:
        staged = git.with_index(Path(scratch) / "index")
        entries = _index_lines(git, files) + _extra_entries(git, {name for name, _ in files}, parent)
        staged.run("update-index", "--add", "-z", "--index-info", stdin=entries)
        tree = staged.out("write-tree")
        count = len(staged.out("ls-files", "-z").split("\0")) - 1
    return tree, count


def default_message(git: Git) -> str:
    head = git.commit_of("HEAD")
    source = f" from {git.out('rev-parse', '--short', head)}" if head else ""
    return f"Publish the site{source} with Serialist {__version__}"


def commit(git: Git, tree: str, parent: str | None, message: str) -> str:
    args = ["commit-tree", tree, *(["-p", parent] if parent else [])]
    result = git.run(*args, stdin=message.encode("utf-8"), check=False)
    if result.returncode != 0:
        detail = result.stderr.decode("utf-8", "replace").strip()
        if "Please tell me who you are" in detail or "empty ident" in detail:
            raise UsageError("git does not know who you are, so it cannot commit: run "
                             "`git config --global user.name \"Your Name\"` and "
                             "`git config --global user.email you@example.org`, then deploy again")
        raise SerialistError(f"`git commit-tree` failed: {detail}")
    return result.stdout.decode().strip()


# Which commit the new one follows ---------------------------------------------------------------------

def fetch_remote_branch(git: Git, remote: str, branch: str) -> str | None:
    """The tip of `branch` on `remote` (fetched into `remote`/`branch`), or None when the remote lacks it."""
    tracking = f"refs/remotes/{remote}/{branch}"
    listed = git.run("ls-remote", "--heads", remote, f"refs/heads/{branch}", check=False)
    if listed.returncode != 0:
        detail = listed.stderr.decode("utf-8", "replace").strip()
        raise SerialistError(f"cannot reach the remote `{remote}`: {detail}")
    if not listed.stdout.strip():
        return None
    git.run("fetch", "--quiet", "--no-tags", remote, f"+refs/heads/{branch}:{tracking}")
    return git.commit_of(tracking)


def choose_parent(git: Git, local: str | None, remote: str | None, branch: str, remote_name: str) -> str | None:
    """The previous tip the new commit builds on, so that pushing it is a fast-forward."""
    if local is None or remote is None or local == remote:
        return local or remote
    if git.ok("merge-base", "--is-ancestor", remote, local):
        return local
    if git.ok("merge-base", "--is-ancestor", local, remote):
        return remote
    raise UsageError(f"the local branch `{branch}` and `{remote_name}/{branch}` have both changed since they "
                     f"last matched. The branch only holds built sites, so it is safe to drop the local one: "
                     f"`git branch -D {branch}`, then deploy again")


def push(git: Git, remote: str, branch: str) -> None:
    result = git.run("push", "--quiet", remote, f"refs/heads/{branch}:refs/heads/{branch}", check=False)
    if result.returncode != 0:
        detail = result.stderr.decode("utf-8", "replace").strip()
        raise SerialistError(f"the commit is on the local branch `{branch}`, but pushing it to `{remote}` "
                             f"failed: {detail}")


# The whole command --------------------------------------------------------------------------------------

def deploy(site_dir: Path, options: DeployOptions) -> DeployResult:
    """Build the site in `site_dir` and publish it on `options.branch` (pushed unless `push` is off)."""
    git = open_repository(site_dir)
    check_branch(git, options.branch)
    if options.push:
        check_remote(git, options.remote)
        remote_tip = fetch_remote_branch(git, options.remote, options.branch)  # fails early when unreachable
    else:
        remote_tip = git.commit_of(f"refs/remotes/{options.remote}/{options.branch}")
    ref = f"refs/heads/{options.branch}"
    local = git.commit_of(ref)
    parent = choose_parent(git, local, remote_tip, options.branch, options.remote)
    result = build(site_dir, BuildOptions(output=options.output, base_url=options.base_url, quiet=True))

    tree, files = write_tree(git, options.output, parent)
    if parent is not None and git.out("rev-parse", f"{parent}^{{tree}}") == tree:
        tip, committed = parent, False  # nothing changed: no empty commit
    else:
        tip, committed = commit(git, tree, parent, options.message or default_message(git)), True
    if tip != local:
        git.run("update-ref", "-m", "serialist deploy", ref, tip, local or "")  # "": the branch must be new
    if options.push:
        push(git, options.remote, options.branch)
    return DeployResult(build=result, commit=tip, committed=committed, files=files, pushed=options.push)
