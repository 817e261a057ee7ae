"""Themes: where templates and static files come from, and the Jinja2 environment.

A theme is a folder with `templates/` and `static/`. A site's own theme lives
in `<site>/themes/<name>/`; the built-in `default` theme ships inside the
package. A site's theme may have symbolic links, to what is inside the site
folder only. Templates are looked up in the chosen theme first, then in the
default theme, and `default/…` always names the default theme's file, so a
theme can override one template or `{% extends "default/base.html" %}`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from generator.config import SiteConfig
from generator.errors import ContentError, Problem
from generator.names import link_problem, walk_inside

if TYPE_CHECKING:
    import jinja2

DEFAULT_THEME = "default"


def builtin_themes_dir() -> Path:
    """The built-in themes: packaged as `generator._themes`, or `themes/` beside the package in a checkout."""
    checkout = Path(__file__).resolve().parent.parent / "themes"
    if (checkout / DEFAULT_THEME / "templates").is_dir():
        return checkout
    # Installed: `generator/_themes/` (no `__init__.py`, so not `importlib.resources` of its own:
    # a namespace package's `files()` is a MultiplexedPath whose str() is not a path).
    return Path(__file__).resolve().parent / "_themes"


@dataclass(frozen=True, slots=True)
class Theme:
    name: str
    folders: tuple[Path, ...]  # the chosen theme first, then the default

    @property
    def static_dirs(self) -> tuple[Path, ...]:
        return tuple(f / "static" for f in self.folders if (f / "static").is_dir())

    def files(self) -> list[Path]:
        """Every file that makes up the theme (for cache keys and the dev server)."""
        return sorted(p for f in self.folders for p in f.rglob("*") if p.is_file())


def find_theme(config: SiteConfig) -> Theme:
    default = builtin_themes_dir() / DEFAULT_THEME
    if config.theme == DEFAULT_THEME:
        return Theme(DEFAULT_THEME, (default,))
    own = config.root / "themes" / config.theme
    for candidate in (own, builtin_themes_dir() / config.theme):
        if (candidate / "templates").is_dir():
            if candidate == own:
                _check_links(own, config.root)
            return Theme(config.theme, (candidate, default))
    raise ContentError([Problem(config.config_path, None,
                                f"theme `{config.theme}` not found: expected a folder "
                                f"themes/{config.theme}/templates/ in the site, or use `theme = \"default\"`")])


def _check_links(folder: Path, root: Path) -> None:
    """Raise a ContentError for every symbolic link of the site's own theme `folder` (or on the way to it)
    that leads outside the site folder `root`, nowhere or into a loop: nothing outside the site is read."""
    real_root = root.resolve()
    problems: list[Problem] = []

    def refuse(path: Path, problem: str) -> None:
        problems.append(Problem(path, None, problem))

    for path in (folder.parent, folder):
        if (problem := link_problem(path, real_root)) is not None:
            refuse(path, problem)
    if not problems:
        for here, _, names in walk_inside(folder, real_root, refuse):
            for name in names:
                if (problem := link_problem(here / name, real_root)) is not None:
                    refuse(here / name, problem)
    if problems:
        raise ContentError(problems)


def _date(value: datetime | None, fmt: str = "%Y-%m-%d") -> str:
    return value.strftime(fmt) if value else ""


def _number(value: int) -> str:
    return f"{value:,}"


def _rfc822(value: datetime | None) -> str:
    from email.utils import format_datetime  # (a few milliseconds to import: only for a theme that uses it)

    return format_datetime(value) if value else ""


@functools.cache
def _quiet_bytecode_cache() -> type[jinja2.FileSystemBytecodeCache]:
    """Jinja2's bytecode cache in files, which a build never fails for: a compiled template that cannot be read
    or is damaged is compiled afresh, and one that cannot be written (a full disk, a read-only cache folder) is
    not kept. Either only costs compile time."""
    import jinja2

    class QuietBytecodeCache(jinja2.FileSystemBytecodeCache):
        def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
            try:
                super().load_bytecode(bucket)
            except Exception:  # noqa: BLE001 - unreadable or damaged (a bad pickle raises anything): not cached
                bucket.reset()

        def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
            try:
                super().dump_bytecode(bucket)
            except OSError:
                pass

    return QuietBytecodeCache


def make_environment(theme: Theme, bytecode_dir: Path | None = None, auto_reload: bool = True) -> jinja2.Environment:
    """The Jinja2 environment of `theme`; compiled templates are kept in `bytecode_dir` when given
    (keyed by each template's source, so an edited template is compiled afresh). Without `auto_reload`
    (one build) templates are not checked for changes on every page."""
    import jinja2

    loaders = [jinja2.FileSystemLoader(str(f / "templates")) for f in theme.folders]
    default = theme.folders[-1] / "templates"
    bytecode = None
    if bytecode_dir is not None:
        try:
            bytecode_dir.mkdir(parents=True, exist_ok=True)
            bytecode = _quiet_bytecode_cache()(str(bytecode_dir))
        except OSError:
            bytecode = None  # only costs compile time
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader([*loaders, jinja2.PrefixLoader({DEFAULT_THEME: jinja2.FileSystemLoader(str(default))})]),
        bytecode_cache=bytecode,
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=auto_reload,
    )
    env.filters["date"] = _date
    env.filters["rfc822"] = _rfc822
    env.filters["number"] = _number
    return env


# The templates pages are rendered with: a theme's own, or else the default theme's.
TEMPLATES = ("home.html", "404.html", "tags.html", "tag.html", "series_index.html", "series.html", "story.html",
             "work.html", "chapter.html", "alias.html")


def compile_into(theme: Theme, bytecode_dir: Path) -> None:
    """Compile the theme's templates into `bytecode_dir` (a Jinja2 bytecode cache), where the build, which
    does the same with an environment of its own, finds them (`parallel.ahead`: in a process of its own, while
    the build loads the site). Any error is left for the build, which meets it again, to report."""
    try:
        compile_templates(make_environment(theme, bytecode_dir, auto_reload=False))
    except Exception:  # noqa: BLE001
        pass


def compile_templates(env: jinja2.Environment) -> None:
    """Compile the theme's templates in this process, before the worker processes that make the pages share
    them, rather than once in each at its first page; raises the first error of the page templates. (Done
    again, it only lists them: the environment keeps them compiled.)

    The theme's other templates (the base page, the partials it includes and the macros it imports) are
    compiled too; one that does not compile is left for the page that uses it, if any, to report."""
    import jinja2

    for name in TEMPLATES:
        env.get_template(name)
    for name in env.list_templates(extensions=["html"]):
        if name not in TEMPLATES and not name.startswith(f"{DEFAULT_THEME}/"):
            try:
                env.get_template(name)
            except jinja2.TemplateError:
                pass


def template_problem(exc: jinja2.TemplateError, theme: Theme) -> Problem:
    """A template error as a Problem naming the template file and line."""
    import jinja2

    if isinstance(exc, jinja2.TemplateSyntaxError) and exc.filename:
        return Problem(Path(exc.filename), exc.lineno, f"template error: {exc.message}")
    tb = exc.__traceback__
    where: tuple[str, int] | None = None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith((".html", ".xml", ".txt")):
            where = (filename, tb.tb_lineno)
        tb = tb.tb_next
    if where:
        return Problem(Path(where[0]), where[1], f"template error: {exc}")
    return Problem(theme.folders[0], None, f"template error: {exc}")


def static_files(theme: Theme) -> dict[str, Path]:
    """Output path (under `assets/`) → source file; the chosen theme's files win over the default's."""
    found: dict[str, Path] = {}
    for folder in reversed(theme.static_dirs):
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                found["assets/" + path.relative_to(folder).as_posix()] = path
    return found
