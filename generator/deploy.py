"""`serialist deploy`: build, then publish the output as a commit on the `gh-pages` branch.

Like ghp-import, but with git's plumbing only: the output's files are hashed
into the repository, listed in a temporary index (never the repository's own),
written as a tree and committed with the branch's previous tip as parent. The
working tree, the index, HEAD and every other branch stay as they were. The
commit holds exactly the output folder (without the build's manifest) plus a
`.nojekyll`; a `CNAME` that the branch had is kept when the output has none.

It publishes what is committed: when the site's sources (`content/`, `site.toml`, `themes/`, `static/`)
differ from the commit checked out (changed, staged, deleted, or new and not ignored by git), it stops
before building and lists them, unless the user says `--allow-dirty`; the commit message then says so.

It never moves a branch checked out in a worktree, and replaces a main line (`main`, `master`, the
remote's default branch, the current branch's upstream) or a branch of the work's own history only
when the user confirms it with `--overwrite-branch`. It reads only the regular files of the output
folder, never through a symbolic link.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from generator import __version__
from generator.build import BuildResult, build
from generator.config import CONFIG_FILE, CONTENT_DIR, STATIC_DIR, BuildOptions
from generator.errors import SerialistError, UsageError, display_path
from generator.load import is_ignored_name
from generator.output import MANIFEST

NOJEKYLL = ".nojekyll"
CNAME = "CNAME"
_SKIPPED = frozenset({".git"})  # a folder or a file: git's own


@dataclass(frozen=True, slots=True)
class DeployOptions:
    """What `serialist deploy` was asked to do."""

    output: Path
    remote: str = "origin"
    branch: str = "gh-pages"
    push: bool = True
    message: str | None = None
    base_url: str | None = None
    overwrite_branch: bool = False  # the user confirmed that `branch` may be a main line or hold their work
    allow_dirty: bool = False  # publish the sources as they are, even when they differ from the commit


@dataclass(frozen=True, slots=True)
class DeployResult:
    build: BuildResult
    commit: str  # the branch's tip after the deploy
    committed: bool  # False when the output was the same as the branch's last commit
    files: int  # files in the deployed tree
    pushed: bool
    uncommitted: tuple[Change, ...] = ()  # what was published without being committed (`allow_dirty`)


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


_MAIN_LINES = ("main", "master")
_SPECIAL_REF = re.compile(r"[A-Z_]*HEAD")  # HEAD, FETCH_HEAD, ORIG_HEAD...: names git gives its own refs


def check_branch_name(git: Git, branch: str) -> None:
    """Refuse what is not the plain name of a branch, with the option the user most likely meant."""
    remotes = git.out("remote").split()
    first, _, rest = branch.partition("/")
    if branch.startswith("refs/heads/") and branch != "refs/heads/":
        raise UsageError(f"`{branch}` is the full name of the branch `{branch.removeprefix('refs/heads/')}`; "
                         f"type `--branch {branch.removeprefix('refs/heads/')}`")
    if branch.startswith("refs/remotes/"):
        first, _, rest = branch.removeprefix("refs/remotes/").partition("/")
    if rest and first in remotes:
        raise UsageError(f"`{branch}` is a branch of the remote `{first}`; to publish to the branch `{rest}` "
                         f"of `{first}`, type `--remote {first} --branch {rest}`")
    valid = (branch and not branch.startswith(("-", "refs/")) and branch != "@" and not _SPECIAL_REF.fullmatch(branch)
             # `--branch` also expands `@{-1}` (the branch checked out before): the name must come back as it is
             and git.run("check-ref-format", "--branch", branch, check=False).stdout.strip() == branch.encode())
    if not valid:
        raise UsageError(f"`{branch}` is not a valid branch name; use a plain name, like `--branch gh-pages`")


def worktree_branches(git: Git) -> dict[str, str]:
    """Each branch checked out in a worktree of the repository (`refs/heads/...`) → that worktree's folder."""
    found: dict[str, str] = {}
    folder = ""
    for line in git.out("worktree", "list", "--porcelain").splitlines():
        if line.startswith("worktree "):
            folder = line.removeprefix("worktree ")
        elif line.startswith("branch "):
            found[line.removeprefix("branch ")] = folder
    return found


def check_not_checked_out(git: Git, branch: str) -> None:
    """Deploy moves the branch's tip: never under a worktree that has it checked out (this one or another)."""
    ref = f"refs/heads/{branch}"
    if git.run("symbolic-ref", "--quiet", "HEAD", check=False).stdout.decode().strip() == ref:
        raise UsageError(f"the branch `{branch}` is checked out here; switch to your main branch first "
                         f"(`git switch main`), because deploy replaces everything on `{branch}`")
    elsewhere = worktree_branches(git).get(ref)
    if elsewhere is not None:
        raise UsageError(f"the branch `{branch}` is checked out in the worktree {elsewhere}, and deploy "
                         f"replaces everything on it; switch that worktree to another branch, or remove it "
                         f"(`git worktree remove FOLDER`, or `git worktree prune` if its folder is gone), "
                         f"or publish to another branch with `--branch NAME`")


def source_branches(git: Git, remote: str, remote_default: str | None) -> dict[str, str]:
    """The branches that hold the author's work rather than a built site → why, in words."""
    found = {name: "a main branch" for name in _MAIN_LINES}
    tracked = git.run("symbolic-ref", "--quiet", f"refs/remotes/{remote}/HEAD", check=False).stdout.decode().strip()
    for default in (tracked.removeprefix(f"refs/remotes/{remote}/") if tracked else None, remote_default):
        if default:
            found[default] = f"the default branch of `{remote}`"
    head = git.run("symbolic-ref", "--quiet", "HEAD", check=False).stdout.decode().strip()
    current = head.removeprefix("refs/heads/") if head.startswith("refs/heads/") else ""
    if current:
        upstream = git.run("config", "--get", f"branch.{current}.merge", check=False).stdout.decode().strip()
        if upstream.startswith("refs/heads/"):
            found[upstream.removeprefix("refs/heads/")] = f"the upstream of your current branch `{current}`"
    return found


def check_not_a_source_branch(git: Git, options: DeployOptions, remote_default: str | None) -> None:
    """Refuse to replace a main line, unless the user confirmed it."""
    why = source_branches(git, options.remote, remote_default).get(options.branch)
    if why is not None and not options.overwrite_branch:
        raise _replaces_work(options.branch, why)


def check_not_the_work_history(git: Git, options: DeployOptions, tips: tuple[str | None, ...]) -> None:
    """Refuse a branch whose commit (`tips`: local, remote) is HEAD, an ancestor or a descendant of it:
    it holds the history of the sources, not of built sites; unless the user confirmed it."""
    head = git.commit_of("HEAD")
    if options.overwrite_branch or head is None:
        return
    for tip in filter(None, tips):
        if git.ok("merge-base", "--is-ancestor", tip, head) or git.ok("merge-base", "--is-ancestor", head, tip):
            raise _replaces_work(options.branch, "part of the history of your current work")


def _replaces_work(branch: str, why: str) -> UsageError:
    return UsageError(f"`{branch}` is {why}, and deploy replaces everything on the branch it publishes to "
                      f"with the built site. Publish to a branch of its own (the default is `gh-pages`); or, "
                      f"if you really mean to replace the files of `{branch}`, type "
                      f"`--branch {branch} --overwrite-branch`")


def check_remote(git: Git, remote: str) -> None:
    if remote.startswith("-"):
        raise UsageError(f"the remote name `{remote}` starts with `-`, which git would read as an option; "
                         f"rename the remote (`git remote rename -- {remote} NAME`) and deploy with `--remote NAME`")
    remotes = git.out("remote").split()
    if remote not in remotes:
        known = f" The remotes here are: {', '.join(remotes)}." if remotes else " This repository has no remotes."
        raise UsageError(f"there is no git remote `{remote}`.{known} Add it with `git remote add {remote} URL`, "
                         "choose another with `--remote NAME`, or commit without pushing with `--no-push`")


# The sources must be committed -------------------------------------------------------------------------

SOURCES = (CONTENT_DIR, CONFIG_FILE, "themes", STATIC_DIR)  # what the build reads from the site folder
_LISTED = 20  # changes named in a message; the rest are counted


@dataclass(frozen=True, slots=True)
class Change:
    """A file of the site's sources that differs from the commit checked out."""

    path: Path  # under the site folder
    what: str  # in words: "new, not in git yet", "changed, not committed", ...

    def __str__(self) -> str:
        return f"{display_path(self.path)} ({self.what})"


def _status_words(code: str) -> str:
    staged, worktree = code[0], code[1]
    if code == "??":
        return "new, not in git yet"
    if "U" in code or code in ("AA", "DD"):
        return "in the middle of a merge, not committed"
    if "D" in code:
        return "deleted, not committed"
    if staged == "A":
        return "new, added but not committed"
    if worktree == "A":
        return "new, not committed"
    return "changed, not committed" if worktree != " " else "changed, added but not committed"


def uncommitted_changes(git: Git, site_dir: Path) -> tuple[Change, ...]:
    """The files of `content/`, `site.toml`, `themes/` and `static/` that differ from HEAD: changed, staged,
    deleted, or untracked and not ignored by git. Files the build never reads (hidden and editors' scratch
    files in `content/` and `static/`, see `generator.load.is_ignored_name`) do not count."""
    prefix = os.fsdecode(git.run("rev-parse", "--show-prefix").stdout.rstrip(b"\n"))  # site folder in the repo
    quiet = Git(git.cwd, (*git.env, ("GIT_OPTIONAL_LOCKS", "0")))  # status leaves the repository's index as it is
    listed = quiet.run("status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames",
                       "--ignore-submodules=none", "--", *SOURCES).stdout.split(b"\0")
    found: dict[str, str] = {}
    entries = iter(listed)
    for entry in entries:
        if len(entry) < 4:
            continue
        code, name = entry[:2].decode("ascii", "replace"), os.fsdecode(entry[3:])
        if "R" in code or "C" in code:  # renamed or copied (were --no-renames not heeded): its origin follows
            origin = os.fsdecode(next(entries, b""))
            if origin.startswith(prefix):
                found.setdefault(origin.removeprefix(prefix), "moved away, not committed")
        if name.startswith(prefix):  # the paths are from the top of the repository
            found[name.removeprefix(prefix)] = _status_words(code)
    return tuple(Change(site_dir / name, what) for name, what in sorted(found.items())
                 if not (name.startswith((f"{CONTENT_DIR}/", f"{STATIC_DIR}/"))
                         and any(map(is_ignored_name, name.split("/")[1:]))))


def list_changes(changes: tuple[Change, ...]) -> str:
    shown = "".join(f"\n  {change}" for change in changes[:_LISTED])
    return shown + (f"\n  ... and {len(changes) - _LISTED} more" if len(changes) > _LISTED else "")


def commit_command(git: Git, site_dir: Path, changes: tuple[Change, ...]) -> str:
    """What to type, from where the user is, to commit `changes`."""
    tops = [name for name in SOURCES if any(c.path.relative_to(site_dir).parts[0] == name for c in changes)]
    top = Path(os.fsdecode(git.run("rev-parse", "--show-toplevel").stdout.rstrip(b"\n")))
    try:
        inside = Path.cwd().resolve().is_relative_to(top.resolve())
    except OSError:
        inside = False
    if inside:
        paths = " ".join(shlex.quote(display_path(site_dir / name)) for name in tops)
        return f"git add -- {paths} && git commit -m \"Update the site\""
    return (f"cd {shlex.quote(display_path(site_dir))} && git add -- {' '.join(tops)} "
            f"&& git commit -m \"Update the site\"")


def check_committed(git: Git, site_dir: Path, allow_dirty: bool) -> tuple[Change, ...]:
    """The site's uncommitted changes, when `allow_dirty`; otherwise a UsageError listing them, if any."""
    changes = uncommitted_changes(git, site_dir)
    if not changes or allow_dirty:
        return changes
    count = len(changes)
    one = count == 1
    why = ("but this repository has no commit yet" if git.commit_of("HEAD") is None
           else "so that what goes online is what you committed")
    raise UsageError(
        f"deploy publishes the site as it is in your last git commit, {why}; {count} of its files "
        f"{'has changes that are' if one else 'have changes that are'} not committed:{list_changes(changes)}\n"
        f"Commit {'it' if one else 'them'} first, then deploy again:\n"
        f"  {commit_command(git, site_dir, changes)}\n"
        f"or, to publish {'it as it is' if one else 'them as they are'} now, add `--allow-dirty` to the "
        f"deploy command")


# The commit ------------------------------------------------------------------------------------------

def output_files(output: Path) -> list[tuple[str, Path]]:
    """(`/`-separated path in the tree, file) for each file to publish, sorted; dot-files included.

    Nothing outside the output folder is read: a symbolic link in it (to a file or a folder, wherever
    it points) stops the deploy, naming the link, since publishing it would publish what it points to.
    `.git` (a folder or a file) is left out, and so is what is neither a file nor a folder."""
    if output.is_symlink():
        raise UsageError(f"the output folder {display_path(output)} is a symbolic link; deploy publishes only "
                         "the files of a real folder: build into one with `--output FOLDER`")

    def unreadable(error: OSError) -> NoReturn:
        raise UsageError(f"cannot read {display_path(error.filename)} to publish it ({error.strerror}); "
                         "move it out of the output folder, then deploy again")

    found: list[tuple[str, Path]] = []
    for folder, dirs, files in os.walk(output, onerror=unreadable):
        dirs[:] = [name for name in dirs if name not in _SKIPPED]
        for name in [*dirs, *files]:
            if name in _SKIPPED:
                continue
            path = Path(folder, name)
            try:
                kind = path.lstat().st_mode
            except OSError as error:
                unreadable(error)
            if stat.S_ISLNK(kind):
                raise UsageError(f"cannot publish {display_path(path)}: it is a symbolic link (to "
                                 f"{os.readlink(path)}), and deploy publishes only what is in the output "
                                 "folder, never what a link points to. Delete the link, or put a copy of "
                                 "what it points to in its place, then deploy again")
            relative = path.relative_to(output).as_posix()
            if not stat.S_ISREG(kind) or relative == MANIFEST:
                continue
            if "\n" in relative or "\r" in relative:
                raise UsageError(f"cannot publish {display_path(path)}: its name has a line break")
            found.append((relative, path))
    return sorted(found)


def _mode(path: Path) -> str:
    return "100755" if path.lstat().st_mode & 0o111 else "100644"


def _index_lines(git: Git, files: list[tuple[str, Path]]) -> bytes:
    """`git update-index -z --index-info` input for `files`, their contents stored in the repository."""
    if not files:
        return b""
    # absolute: git reads them from the repository's top folder, not from ours
    paths = "".join(f"{os.path.abspath(path)}\n" for _, path in files).encode("utf-8", "surrogateescape")
    blobs = git.out("hash-object", "-w", "--no-filters", "--stdin-paths", stdin=paths).split()
    return b"".join(f"{_mode(path)} {blob}\t".encode() + name.encode("utf-8", "surrogateescape") + b"\0"
                    for (name, path), blob in zip(files, blobs, strict=True))


def _extra_entries(git: Git, published: set[str], parent: str | None) -> bytes:
    """`.nojekyll` when the output lacks it; the previous `CNAME` (a file) when the output has none."""
    taken = published | {name.split("/", 1)[0] for name in published}  # a folder of that name: nothing added
    lines = b""
    if NOJEKYLL not in taken:
        empty = git.out("hash-object", "-w", "--stdin", stdin=b"")
        lines += f"100644 {empty}\t{NOJEKYLL}\0".encode()
    if CNAME not in taken and parent:
        entry = git.out("ls-tree", "--full-tree", parent, "--", CNAME)
        mode, kind, blob = entry.split("\t", 1)[0].split() if entry else ("", "", "")
        if kind == "blob" and mode in ("100644", "100755"):  # not a link, nor a folder
            lines += f"{mode} {blob}\t{CNAME}\0".encode()
    return lines


def write_tree(git: Git, output: Path, parent: str | None) -> tuple[str, int]:
    """The tree object of the output (plus `.nojekyll` and a kept `CNAME`), and how many files it has."""
    files = output_files(output)
    with tempfile.TemporaryDirectory(prefix="serialist-deploy-") as scratch:
        staged = git.with_index(Path(scratch) / "index")
        entries = _index_lines(git, files) + _extra_entries(git, {name for name, _ in files}, parent)
        staged.run("update-index", "--add", "-z", "--index-info", stdin=entries)
        tree = staged.out("write-tree")
    listed = git.run("ls-tree", "-r", "-z", "--full-tree", "--name-only", tree).stdout.split(b"\0")[:-1]
    left_out = sorted({name for name, _ in files} - {name.decode("utf-8", "surrogateescape") for name in listed})
    if left_out:  # git skips names it refuses (`.GIT`, `git~1`, ...) with only a line on stderr
        shown = ", ".join(display_path(output / name) for name in left_out[:5]) + ", ..." * (len(left_out) > 5)
        raise UsageError(f"git cannot store {shown} (names like `.GIT` or `git~1` are git's own), so deploy "
                         "cannot publish them; rename them or move them out of the output folder")
    return tree, len(listed)


def commit_message(git: Git, message: str | None, dirty: bool) -> str:
    """The user's message, or one that names the source commit; either says when the sources had
    uncommitted changes (never which files: their names would be published)."""
    head = git.commit_of("HEAD")
    short = git.out("rev-parse", "--short", head) if head else None
    if message:
        if not dirty:
            return message
        return f"{message}\n\nPublished from {short or 'a repository without commits'} with uncommitted changes."
    source = f" from {short}" if short else ""
    return (f"Publish the site{source} with uncommitted changes, with Serialist {__version__}" if dirty
            else f"Publish the site{source} with Serialist {__version__}")


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

def look_up_remote(git: Git, remote: str, branch: str) -> tuple[bool, str | None]:
    """Whether `remote` has `branch`, and the remote's default branch (None when it does not say)."""
    listed = git.run("ls-remote", "--symref", remote, "HEAD", f"refs/heads/{branch}", check=False)
    if listed.returncode != 0:
        detail = listed.stderr.decode("utf-8", "replace").strip()
        raise SerialistError(f"cannot reach the remote `{remote}`: {detail}")
    has, default = False, None
    for line in listed.stdout.decode("utf-8", "replace").splitlines():
        value, _, name = line.partition("\t")
        has = has or name == f"refs/heads/{branch}"
        if name == "HEAD" and value.startswith("ref: refs/heads/"):
            default = value.removeprefix("ref: refs/heads/")
    return has, default


def fetch_remote_branch(git: Git, remote: str, branch: str) -> str | None:
    """The tip of `branch` on `remote`, fetched into `remote`/`branch`."""
    tracking = f"refs/remotes/{remote}/{branch}"
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
    check_branch_name(git, options.branch)
    check_not_checked_out(git, options.branch)
    uncommitted = check_committed(git, site_dir, options.allow_dirty)
    on_remote, remote_default = False, None
    if options.push:
        check_remote(git, options.remote)
        on_remote, remote_default = look_up_remote(git, options.remote, options.branch)  # fails when unreachable
    check_not_a_source_branch(git, options, remote_default)
    if on_remote:
        remote_tip = fetch_remote_branch(git, options.remote, options.branch)
    else:
        remote_tip = None if options.push else git.commit_of(f"refs/remotes/{options.remote}/{options.branch}")
    ref = f"refs/heads/{options.branch}"
    local = git.commit_of(ref)
    check_not_the_work_history(git, options, (local, remote_tip))
    parent = choose_parent(git, local, remote_tip, options.branch, options.remote)
    result = build(site_dir, BuildOptions(output=options.output, base_url=options.base_url, quiet=True))

    tree, files = write_tree(git, options.output, parent)
    if parent is not None and git.out("rev-parse", f"{parent}^{{tree}}") == tree:
        tip, committed = parent, False  # nothing changed: no empty commit
    else:
        message = commit_message(git, options.message, bool(uncommitted))
        tip, committed = commit(git, tree, parent, message), True
    if tip != local:
        git.run("update-ref", "-m", "serialist deploy", ref, tip, local or "")  # "": the branch must be new
    if options.push:
        push(git, options.remote, options.branch)
    return DeployResult(build=result, commit=tip, committed=committed, files=files, pushed=options.push,
                        uncommitted=uncommitted)
