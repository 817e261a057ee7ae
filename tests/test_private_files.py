"""Chapters in another form: `.markdown` and `.mdown` files are chapters; a `.txt` that is a chapter saved in
the wrong form is an error; a second copy of a chapter is a warning naming both, and is not published.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from conftest import STORY, chapter, run_cli, tree_bytes
from test_images import png, resolve

SECRET = "SECRET-OUTLINE-WORDS"
MAP, COVER, DRAFT_IMAGE, LATER_IMAGE = png(rgb=(1, 2, 3)), png(3, 4), png(rgb=(7, 8, 9)), png(rgb=(4, 4, 4))

SITE = {
    "site.toml": 'title = "T"\nbase_url = "https://example.org/"\n',
    "content/tale/story.md": STORY.replace("title: A Story", "title: A Story\ncover: cover.png"),
    "content/tale/01-almost.md": chapter("Almost", body="Look: ![The harbour map](images/map.png)"),
    "content/tale/02-enough.md": chapter("Enough", "2025-01-02", body="Enough said."),
    "content/tale/03-draft.md": chapter("Draft", body="![A sketch](images/sketch.png)", extra="draft: true\n"),
    "content/tale/04-later.md": chapter("Later", "2099-01-01", body="![Later](images/later.png)"),
    "content/tale/cover.png": COVER,
    "content/tale/images/map.png": MAP,
    "content/tale/images/sketch.png": DRAFT_IMAGE,
    "content/tale/images/later.png": LATER_IMAGE,
    # What an author keeps beside the chapters, none of it meant for readers:
    "content/tale/outline.txt": f"{SECRET}: she dies in chapter 9.\n",
    "content/tale/notes.docx": f"PK {SECRET} docx".encode(),
    "content/tale/05-secret.txt": f"Chapter five, {SECRET}, not written yet.\n",
    "content/tale/02-enough.md.orig": chapter("Enough", "2025-01-02", body=f"Old version, {SECRET}."),
    "content/tale/02-enough.md.save": chapter("Enough", "2025-01-02", body=f"nano's rescue, {SECRET}."),
    "content/tale/old/01-almost.md": chapter("Almost", body=f"First draft, {SECRET}."),
}


def site_with(make_site, extra: dict[str, str | bytes] | None = None, drop: tuple[str, ...] = (),
              name: str = "site") -> Path:
    files = {path: text for path, text in SITE.items() if path not in drop}
    return make_site({**files, **(extra or {})}, name)


def cli(*args: str, site: Path) -> subprocess.CompletedProcess[str]:
    """`serialist ARGS` in the site's folder (so that it names files from there, as an author sees them)."""
    return run_cli(*args, ".", cwd=site)


def output_of(site: Path, *args: str) -> dict[str, bytes]:
    result = cli("build", *args, site=site)
    assert result.returncode == 0, result.stderr
    return tree_bytes(site / "output")


# --- chapters in another form --------------------------------------------------------------------------------------

def test_markdown_and_mdown_files_are_chapters_and_one_shots(make_site):
    site = make_site({
        "site.toml": 'title = "T"\n',
        "content/s/story.md": STORY,
        "content/s/01-one.markdown": chapter("One", body="First ![map](map.png)."),
        "content/s/02-two.MDOWN": chapter("Two", "2025-01-02", body="[Back](01-one.markdown)"),
        "content/s/map.png": MAP,
        "content/boat.markdown": chapter("Boat", body="A one-shot ![boat](boat.assets/b.png)."),
        "content/boat.assets/b.png": COVER,
    })
    files = output_of(site)
    assert b"First" in files["s/01-one/index.html"] and files["s/map.png"] == MAP
    href = re.search(r'<a href="([^"]*)">Back</a>', files["s/02-two/index.html"].decode()).group(1)
    assert resolve("s/02-two/index.html", href) == "s/01-one/index.html", href
    assert b"A one-shot" in files["boat/chapter-1/index.html"] and files["boat/b.png"] == COVER
    assert not [name for name in files if name.endswith((".markdown", ".MDOWN"))]


def test_a_txt_file_that_is_a_chapter_is_an_error(make_site):
    for name, fix in [("content/tale/05-secret.txt", "rename it to 05-secret.md"),
                      ("content/tale/05-secret.md.txt", "rename it to 05-secret.md"),
                      ("content/tale/images/06.txt", "rename it to 06.md"),
                      ("content/solo.txt", "rename it to solo.md")]:
        site = site_with(make_site, {name: "\ufeff---\r\ntitle: Secret\r\ndate: 2025-01-05\r\n---\r\nText.\r\n"},
                         drop=("content/tale/05-secret.txt",), name=Path(name).name)
        result = cli("build", site=site)
        assert result.returncode == 1, name
        line = next(line for line in result.stderr.splitlines() if ": error: " in line)
        assert line.startswith(f"{name}:1: error: this file starts with `---` like a "), line
        assert fix in line and "move it out of content/" in line, line
        assert not (site / "output").exists()
        assert cli("check", site=site).returncode == 1


def test_a_second_copy_of_a_chapter_is_a_warning_naming_both(make_site):
    for copy in ("01-almost (copy).md", "Copy of 01-almost.md", "01-almost 2.md", "01-almost - Copy.md"):
        site = site_with(make_site, {f"content/tale/{copy}": chapter("Almost", body="A copy.")}, name=copy)
        result = cli("build", site=site)
        assert result.returncode == 0, result.stderr
        assert (f"content/tale/{copy}: warning: this looks like a second copy of the chapter 01-almost.md, so it "
                "is not published") in result.stderr, result.stderr
        assert b"A copy." not in b"".join(tree_bytes(site / "output").values())
        assert cli("build", "--strict", site=site).returncode == 1


def test_two_chapters_with_one_number_are_a_warning_naming_both(make_site):
    site = site_with(make_site, {"content/tale/02-bonus.md": chapter("Bonus", "2025-01-02")})
    result = cli("build", site=site)
    assert result.returncode == 0, result.stderr
    assert ("content/tale/02-enough.md: warning: this file's name starts with the same number as 02-bonus.md"
            in result.stderr), result.stderr


def test_a_second_copy_of_a_one_shot_is_a_warning(make_site):
    site = make_site({"site.toml": 'title = "T"\n', "content/ferry.md": chapter("Ferry"),
                      "content/ferry (copy).md": chapter("Ferry", body="Copied.")})
    result = cli("build", site=site)
    assert result.returncode == 0, result.stderr
    assert "ferry (copy).md: warning: this looks like a second copy of the one-shot ferry.md" in result.stderr
    assert not (site / "output/ferry-copy").exists()


def test_a_new_chapter_counts_the_chapters_in_another_form(make_site):
    site = make_site({"site.toml": 'title = "T"\n', "content/s/story.md": STORY,
                      "content/s/01-one.markdown": chapter("One"), "content/s/02-two.mdown": chapter("Two")})
    result = run_cli("new", "chapter", "s", "--site", site)
    assert result.returncode == 0, result.stderr
    assert (site / "content/s/03-chapter-3.md").is_file()
