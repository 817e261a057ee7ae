"""Files beside the chapters stay private unless something published refers to them; `static/` goes out as it is.

An outline, notes, old versions and editors' backups kept in a story's folder are not published, and
`serialist check` lists them with why; an image of a published chapter, notes or summary, and the cover,
are. Chapters in another form (`.markdown`, `.mdown`) are chapters; a `.txt` that is a chapter saved in
the wrong form is an error; a second copy of a chapter is a warning naming both.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from conftest import STORY, chapter, run_cli, tree_bytes
from generator.build import build
from generator.config import BuildOptions
from generator.incremental import BuildSession
from generator.watch import ChangeKind, SiteLayout, classify
from test_deploy import git_identity, remote, site  # noqa: F401  (fixtures)
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


def not_published(stdout: str) -> dict[str, str]:
    """The files `check` lists under "Not published:" → why."""
    lines = stdout.split("Not published", 1)[1].splitlines()[1:]
    listed = {}
    for line in lines:
        if not line.startswith("  "):
            break
        path, why = line.strip().split(": ", 1)
        listed[Path(path).as_posix()] = why
    return listed


# --- what is published ----------------------------------------------------------------------------------------

def test_what_an_author_keeps_beside_the_chapters_is_not_published_and_check_lists_it(make_site):
    site = site_with(make_site, {"content/tale/01-almost (copy).md": chapter("Almost", body=f"Copy, {SECRET}.")})
    files = output_of(site)
    for name in ("tale/outline.txt", "tale/notes.docx", "tale/05-secret.txt", "tale/02-enough.md.orig",
                 "tale/02-enough.md.save", "tale/01-almost-copy/index.html", "tale/images/sketch.png",
                 "tale/images/later.png"):
        assert name not in files, name
    assert not [name for name, data in files.items() if SECRET.encode() in data]
    # (nor inside the EPUB, which is compressed: it holds only the images it shows)
    assert files["tale/images/map.png"] == MAP and files["tale/cover.png"] == COVER

    result = cli("check", site=site)
    assert result.returncode == 0, result.stderr
    listed = not_published(result.stdout)
    assert listed == {
        "content/tale/02-enough.md.orig": "an editor's backup",
        "content/tale/02-enough.md.save": "an editor's backup",
        "content/tale/01-almost (copy).md": "a second copy of 01-almost.md",
        "content/tale/05-secret.txt": "not referenced by any published chapter",
        "content/tale/images/later.png": "referenced only by a scheduled chapter (04-later.md)",
        "content/tale/images/sketch.png": "referenced only by a draft (03-draft.md)",
        "content/tale/notes.docx": "not referenced by any published chapter",
        "content/tale/old/01-almost.md": "Markdown in a subfolder of a story, which is not a chapter",
        "content/tale/outline.txt": "not referenced by any published chapter",
    }, result.stdout
    assert result.stdout.rstrip().splitlines()[-1].startswith("Checked 1 story, ")


def test_a_private_outline_does_not_fail_a_strict_check(make_site):
    site = site_with(make_site)
    result = cli("check", "--strict", site=site)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "content/tale/outline.txt: not referenced by any published chapter" in result.stdout
    assert "warning" not in result.stderr


def test_a_drafts_images_are_published_with_it(make_site):
    site = site_with(make_site)
    files = output_of(site, "--drafts")
    assert files["tale/images/sketch.png"] == DRAFT_IMAGE and "tale/images/later.png" not in files
    files = output_of(site, "--future")
    assert files["tale/images/later.png"] == LATER_IMAGE and "tale/images/sketch.png" not in files
    files = output_of(site)
    assert "tale/images/sketch.png" not in files and "tale/images/later.png" not in files


def test_every_published_text_can_publish_a_file(make_site):
    site = site_with(make_site, {
        "content/tale/story.md": STORY.replace("A summary.", "A summary: ![Coast](art/coast.png)")
        .replace("status: ongoing", "status: ongoing\nnotes_before: See [the timeline](art/timeline.pdf)."),
        "content/tale/02-enough.md": chapter("Enough", "2025-01-02", body='<a href="art/letter.pdf">The letter</a>'
                                             ' and <img src="art/seal.png" alt="The seal">',
                                             extra="notes_after: '![Fan art](art/fan.png)'\n"
                                                   "summary: '[Glossary](art/glossary.html)'\n"),
        **{f"content/tale/art/{name}": name.encode() for name in ("coast.png", "timeline.pdf", "letter.pdf",
                                                                  "seal.png", "fan.png", "glossary.html",
                                                                  "unused.png")},
    })
    files = output_of(site)
    for name in ("coast.png", "timeline.pdf", "letter.pdf", "seal.png", "fan.png", "glossary.html"):
        assert files[f"tale/art/{name}"] == name.encode(), name
    assert "tale/art/unused.png" not in files and "tale/cover.png" not in files  # (no cover any more)
    page = files["tale/02-enough/index.html"].decode()  # (the author's own HTML: its links work too)
    href = re.search(r'<a href="([^"]*)">The letter</a>', page).group(1)
    src = re.search(r'<img src="([^"]*)" alt="The seal">', page).group(1)
    assert resolve("tale/02-enough/index.html", href) == "tale/art/letter.pdf", href
    assert resolve("tale/02-enough/index.html", src) == "tale/art/seal.png", src


def test_a_one_shots_files_are_published_only_when_referenced(make_site):
    site = make_site({
        "site.toml": 'title = "T"\n',
        "content/ferry.md": chapter("Ferry", body="![A boat](ferry.assets/boat.png)"),
        "content/ferry.assets/boat.png": MAP,
        "content/ferry.assets/plan.txt": f"{SECRET}\n",
    })
    files = output_of(site)
    assert files["ferry/boat.png"] == MAP and "ferry/plan.txt" not in files
    listed = not_published(cli("check", site=site).stdout)
    assert listed == {"content/ferry.assets/plan.txt": "not referenced by any published chapter"}


def test_a_link_to_a_file_that_is_never_published_is_a_warning(make_site):
    site = site_with(make_site, {"content/tale/02-enough.md": chapter("Enough", "2025-01-02",
                                                                      body="[The old one](02-enough.md.orig)")})
    result = cli("build", site=site)
    assert result.returncode == 0, result.stderr
    assert ("02-enough.md:5: warning: the link to `02-enough.md.orig` leads to a file that is never published"
            in result.stderr), result.stderr
    assert not (site / "output/tale/02-enough.md.orig").exists()


# --- static/ ----------------------------------------------------------------------------------------------------

def test_static_files_are_published_as_they_are_at_the_root(make_site):
    site = site_with(make_site, {"static/map.pdf": b"%PDF-1.4 map", "static/music/playlist.html": "<p>songs</p>\n",
                                 "static/notes.md": "# kept as it is\n", "static/.DS_Store": b"mac"})
    files = output_of(site)
    assert files["map.pdf"] == b"%PDF-1.4 map" and files["music/playlist.html"] == b"<p>songs</p>\n"
    assert files["notes.md"] == b"# kept as it is\n" and ".DS_Store" not in files
    # The up-to-date stamp covers static/.
    (site / "static/map.pdf").write_bytes(b"%PDF-1.4 new map")
    result = cli("build", site=site)
    assert "Up to date" not in result.stdout and (site / "output/map.pdf").read_bytes() == b"%PDF-1.4 new map"
    (site / "static/new.txt").write_text("new\n")
    result = cli("build", site=site)
    assert "Up to date" not in result.stdout and (site / "output/new.txt").read_text() == "new\n"


def test_a_static_file_where_the_site_puts_its_own_is_an_error_naming_both(make_site):
    site = site_with(make_site)
    output_of(site)
    before = tree_bytes(site / "output")
    for name, clash in [("index.html", "a page of its own at index.html"),
                        ("tale", "a folder there (for a page of its own)"),
                        ("tale/images/map.png", "content/tale/images/map.png at tale/images/map.png"),
                        ("assets/style.css", "style.css at assets/style.css"),
                        ("tale/index.html/x.txt", "a page of its own at tale/index.html")]:
        (site / "static" / name).parent.mkdir(parents=True, exist_ok=True)
        (site / "static" / name).write_text("mine\n")
        result = cli("build", site=site)
        assert result.returncode == 1, name
        line = next(line for line in result.stderr.splitlines() if ": error: " in line)
        assert line.startswith(f"static/{name}: error: this file would be published as {name}, but the site "
                               "puts "), line
        assert clash in line, line
        assert tree_bytes(site / "output") == before
        (site / "static" / name).unlink()
        result = cli("build", site=site)
        assert result.returncode == 0, result.stderr


def test_a_static_link_outside_the_site_is_refused(make_site, tmp_path):
    site = site_with(make_site)
    (tmp_path / "secret.txt").write_text(SECRET)
    (site / "static").mkdir()
    (site / "static/leak.txt").symlink_to(tmp_path / "secret.txt")
    result = cli("build", site=site)
    assert result.returncode == 1
    assert "static/leak.txt: error: this symbolic link points at" in result.stderr, result.stderr
    assert SECRET not in result.stderr and not (site / "output").exists()


def test_serve_rebuilds_when_a_static_file_changes(tmp_path):
    layout = SiteLayout.of(tmp_path)
    assert classify(tmp_path / "static/map.pdf", layout) is ChangeKind.CONTENT
    assert classify(tmp_path / "static/.map.pdf.swp", layout) is ChangeKind.IGNORED


def test_deploy_stops_for_a_static_file_not_committed(site: Path, remote: Path) -> None:  # (test_deploy's fixtures)
    (site / "static").mkdir()
    (site / "static/map.pdf").write_bytes(b"%PDF-1.4 map")
    result = run_cli("deploy", cwd=site)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "  static/map.pdf (new, not in git yet)" in result.stderr.splitlines(), result.stderr
    assert 'git add -- static && git commit -m "Update the site"' in result.stderr, result.stderr


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


# --- serve --------------------------------------------------------------------------------------------------------

def test_serve_publishes_what_a_full_build_publishes_when_a_chapter_starts_or_stops_showing_a_file(make_site,
                                                                                                     tmp_path):
    site = site_with(make_site)
    out = tmp_path / "served"
    session = BuildSession(site, BuildOptions(output=out))
    session.build(None)
    assert not (out / "tale/notes.docx").exists()
    chapter_file = site / "content/tale/02-enough.md"
    for body in ("Enough, with [the notes](notes.docx).", "Enough, without.", "[Outline](outline.txt)"):
        chapter_file.write_text(chapter("Enough", "2025-01-02", body=body))
        session.build([chapter_file])
        session.finish()
        full = tmp_path / "full"
        build(site, BuildOptions(output=full, cache=False))
        assert tree_bytes(out) == tree_bytes(full), body
    assert (out / "tale/outline.txt").is_file() and not (out / "tale/notes.docx").exists()


def test_check_names_what_stays_private_even_when_errors_stop_it(make_site):
    """An outline, a chapter saved as .txt, a copied chapter and a misspelt field: `check` names each one, the
    private files too, although the errors stop it before the Markdown is rendered."""
    site = make_site({
        "content/s/story.md": "---\ntitle: S\nfandom: X\n---\nA summary.\n",
        "content/s/01-one.md": chapter(1) + "\n![The map](map.png)\n",
        "content/s/01-one (copy).md": chapter(1),
        "content/s/outline.txt": f"{SECRET}\n",
        "content/s/02-two.txt": "---\ntitle: Two\n---\nA draft.\n",
        "content/s/map.png": png(),
    })
    result = run_cli("check", site)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    err = result.stderr
    assert "story.md:3: error: unknown field `fandom`. Did you mean `fandoms`?" in err
    assert "02-two.txt:1: error:" in err
    assert "01-one (copy).md: warning:" in err
    private = err.split("Not published, as far as can be told before the errors above are fixed", 1)[1]
    assert "content/s/outline.txt: not referenced by any published chapter" in private
    assert "content/s/01-one (copy).md: a second copy of 01-one.md" in private
    assert "content/s/02-two.txt: a chapter saved as .txt" in private
    assert "map.png" not in private  # shown by a published chapter
