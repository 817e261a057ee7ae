"""The command line: parses arguments and calls the library; nothing else."""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

import click

from generator import __version__
from generator.errors import ContentError, SerialistError, printable


def _echo(text: object, err: bool = False) -> None:
    """Print `text`, with anything in it a terminal would act on (a file named with an escape sequence,
    say) escaped: line breaks only are kept."""
    click.echo(printable(str(text), keep="\n"), err=err)


def _fail(exc: SerialistError) -> None:
    if isinstance(exc, ContentError):
        for problem in exc.problems:
            _echo(str(problem), err=True)
        count = exc.error_count
        _echo(f"Build failed: {count} error{'s' * (count != 1)}. The previous output is unchanged.", err=True)
    else:
        _echo(f"error: {exc}", err=True)
    sys.exit(1)


GC_FIRST_THRESHOLD = 10_000  # see `run` (at 50,000, a cold build of 3,000 chapters held 40 MiB more)

SITE_DIR = click.argument("site_dir", default=".", type=click.Path(file_okay=False, path_type=Path))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="serialist", message="%(prog)s %(version)s",
                      help="Show the version and exit.")
def main() -> None:
    """Serialist: build a reading site for serialized fiction from Markdown chapters."""


@main.command()
@SITE_DIR
@click.option("--output", "-o", type=click.Path(file_okay=False, path_type=Path),
              help="Output folder (default: SITE_DIR/output).")
@click.option("--drafts", is_flag=True, help="Publish chapters marked `draft: true`.")
@click.option("--future", is_flag=True, help="Publish chapters dated in the future.")
@click.option("--base-url", metavar="URL", help="Absolute URL of the published site (overrides site.toml).")
@click.option("--quiet", "-q", is_flag=True, help="Print only warnings and errors.")
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
@click.option("--no-cache", is_flag=True, help="Rebuild everything, ignoring .serialist-cache/.")
def build(site_dir: Path, output: Path | None, drafts: bool, future: bool, base_url: str | None,
          quiet: bool, strict: bool, no_cache: bool) -> None:
    """Build the site in SITE_DIR (default: the current folder)."""
    from generator.build import build as run_build
    from generator.config import BuildOptions

    output = output or site_dir / "output"
    from generator.progress import for_terminal

    progress = for_terminal(quiet)
    options = BuildOptions(output=output, drafts=drafts, future=future, base_url=base_url, quiet=quiet,
                           strict=strict, cache=not no_cache, progress=progress)
    try:
        result = run_build(site_dir, options)
    except SerialistError as exc:
        _fail(exc)
        return
    finally:
        if progress:
            progress.finish()
    for warning in result.warnings:
        _echo(str(warning), err=True)
    if not quiet:
        _echo(result.summary(output))


@main.command()
@SITE_DIR
@click.option("--strict", is_flag=True, help="Treat warnings as errors (exit 1 on any).")
@click.option("--drafts", is_flag=True, help="Check as if drafts were published.")
@click.option("--future", is_flag=True, help="Check as if scheduled chapters were published.")
def check(site_dir: Path, strict: bool, drafts: bool, future: bool) -> None:
    """Check the site in SITE_DIR without writing anything."""
    from generator.build import build as run_build
    from generator.config import BuildOptions

    options = BuildOptions(output=site_dir / "output", drafts=drafts, future=future, strict=strict, write=False)
    try:
        result = run_build(site_dir, options)
    except SerialistError as exc:
        if isinstance(exc, ContentError):
            for problem in exc.problems:
                _echo(str(problem), err=True)
            _not_published(exc.not_published, ", as far as can be told before the errors above are fixed", err=True)
            _echo(f"{exc.error_count} error{'s' * (exc.error_count != 1)} found.", err=True)
            sys.exit(1)
        _fail(exc)
        return
    for warning in result.warnings:
        _echo(str(warning), err=True)
    _not_published(result.not_published)
    count = len(result.warnings)
    _echo(f"Checked {result.stories} {'story' if result.stories == 1 else 'stories'}, "
          f"{result.chapters} chapter{'s' * (result.chapters != 1)}: "
          + (f"{count} warning{'s' * (count != 1)}." if count else "no problems."))


def _not_published(files: tuple[object, ...], caveat: str = "", err: bool = False) -> None:
    """`check`'s list of the files that stay private, and why."""
    if files:
        _echo(f"Not published{caveat} (a file beside the chapters is published when a published chapter shows or "
              "links to it, or it is a cover; put files to publish as they are in static/):", err=err)
        for file in files:
            _echo(f"  {file}", err=err)


@main.group()
def new() -> None:
    """Create a story or chapter file with the right front matter."""


@new.command("story")
@click.argument("slug")
@click.option("--title", help="The story's title (default: from SLUG).")
@click.option("--site", "site_dir", default=".", type=click.Path(file_okay=False, path_type=Path),
              help="The site folder (default: the current folder).")
def new_story(slug: str, title: str | None, site_dir: Path) -> None:
    """Create content/SLUG/story.md."""
    from generator.scaffold import new_story as create

    try:
        path = create(site_dir, slug, title)
    except SerialistError as exc:
        _fail(exc)
        return
    _echo(f"Created {path}")


@new.command("chapter")
@click.argument("story")
@click.option("--title", help="The chapter's title.")
@click.option("--site", "site_dir", default=".", type=click.Path(file_okay=False, path_type=Path),
              help="The site folder (default: the current folder).")
def new_chapter(story: str, title: str | None, site_dir: Path) -> None:
    """Create the next chapter file of content/STORY/ (as a draft dated today).

    A one-shot content/STORY.md is first made a story folder with its text as chapter 1, at the same address."""
    from generator.scaffold import new_chapter as create

    try:
        path = create(site_dir, story, title, say=click.echo)
    except SerialistError as exc:
        _fail(exc)
        return
    _echo(f"Created {path}")


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def init(directory: Path) -> None:
    """Start a new site in DIRECTORY: settings, an example story and a GitHub Pages workflow.

    DIRECTORY may be new, empty, or an existing folder such as a fresh clone;
    no file that is already there is overwritten (a .gitignore gets the lines
    it lacks).
    """
    from generator.init import init_site

    try:
        started = init_site(directory)
    except SerialistError as exc:
        _fail(exc)
        return
    for path in started.written:
        _echo(f"Created {path}")
    if started.gitignore is not None:
        _echo(f"Added to {started.gitignore}: {', '.join(started.ignored)}" if started.ignored
                   else f"Kept {started.gitignore}: it already keeps the build's files out of git")
    _echo(f"\nNext: edit {directory / 'site.toml'}, run `serialist build {directory}`, and open "
               f"{directory / 'output' / 'index.html'} in a browser.")


@main.command()
@SITE_DIR
@click.option("--remote", default="origin", show_default=True, metavar="NAME",
              help="The git remote to push the branch to.")
@click.option("--branch", default="gh-pages", show_default=True, metavar="NAME",
              help="The branch that receives the built site (it is replaced by the output each time).")
@click.option("--no-push", is_flag=True, help="Commit to the branch but do not push it.")
@click.option("--message", "-m", metavar="MSG", help="The commit message (default: names the source commit).")
@click.option("--base-url", metavar="URL", help="Absolute URL of the published site (overrides site.toml).")
@click.option("--output", "-o", type=click.Path(file_okay=False, path_type=Path),
              help="Output folder to build into (default: SITE_DIR/output).")
@click.option("--overwrite-branch", is_flag=True,
              help="Let --branch name main, master, the remote's default branch or one of your work's "
                   "history: its files are replaced by the built site.")
@click.option("--allow-dirty", is_flag=True,
              help="Publish even when content/, site.toml, themes/ or static/ have changes not committed "
                   "to git.")
@click.pass_context
def deploy(ctx: click.Context, site_dir: Path, remote: str, branch: str, no_push: bool, message: str | None,
           base_url: str | None, output: Path | None, overwrite_branch: bool, allow_dirty: bool) -> None:
    """Build the site in SITE_DIR and publish it on the gh-pages branch of its git repository.

    Only published chapters go out: no drafts, nothing dated in the future.
    The sources must be committed (content/, site.toml, themes/, static/), unless --allow-dirty.
    Your working tree, index and other branches are not touched.
    """
    from generator.deploy import DeployOptions, deploy as run_deploy
    from generator.errors import UsageError

    options = DeployOptions(output=output or site_dir / "output", remote=remote, branch=branch,
                            push=not no_push, message=message, base_url=base_url,
                            overwrite_branch=overwrite_branch, allow_dirty=allow_dirty)
    try:
        if overwrite_branch and ctx.get_parameter_source("branch") != click.core.ParameterSource.COMMANDLINE:
            raise UsageError(f"--overwrite-branch replaces the files of the branch you name: name it too, "
                             f"as in `--branch {branch} --overwrite-branch`")
        result = run_deploy(site_dir, options)
    except SerialistError as exc:
        _fail(exc)
        return
    for warning in result.build.warnings:
        _echo(str(warning), err=True)
    if result.uncommitted:
        from generator.deploy import list_changes

        count = len(result.uncommitted)
        _echo(f"warning: published with {count} file{'s' * (count != 1)} not committed to git "
              f"(--allow-dirty):{list_changes(result.uncommitted)}", err=True)
    _echo(result.build.summary(options.output))
    what = (f"Committed {result.commit[:12]} to `{branch}` ({result.files} files)" if result.committed
            else f"`{branch}` already has this site ({result.commit[:12]}); nothing new to commit")
    _echo(what)
    if result.pushed:
        _echo(f"Pushed `{branch}` to `{remote}`.")
    else:
        _echo(f"Not pushed (--no-push); push it with `git push {remote} {branch}`.")


def _interrupt_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@main.command()
@SITE_DIR
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. 0.0.0.0 shows the site, drafts included, to your whole network.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on; 0 picks a free one.")
@click.option("--no-drafts", is_flag=True, help="Hide chapters marked `draft: true` (shown by default here).")
@click.option("--future", is_flag=True, help="Show chapters dated in the future.")
@click.option("--poll", is_flag=True, help="Poll for changes (Docker, WSL, network drives) instead of OS events.")
def serve(site_dir: Path, host: str, port: int, no_drafts: bool, future: bool, poll: bool) -> None:
    """Serve SITE_DIR locally and reload the browser on every save."""
    import signal
    import warnings
    from functools import partial

    from generator.serve import Console, ServeOptions, serve as run_serve

    # watchdog's harmless notice when a new folder (the Markdown cache's) gets its watch twice.
    warnings.filterwarnings("ignore", message=r"Callback with id .* already exists for watch",
                            category=RuntimeWarning, module=r"watchdog\.")

    options = ServeOptions(site=site_dir, host=host, port=port, drafts=not no_drafts, future=future, poll=poll)
    # Ctrl-C and `kill` stop cleanly, even when started from a script that ignores SIGINT in background jobs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    try:
        run_serve(options, Console(info=_echo, error=partial(_echo, err=True)))
    except KeyboardInterrupt:
        _echo("Stopped.")
    except SerialistError as exc:
        _fail(exc)


def run() -> None:
    """The `serialist` program: `main`, then out of the process at once. Whatever a command makes is written
    and closed by the time it returns, so the interpreter's teardown of every object it still holds (tens of
    milliseconds after building a long serial) would only keep the author waiting.

    The cyclic garbage collector runs after every `GC_FIRST_THRESHOLD` objects it tracks, rather than every 700:
    a build makes hundreds of thousands of short-lived ones (tokens, template contexts), nearly all freed
    without it, and at 700 it ran some 60 times in the main process of a 300-chapter build (4 times at 10,000),
    for about 9 ms of its 0.4 s."""
    gc.set_threshold(GC_FIRST_THRESHOLD, *gc.get_threshold()[1:])
    try:
        main()
        status: object = 0
    except SystemExit as done:
        status = done.code
    if status is not None and not isinstance(status, int):  # what `sys.exit("message")` does
        print(status, file=sys.stderr)
        status = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that went away, a stream that was closed
            pass
    os._exit(status or 0)
