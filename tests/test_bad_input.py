"""Bad input: every error names the file and line, the build exits non-zero, and the previous output survives."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import STORY, chapter, run_cli, tree_bytes

GOOD = {
    "site.toml": 'title = "T"\nbase_url = "https://example.org/"\n',
    "content/s/story.md": STORY,
    "content/s/01-one.md": chapter("One"),
}


def build_ok(site: Path) -> dict[str, bytes]:
    run_cli("build", site, check=True)
    return tree_bytes(site / "output")


def break_and_build(site: Path, files: dict[str, str | bytes]) -> str:
    """Build once cleanly, write the broken `files`, build again; return stderr of the failed build."""
    before = build_ok(site)
    for name, content in files.items():
        path = site / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    result = run_cli("build", site)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert tree_bytes(site / "output") == before, "a failed build changed the previous output"
    return result.stderr


CASES = [
    pytest.param({"content/s/02-two.md": "---\ntitle: Two\ndate: 2025-01-02\ntags: [a, b\n---\nText\n"},
                 "content/s/02-two.md", 4, "invalid YAML", id="malformed-yaml"),
    pytest.param({"content/s/02-two.md": "---\ntitle: Two\ndate: 2025-01-02\nwarnings: 5\n---\nText\n"},
                 "content/s/02-two.md", 4, "must be a list", id="wrong-type"),
    pytest.param({"content/s/story.md": "---\ntitle: S\nrating: Teen\n---\nSummary\n"},
                 "content/s/story.md", 3, "Teen And Up Audiences", id="unknown-rating"),
    pytest.param({"content/s/story.md": "---\ntitle: S\nstatus: finished\n---\nSummary\n"},
                 "content/s/story.md", 3, "ongoing, complete, hiatus, abandoned", id="unknown-status"),
    pytest.param({"content/s/02-two.md": "---\ntitle: Two\n---\nText\n"},
                 "content/s/02-two.md", 1, "no `date`", id="missing-date"),
    pytest.param({"content/s/02-two.md": "---\ntitle: Two\ndate: 2025-01-02\nnumber: 1\n---\nText\n"},
                 "content/s/02-two.md", 4, "01-one.md", id="duplicate-number"),
    pytest.param({"content/s/02-two.md": "---\ntitle: Two\ndate: 2025-01-02\nslug: 01-one\n---\nText\n"},
                 "content/s/02-two.md", 4, "01-one.md", id="duplicate-slug"),
    pytest.param({"content/s/02-two.md": "---\ntitle: Two\ndate: 2025-01-02\nslug: ../x\n---\nText\n"},
                 "content/s/02-two.md", 4, "unsafe slug", id="unsafe-slug-dotdot"),
    pytest.param({"content/s/02-two.md": "---\ntitle: Two\ndate: 2025-01-02\nslug: /x\n---\nText\n"},
                 "content/s/02-two.md", 4, "unsafe slug", id="unsafe-slug-absolute"),
    pytest.param({"content/s/02-two.md": b"---\ntitle: Two\ndate: 2025-01-02\n---\nCaf\xe9 au lait\n"},
                 "content/s/02-two.md", 5, "not UTF-8", id="not-utf8"),
    pytest.param({"content/s/02-two.md": "---\ntitle: Two\ndate: 2025-13-45\n---\nText\n"},
                 "content/s/02-two.md", 3, "not a date", id="bad-date"),
    pytest.param({"content/s/02-two.md": "Just text, no front matter\n"},
                 "content/s/02-two.md", 1, "no front matter", id="no-front-matter"),
    pytest.param({"content/s/02-two.md": "---\ntitle: Two\ndate: 2025-01-02\nText\n"},
                 "content/s/02-two.md", None, "", id="unclosed-front-matter"),
    pytest.param({"content/s/story.md": "---\nrating: Mature\n---\nSummary\n"},
                 "content/s/story.md", 1, "no `title`", id="missing-title"),
    pytest.param({"site.toml": 'title = "T"\nbase_url = "https://example.org/"\nfeeds_items = 3\n'},
                 "site.toml", 3, "feed_items", id="unknown-config-key"),
    pytest.param({"site.toml": 'title = "T"\nbase_url = "https://example.org/"\nfeed_items = "x"\n'},
                 "site.toml", 3, "whole number", id="config-wrong-type"),
    pytest.param({"site.toml": 'title = "T\nbase_url = 1\n'},
                 "site.toml", 1, "invalid TOML", id="config-bad-toml"),
    pytest.param({"content/s/02-two.md": "---\ntitle: Two\ndate: 2025-01-02\ndraft: maybe\n---\nText\n"},
                 "content/s/02-two.md", 4, "`true` or `false`", id="draft-not-bool"),
]


@pytest.mark.parametrize(("files", "path", "line", "text"), CASES)
def test_error_names_file_and_line_and_keeps_output(make_site, files, path, line, text):
    site = make_site(GOOD)
    stderr = break_and_build(site, files)
    expected_path = str(site / path) if not str(site).startswith(str(Path.cwd())) else path
    where = re.escape(Path(path).name) + (rf":{line}:" if line is not None else "")
    assert re.search(where, stderr), stderr
    assert text in stderr, stderr
    assert expected_path.split("/")[-1] in stderr


def test_unclosed_front_matter_is_reported(make_site):
    site = make_site(GOOD)
    stderr = break_and_build(site, {"content/s/02-two.md": "---\ntitle: Two\ndate: 2025-01-02\nText\n"})
    assert "02-two.md:1: error:" in stderr
    assert "---" in stderr


def test_all_errors_are_reported_at_once(make_site):
    site = make_site(GOOD)
    stderr = break_and_build(site, {
        "content/s/02-two.md": "---\ntitle: Two\nwarnings: 5\n---\nText\n",
        "content/t/story.md": "---\ntitle: T\nrating: PG\n---\n",
    })
    assert "02-two.md:3: error:" in stderr  # warnings: 5
    assert "02-two.md:1: error:" in stderr  # no date
    assert "t/story.md:3: error:" in stderr  # rating
    assert "Build failed: 3 errors" in stderr


def test_unknown_config_key_suggests_closest(make_site):
    site = make_site({**GOOD, "site.toml": 'titel = "T"\n'})
    result = run_cli("build", site)
    assert result.returncode == 1
    assert "site.toml:1: error: unknown key `titel`. Did you mean `title`?" in result.stderr


def test_duplicate_number_names_both_files(make_site):
    site = make_site({**GOOD, "content/s/02-two.md": chapter("Two", extra="number: 1\n")})
    result = run_cli("build", site)
    assert result.returncode == 1
    assert "02-two.md:4: error:" in result.stderr and "01-one.md" in result.stderr


def test_bom_and_crlf_give_the_same_output(make_site):
    plain = make_site(GOOD, "plain")
    text = chapter("One", body="Line one.\n\nLine *two* -- with \"quotes\".")
    (plain / "content/s/01-one.md").write_text(text, "utf-8")
    weird = make_site(GOOD, "weird")
    (weird / "content/s/01-one.md").write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    (weird / "content/s/story.md").write_bytes(STORY.replace("\n", "\r\n").encode())
    assert build_ok(plain) == build_ok(weird)


def test_keeps_git_and_cname_in_output(make_site):
    site = make_site(GOOD)
    build_ok(site)
    (site / "output/.git").mkdir()
    (site / "output/.git/HEAD").write_text("ref: refs/heads/gh-pages\n")
    (site / "output/CNAME").write_text("fiction.example.org\n")
    (site / "output/notes-of-mine.txt").write_text("mine")
    files = build_ok(site)
    assert files[".git/HEAD"] == b"ref: refs/heads/gh-pages\n"
    assert files["CNAME"] == b"fiction.example.org\n"
    assert files["notes-of-mine.txt"] == b"mine"


def test_removed_chapter_page_is_removed(make_site):
    site = make_site({**GOOD, "content/s/02-two.md": chapter("Two", "2025-01-02")})
    assert "s/02-two/index.html" in build_ok(site)
    (site / "content/s/02-two.md").unlink()
    assert "s/02-two/index.html" not in build_ok(site)


@pytest.mark.parametrize("output", [".", "content", "content/out", ".."])
def test_refuses_dangerous_output_folders(make_site, output):
    site = make_site(GOOD)
    before = tree_bytes(site)
    result = run_cli("build", site, "--output", site / output)
    assert result.returncode == 1
    assert "error: the output folder" in result.stderr
    assert tree_bytes(site) == before


def test_content_is_never_modified(make_site):
    site = make_site(GOOD)
    before = tree_bytes(site / "content")
    build_ok(site)
    assert tree_bytes(site / "content") == before


EVIL = "</script><script>alert(1)</script>"


def test_front_matter_values_are_escaped_everywhere(make_site):
    site = make_site({
        **GOOD,
        "content/s/story.md": f'---\ntitle: "{EVIL}"\nauthor: "<b>me</b>"\ntags: ["{EVIL}"]\n---\nSummary\n',
        "content/s/01-one.md": f'---\ntitle: "{EVIL}"\ndate: 2025-01-01\nsummary: "{EVIL}"\n'
                               f'warnings: ["{EVIL}"]\n---\nText\n',
    })
    files = build_ok(site)
    for name, data in files.items():
        if name.endswith((".html", ".xml")):
            assert b"<script>alert(1)" not in data, name
    assert b"&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in files["s/index.html"]


@pytest.mark.parametrize("raw", [b"a\x01b\x7fc\r\nd\te\x0b", "a\x01b\x7fc\r\nd\te\x0b \u2014 \u0085\ufdd0\uffff".encode()])
def test_code_points_html_forbids_are_dropped_from_ascii_and_other_text(tmp_path, raw):
    from generator.errors import ProblemLog
    from generator.load import read_text

    path = tmp_path / "c.md"
    path.write_bytes(raw)
    text = read_text(path, ProblemLog())
    assert text is not None and text.startswith("abc\nd\te")
    assert not any(ord(c) < 32 and c not in "\n\t" or 0x7f <= ord(c) <= 0x9f or c in "\ufdd0\uffff" for c in text)


THEMED = 'title = "T"\nbase_url = "https://example.org/"\ntheme = "mine"\n'


@pytest.mark.parametrize(("template", "text", "line"), [
    # A syntax error in a template this site never uses (it has no series) still names its file and line.
    ("series.html", '{% extends "default/series.html" %}\n{% block main %}\n{% if %}\n{% endblock %}\n', 3),
    # A runtime error on a chapter page, met in a worker process while many pages are made at once.
    ("chapter.html", '{% extends "default/chapter.html" %}\n{% block main %}\n{{ no_such_thing.title }}\n'
                     '{% endblock %}\n', 3),
])
def test_a_broken_theme_template_is_named_with_its_line(make_site, template, text, line):
    files = {"site.toml": 'title = "T"\nbase_url = "https://example.org/"\n', "content/s/story.md": STORY}
    files.update({f"content/s/{n:03d}.md": chapter(f"C{n}") for n in range(1, 251)})  # past PARALLEL_PAGES
    site = make_site(files)
    run_cli("build", site, check=True)
    before = tree_bytes(site / "output")
    (site / "site.toml").write_text(THEMED)
    (site / "themes/mine/templates").mkdir(parents=True)
    (site / "themes/mine/templates" / template).write_text(text)
    result = run_cli("build", site)
    assert result.returncode != 0
    assert f"{template}:{line}" in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert tree_bytes(site / "output") == before
