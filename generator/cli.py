"""The command line: parses arguments and calls the library; nothing else."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from generator import __version__
from generator.errors import ContentError, SerialistError


def _fail(exc: SerialistError) -> None:
    if isinstance(exc, ContentError):
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        count = len(exc.problems)
        click.echo(f"Build failed: {count} error{'s' * (count != 1)}. The previous output is unchanged.", err=True)
    else:
        click.echo(f"error: {exc}", err=True)
    sys.exit(1)


SITE_DIR = click.argument("site_dir", default=".", type=click.Path(file_okay=False, path_type=Path))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="serialist")
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
def build(site_dir: Path, output: Path | None, drafts: bool, future: bool, base_url: str | None,
          quiet: bool) -> None:
    """Build the site in SITE_DIR (default: the current folder)."""
    from generator.build import build as run_build
    from generator.config import BuildOptions

    output = output or site_dir / "output"
    options = BuildOptions(output=output, drafts=drafts, future=future, base_url=base_url, quiet=quiet)
    try:
        result = run_build(site_dir, options)
    except SerialistError as exc:
        _fail(exc)
        return
    for warning in result.warnings:
        click.echo(str(warning), err=True)
    if not quiet:
        click.echo(result.summary(output))


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
    click.echo(f"Created {path}")


@new.command("chapter")
@click.argument("story")
@click.option("--title", help="The chapter's title.")
@click.option("--site", "site_dir", default=".", type=click.Path(file_okay=False, path_type=Path),
              help="The site folder (default: the current folder).")
def new_chapter(story: str, title: str | None, site_dir: Path) -> None:
    """Create the next chapter file of content/STORY/ (as a draft dated today)."""
    from generator.scaffold import new_chapter as create

    try:
        path = create(site_dir, story, title)
    except SerialistError as exc:
        _fail(exc)
        return
    click.echo(f"Created {path}")
