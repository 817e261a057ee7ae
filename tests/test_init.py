"""`serialist init DIR`: a new site that builds cleanly, and never a file overwritten."""

from __future__ import annotations

import fnmatch
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from conftest import REPO, run_cli, tree_bytes
from generator.config import load_config
from generator.errors import UsageError
from generator.init import init_site, starter_files, target_name

EXPECTED = [
    ".github/workflows/pages.yml",
    ".gitignore",
    "content/the-night-bakery/01-flour-before-dawn.md",
    "content/the-night-bakery/02-paid-in-buttons.md",
    "content/the-night-bakery/story.md",
    "site.toml",
]
STORY = "content/the-night-bakery"


def files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_init_writes_a_new_folder(tmp_path: Path) -> None:
    site = tmp_path / "new" / "site"
    result = run_cli("init", site)
    assert result.returncode == 0, result.stderr
    assert files_under(site) == EXPECTED
    for name in EXPECTED:
        assert f"Created {site / name}" in result.stdout


def test_init_in_an_empty_folder_needs_no_force(tmp_path: Path) -> None:
    result = run_cli("init", ".", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert files_under(tmp_path) == EXPECTED


def test_init_beside_other_files_leaves_them_alone(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("my repo\n")
    (tmp_path / "content" / "other").mkdir(parents=True)
    (tmp_path / "content" / "other" / "notes.txt").write_text("keep\n")
    result = run_cli("init", tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "README.md").read_text() == "my repo\n"
    assert (tmp_path / "content" / "other" / "notes.txt").read_text() == "keep\n"


def test_init_refuses_to_overwrite_and_names_every_file(tmp_path: Path) -> None:
    (tmp_path / "site.toml").write_text('title = "Mine"\n')
    chapter = tmp_path / STORY / "02-paid-in-buttons.md"
    chapter.parent.mkdir(parents=True)
    chapter.write_text("my own chapter\n")
    before = tree_bytes(tmp_path)
    result = run_cli("init", tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "site.toml" in result.stderr
    assert "02-paid-in-buttons.md" in result.stderr
    assert "story.md" not in result.stderr  # only the files in the way are named
    assert tree_bytes(tmp_path) == before  # nothing written, nothing changed


def test_init_refuses_when_a_file_is_where_a_folder_goes(tmp_path: Path) -> None:
    (tmp_path / "content").write_text("not a folder\n")
    with pytest.raises(UsageError) as caught:
        init_site(tmp_path)
    assert str(tmp_path / "content") in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["content"]


def test_init_refuses_a_file_as_the_site_folder(tmp_path: Path) -> None:
    target = tmp_path / "site"
    target.write_text("x")
    result = run_cli("init", target)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr


def test_new_site_builds_with_only_the_base_url_warning(tmp_path: Path) -> None:
    site = tmp_path / "site"
    init_site(site)
    result = run_cli("build", site, check=True)
    warnings = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1, result.stderr
    assert "warning" in warnings[0] and "base_url" in warnings[0]
    assert "Built 1 story, 2 chapters" in result.stdout


def test_new_site_builds_cleanly_with_a_base_url(tmp_path: Path) -> None:
    site = tmp_path / "site"
    init_site(site)
    result = run_cli("build", site, "--base-url", "https://user.github.io/repo", check=True)
    assert result.stderr == ""
    assert (site / "output" / "feed.xml").is_file()
    assert (site / "output" / "the-night-bakery" / "feed.xml").is_file()


def test_example_story_shows_notes_footnote_and_scene_break(tmp_path: Path) -> None:
    site = tmp_path / "site"
    init_site(site)
    run_cli("build", site, check=True)
    story = site / "output" / "the-night-bakery"
    pages = {name: (story / name / "index.html").read_text("utf-8")
             for name in ("01-flour-before-dawn", "02-paid-in-buttons")}
    first = pages["01-flour-before-dawn"]
    assert 'class="notes notes-before"' in first
    assert 'class="notes notes-after"' in first
    assert 'class="footnote-ref"' in first
    assert 'class="scene-break"' in first
    assert 'class="scene-break"' in pages["02-paid-in-buttons"]
    for page in pages.values():
        assert len(re.findall(r"<p>", page.split('class="chapter-text"', 1)[1])) >= 4  # a few paragraphs


def test_site_toml_explains_base_url_and_cname(tmp_path: Path) -> None:
    init_site(tmp_path)
    text = (tmp_path / "site.toml").read_text("utf-8")
    data = tomllib.loads(text)
    assert {"title", "author", "description", "language", "base_url"} <= set(data)
    assert data["base_url"] == ""
    assert "https://USER.github.io/REPO/" in text
    assert re.search(r'^#\s*base_url = "https://[a-z.]+\.[a-z]+/"', text, re.MULTILINE)  # a custom domain
    assert re.search(r'^#\s*cname = "', text, re.MULTILINE)
    assert "cname" not in data
    load_config(tmp_path)  # every key is one Serialist knows


def test_filling_in_base_url_and_cname_works(tmp_path: Path) -> None:
    init_site(tmp_path)
    settings = tmp_path / "site.toml"
    text = settings.read_text("utf-8")
    text = text.replace('base_url = ""', 'base_url = "https://fiction.example.org/"')
    text = re.sub(r'^#\s*cname = "[^"]*"', 'cname = "fiction.example.org"', text, flags=re.MULTILINE)
    settings.write_text(text, "utf-8")
    result = run_cli("build", tmp_path, check=True)
    assert result.stderr == ""
    assert (tmp_path / "output" / "CNAME").read_text() == "fiction.example.org\n"


def test_gitignore_keeps_build_products_out_of_git(tmp_path: Path) -> None:
    init_site(tmp_path)
    gitignore = (tmp_path / ".gitignore").read_text("utf-8")
    assert "output/" in gitignore and ".serialist-cache/" in gitignore
    run_cli("build", tmp_path, check=True)
    (tmp_path / ".serialist-cache").mkdir(exist_ok=True)
    (tmp_path / ".serialist-cache" / "x").write_text("cache")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=tmp_path,
                            capture_output=True, text=True, check=True).stdout.splitlines()
    assert sorted(line[3:] for line in status) == EXPECTED


def test_stored_names_map_to_dot_files() -> None:
    assert target_name("dot-gitignore") == ".gitignore"
    assert target_name("dot-github/workflows/pages.yml") == ".github/workflows/pages.yml"
    assert target_name("content/story/01-dot-matrix.md") == "content/story/01-dot-matrix.md"
    assert [f.path for f in starter_files()] == EXPECTED


def test_template_files_are_packaged() -> None:
    """Every template file matches the package-data glob (a dot-file would silently be left out)."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["generator"]
    folder = REPO / "generator" / "init-template"
    stored = files_under(folder)
    assert stored
    for name in stored:
        assert not any(part.startswith(".") for part in name.split("/")), name
        assert any(fnmatch.fnmatch(f"init-template/{name}", p.replace("**/", "*")) for p in patterns), name


GITHUB_GITIGNORE = "# Byte-compiled / optimized / DLL files\n__pycache__/\n*.py[cod]\n"


def test_init_adds_what_an_existing_gitignore_lacks(tmp_path: Path) -> None:
    """A clone of a repository made on GitHub often has a .gitignore: init keeps it and adds its own lines."""
    (tmp_path / ".gitignore").write_text(GITHUB_GITIGNORE + "/output/")  # one of ours already, no last newline
    result = run_cli("init", tmp_path)
    assert result.returncode == 0, result.stderr
    assert files_under(tmp_path) == EXPECTED
    text = (tmp_path / ".gitignore").read_text("utf-8")
    assert text.startswith(GITHUB_GITIGNORE + "/output/\n\n#")  # the last line ended, then a blank line
    added = [line for line in text[len(GITHUB_GITIGNORE + "/output/\n"):].splitlines() if line and line[0] != "#"]
    assert added == ["/.serialist-cache/", ".output.serialist-*"]
    assert f"Added to {tmp_path / '.gitignore'}: /.serialist-cache/, .output.serialist-*" in result.stdout
    assert f"Created {tmp_path / '.gitignore'}" not in result.stdout
    run_cli("build", tmp_path, check=True)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=tmp_path,
                            capture_output=True, text=True, check=True).stdout.splitlines()
    assert sorted(line[3:] for line in status) == EXPECTED  # no output, no cache, no spare output


def test_init_leaves_a_gitignore_that_has_every_line_as_it_is(tmp_path: Path) -> None:
    ours = next(f.data for f in starter_files() if f.path == ".gitignore")
    (tmp_path / ".gitignore").write_bytes(b"*.swp\n" + ours)
    result = run_cli("init", tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / ".gitignore").read_bytes() == b"*.swp\n" + ours
    assert "Kept" in result.stdout and "Added to" not in result.stdout


def test_init_refuses_a_gitignore_that_is_not_a_plain_file(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").mkdir()
    with pytest.raises(UsageError) as caught:
        init_site(tmp_path)
    assert ".gitignore" in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".gitignore"]
