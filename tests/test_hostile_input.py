"""Hostile or unlucky input to the load stage: names with control characters, symbolic links out of the site,
terminal escapes in messages, dates no later stage can show, bad `site.toml` values, names too long to write.

Each is an error naming the file (and line) that `build` and `check` report alike, without a traceback; a
failed build leaves the previous output as it was.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable

import pytest

from conftest import STORY, chapter, run_cli, tree_bytes

GOOD = {
    "site.toml": 'title = "T"\nbase_url = "https://example.org/"\n',
    "content/s/story.md": STORY,
    "content/s/01-one.md": chapter("One"),
}
# What a terminal acts on; a line break between messages is the only one allowed in what is printed.
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def errors(stderr: str) -> list[str]:
    """The error lines of `stderr`, with the process named by /proc/self (which each run is another)."""
    return [re.sub(r"/proc/\d+/", "/proc/self/", line) for line in stderr.splitlines() if ": error: " in line]


def refused(site: Path, change: Callable[[], object], *args: str) -> str:
    """Build `site`, make `change`, and see `build` (with `args`) fail and `check` report the same errors;
    return the failed build's stderr."""
    run_cli("build", site, *args, check=True)
    before = tree_bytes(site / "output")
    change()
    result = run_cli("build", site, *args)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert not RAW_CONTROL.search(result.stderr), result.stderr
    assert tree_bytes(site / "output") == before, "a failed build changed the previous output"
    checked = run_cli("check", site, *args)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "Traceback" not in checked.stderr and not RAW_CONTROL.search(checked.stderr), checked.stderr
    assert errors(checked.stderr) == errors(result.stderr) != []
    return result.stderr


def touch(path: Path, text: str | bytes = b"data") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())


# --- What is printed shows control characters escaped ---------------------------------------------------------------

def test_problems_and_paths_are_escaped_for_the_terminal(tmp_path):
    from generator.errors import Problem, display_path, printable

    assert display_path(tmp_path / "a\x1b[2Jb") == str(tmp_path / r"a\x1b[2Jb")
    assert str(Problem(Path("/x/\x9b1m.md"), 3, "`title`: `\x1b]8;;evil\x07` \u2028")) == \
        r"/x/\x9b1m.md:3: error: `title`: `\x1b]8;;evil\x07` \u2028"
    assert printable(printable("a\x1bb")) == r"a\x1bb"
    assert printable("one\ntwo\x07", keep="\n") == "one\ntwo\\x07"


# --- Names with control characters ----------------------------------------------------------------------------------

NAMES = [
    pytest.param("\x1b]0;title\x07", r"\x1b]0;title\x07", id="escape-sequence"),
    pytest.param("a\x7fb", r"a\x7fb", id="DEL"),
    pytest.param("a\x85b", r"a\x85b", id="C1-next-line"),
    pytest.param("a\x9bb", r"a\x9bb", id="C1-CSI"),
    pytest.param("a\u2028b", r"a\u2028b", id="line-separator"),
    pytest.param("a\u2029b", r"a\u2029b", id="paragraph-separator"),
    pytest.param("a\x1cb\x1fc", r"a\x1cb\x1fc", id="information-separators"),
    pytest.param("a\nb", r"a\x0ab", id="line-break"),
    pytest.param(os.fsdecode(b"caf\xe9"), r"caf\xe9", id="not-utf8"),
]

ONESHOT = STORY.replace("---\nA", "date: 2025-01-01\n---\nA")
PLACES = [
    pytest.param(lambda site, n: touch(site / f"content/{n}/story.md", STORY), id="story-folder"),
    pytest.param(lambda site, n: touch(site / f"content/s/02-{n}.md", chapter("Two", "2025-01-02")), id="chapter"),
    pytest.param(lambda site, n: touch(site / f"content/s/map-{n}.png"), id="asset"),
    pytest.param(lambda site, n: touch(site / f"content/s/images/{n}/map.png"), id="asset-folder"),
    pytest.param(lambda site, n: touch(site / f"content/one-{n}.md", ONESHOT), id="one-shot"),
    pytest.param(lambda site, n: (touch(site / "content/one.md", ONESHOT), touch(site / f"content/one.assets/{n}.png")),
                 id="one-shot-file"),
]


@pytest.mark.parametrize(("name", "shown"), NAMES)
@pytest.mark.parametrize("place", PLACES)
def test_a_name_with_control_characters_is_refused_and_shown_escaped(make_site, place, name, shown):
    site = make_site(GOOD)
    stderr = refused(site, lambda: place(site, name))
    line = next(line for line in errors(stderr) if shown in line)
    assert "rename it" in line, stderr


# --- Symbolic links -------------------------------------------------------------------------------------------------

def _outside(site: Path) -> Path:
    """A folder beside the site, with a secret file, a chapter, a story folder and a theme in it."""
    outside = site.parent / "outside"
    touch(outside / "secret.txt", "SECRET-CONTENTS")
    touch(outside / "chapter.md", chapter("Secret", body="SECRET-CONTENTS"))
    touch(outside / "story/story.md", STORY)
    touch(outside / "story/1.md", chapter(body="SECRET-CONTENTS"))
    touch(outside / "files/secret.txt", "SECRET-CONTENTS")
    touch(outside / "site.toml", 'title = "SECRET-CONTENTS"\n')
    touch(outside / "content/x/story.md", STORY)
    touch(outside / "content/x/1.md", chapter(body="SECRET-CONTENTS"))
    touch(outside / "theme/templates/chapter.html", "SECRET-CONTENTS")
    touch(outside / "theme/static/style.css", "SECRET-CONTENTS")
    return outside


def _link(site: Path, name: str, target: Path) -> None:
    path = site / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir() and not path.is_symlink():
        os.rename(path, path.with_name(path.name + "-was"))
    elif path.exists():
        path.unlink()
    path.symlink_to(target)


THEMED = 'title = "T"\nbase_url = "https://example.org/"\ntheme = "mine"\n'
LINKS = [
    pytest.param("content/s/passwd.txt", "secret.txt", id="asset-file"),
    pytest.param("content/s/02-two.md", "chapter.md", id="chapter"),
    pytest.param("content/s/story.md", "story/story.md", id="story-md"),
    pytest.param("content/t", "story", id="story-folder"),
    pytest.param("content/one.md", "chapter.md", id="one-shot"),
    pytest.param("content/s/images", "files", id="asset-folder"),
    pytest.param("content", "content", id="content-folder"),
    pytest.param("themes/mine/templates/chapter.html", "theme/templates/chapter.html", id="theme-template"),
    pytest.param("themes/mine/static/style.css", "theme/static/style.css", id="theme-static-file"),
    pytest.param("themes/mine/static/more", "theme/static", id="theme-folder-inside"),
    pytest.param("themes/mine", "theme", id="theme-folder"),
]


@pytest.mark.parametrize(("link", "target"), LINKS)
def test_a_symbolic_link_out_of_the_site_is_never_read(make_site, link, target):
    site = make_site({**GOOD, "content/one.assets/x.png": b"png"})
    if link.startswith("themes/"):
        (site / "site.toml").write_text(THEMED)
        touch(site / "themes/mine/templates/chapter.html", '{% extends "default/chapter.html" %}\n')
        touch(site / "themes/mine/static/style.css", "body {}\n")
    outside = _outside(site)
    stderr = refused(site, lambda: _link(site, link, outside / target))
    line = next(line for line in errors(stderr) if Path(link).name in line and "outside the site" in line)
    assert str(outside / target) in line, stderr
    assert "SECRET-CONTENTS" not in stderr


def test_a_link_to_the_environment_of_the_process_is_not_published(make_site):
    site = make_site(GOOD)
    stderr = refused(site, lambda: _link(site, "content/s/environ.txt", Path("/proc/self/environ")))
    assert any("environ.txt: error: this symbolic link points at /proc/self/environ, outside the site" in line
               for line in errors(stderr)), stderr


def test_an_asset_folder_link_on_the_way_out_through_the_site_is_refused(make_site):
    """A link inside the site to a folder inside the site is followed, but a link in there is checked too."""
    site = make_site(GOOD)
    outside = _outside(site)
    touch(site / "shared/pic.png", b"png")

    def change() -> None:
        (site / "shared/leak.txt").symlink_to(outside / "secret.txt")
        (site / "content/s/shared").symlink_to(site / "shared")

    stderr = refused(site, change)
    assert "leak.txt: error: this symbolic link points at" in stderr


def test_links_inside_the_site_are_followed_and_rebuilt_when_their_target_changes(make_site):
    site = make_site(GOOD)
    touch(site / "shared/images/pic.png", b"one")
    touch(site / "shared/logo.png", b"logo")
    touch(site / "drafts/t/story.md", STORY.replace("A Story", "Linked Story"))
    touch(site / "drafts/t/1.md", chapter("Linked"))
    touch(site / "content/s/02-two.md", chapter("Two", body="![A picture](images/pic.png) and [the logo](logo.png)"))
    (site / "content/s/images").symlink_to(Path("../../shared/images"))  # relative, as users make them
    (site / "content/s/logo.png").symlink_to(site / "shared/logo.png")
    (site / "content/t").symlink_to(site / "drafts/t")
    result = run_cli("build", site)
    assert result.returncode == 0, result.stderr
    files = tree_bytes(site / "output")
    assert files["s/images/pic.png"] == b"one" and files["s/logo.png"] == b"logo"
    assert b"Linked Story" in files["t/index.html"]
    (site / "shared/images/pic.png").write_bytes(b"two")
    result = run_cli("build", site)
    assert "Up to date" not in result.stdout and (site / "output/s/images/pic.png").read_bytes() == b"two"


def test_a_loop_of_folder_links_ends_with_an_error(make_site):
    site = make_site(GOOD)

    def change() -> None:
        (site / "content/s/a").mkdir()
        (site / "content/s/b").mkdir()
        (site / "content/s/a/to-b").symlink_to(site / "content/s/b")
        (site / "content/s/b/to-a").symlink_to(site / "content/s/a")

    stderr = refused(site, change)
    assert "(a loop)" in stderr


# --- Names too long to write ----------------------------------------------------------------------------------------

def test_names_too_long_are_errors_at_load_naming_the_file(make_site):
    site = make_site(GOOD)
    folder, oneshot, asset = "f" * 255, "o" * 252 + ".md", "a" * 250 + ".png"

    def change() -> None:
        touch(site / f"content/{folder}/story.md", STORY)
        touch(site / f"content/{oneshot}", ONESHOT)
        touch(site / "content/s/02-two.md", chapter("Two", "2025-01-02", extra=f"slug: {'s' * 300}\n"))
        touch(site / f"content/s/{asset}", b"png")

    stderr = refused(site, change)
    lines = errors(stderr)
    assert any(f"{folder}/story.md: error: the story's URL name is 255 bytes long" in line for line in lines)
    assert any(f"{oneshot}: error: the story's URL name is 252 bytes long" in line for line in lines)
    assert any("02-two.md:4: error: the chapter's URL name is 300 bytes long" in line and "`slug:`" in line
               for line in lines)
    assert any(f"{asset}: error: the name of the file is 254 bytes long" in line for line in lines)
    assert all("at most 200" in line for line in lines) and len(lines) == 4
    assert "File name too long" not in stderr


def test_a_path_too_long_is_an_error_and_names_as_long_as_allowed_build(make_site):
    site = make_site({**GOOD, "content/s/02-two.md": chapter("Two", "2025-01-02", extra=f"slug: {'é' * 100}\n"),
                      f"content/{'g' * 200}/story.md": STORY, f"content/{'g' * 200}/1.md": chapter()})
    deep = "/".join(["d" * 199] * 6)
    stderr = refused(site, lambda: touch(site / f"content/s/{deep}/x.png"))
    size = len(f"s/{deep}/x.png")
    assert size > 1024 and f"x.png: error: this file would be published at a path of {size} bytes" in stderr
    assert "at most 1024" in stderr and len(errors(stderr)) == 1, stderr


# --- Dates every later stage can show -------------------------------------------------------------------------------

@pytest.mark.parametrize(("timezone", "date", "line"), [
    ("Europe/Berlin", "0001-01-01", 3),
    ("UTC", "9999-12-31T23:59:59-12:00", 3),
    ("Pacific/Kiritimati", "0999-12-31 23:00", 3),
    ("Etc/GMT+12", "9999-12-31", 4),
])
def test_a_date_out_of_range_is_an_error_with_its_line(make_site, timezone, date, line):
    site = make_site({**GOOD, "site.toml": f'base_url = "https://example.org/"\ntimezone = "{timezone}"\n'})
    # The first and last days that are accepted build, in the timezones furthest from UTC, e-books included.
    (site / "content/s/02-two.md").write_text(chapter("Two", "1000-01-01", extra="updated: 9998-12-31 23:59:59\n"))
    text = chapter("Two", date) if line == 3 else chapter("Two", "2025-01-02", extra=f"updated: {date}\n")
    stderr = refused(site, lambda: (site / "content/s/02-two.md").write_text(text), "--future")
    assert f"02-two.md:{line}: error:" in stderr and "years 1000 to 9998" in stderr, stderr


# --- site.toml ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("toml", "line", "text"), [
    ('title = "\\u0001"', 2, "`title` has a control character (\\x01)"),
    ('author = "A\\u0085B"', 2, "`author` has a control character (\\x85)"),
    ('description = "one\\u2028two"', 2, "`description` has a control character (\\u2028)"),
    ('description = "a\\rb"', 2, "`description` has a control character (\\x0d)"),
    ('language = "en\\uffff"', 2, "`language` has a character that is not text"),
    ('cname = "https://fiction.example.org/path\\nX"', 2, 'write `cname = "fiction.example.org"`'),
    ('cname = "fiction.example.org:8080"', 2, 'write `cname = "fiction.example.org"`'),
    ('cname = "my site"', 2, 'write `cname = "fiction.example.org"`, not `my site`'),
    ('theme = "../../elsewhere"', 2, "`theme` must be the name of a folder in themes/"),
    ('base_url = "https://[example.org/"', 2, "`base_url` must be an absolute http(s) URL"),
])
def test_a_bad_setting_is_an_error_with_its_key_and_line(make_site, toml, line, text):
    site = make_site(GOOD)
    stderr = refused(site, lambda: (site / "site.toml").write_text(f"feed_items = 20\n{toml}\n"))
    assert f"site.toml:{line}: error: " in stderr and text in stderr, stderr


def test_a_description_may_have_tabs_and_line_breaks_and_a_cname_may_be_international(make_site):
    site = make_site({**GOOD, "site.toml": 'title = "T"\nbase_url = "https://example.org/"\n'
                                           'description = """One\tline.\nAnother."""\ncname = "Bücher.example"\n'})
    result = run_cli("build", site)
    assert result.returncode == 0, result.stderr
    assert (site / "output/CNAME").read_bytes() == b"xn--bcher-kva.example\n"


def test_a_site_toml_that_is_a_folder_is_an_error(make_site):
    site = make_site(GOOD)

    def change() -> None:
        (site / "site.toml").unlink()
        (site / "site.toml").mkdir()

    stderr = refused(site, change)
    assert "site.toml: error: site.toml is a folder" in stderr


def test_a_base_url_option_with_a_control_character_is_refused_and_shown_escaped(make_site):
    site = make_site(GOOD)
    result = run_cli("build", site, "--base-url", "https://example.org/\x1b[31mred/")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "\x1b" not in result.stderr and r"\x1b" in result.stderr, result.stderr


def test_a_site_toml_linked_from_outside_the_site_is_never_read(make_site):
    site = make_site(GOOD)
    outside = _outside(site)
    stderr = refused(site, lambda: _link(site, "site.toml", outside / "site.toml"))
    assert f"site.toml: error: this symbolic link points at {outside / 'site.toml'}, outside the site" in stderr
    assert "SECRET-CONTENTS" not in stderr
