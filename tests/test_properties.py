"""Property-based: arbitrary front matter and Markdown never give a traceback.

Either the site builds, and every page parses as HTML without a single parse
error and shows every value escaped, or the user gets file:line errors.
"""

from __future__ import annotations

import tempfile
import xml.dom.minidom
from pathlib import Path

import html5lib
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import NOW
from generator.build import build
from generator.config import BuildOptions
from generator.errors import ContentError
from generator.load import CHAPTER_KEYS, STORY_KEYS

MARK = "<zz-evil>"  # no sanitizer or template may let this tag through

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-10**12, max_value=10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=60), st.text(max_size=2000).map(lambda t: t + MARK),
    st.sampled_from(["2025-01-01", "2025-01-01 10:00", "General Audiences", "complete", "", "../x", MARK]),
    st.dates().map(lambda d: d.isoformat()),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=8)
markdown = st.lists(st.one_of(
    st.text(max_size=200),
    st.sampled_from(["* * *", "---", "[^1]", "[^1]: note", "# Head", "> quote", "| a | b |\n|---|---|\n| 1 | 2 |",
                     "<div>", "</p>", "<script>alert(1)</script>", MARK, "[link](x.md)", "![img](nope.png)",
                     "```\ncode", "*em", "\"quoted\" -- dash...", "\x00\x07\u202e"]),
), max_size=12).map("\n\n".join)


def front_matter(data: dict) -> str:
    try:
        return "---\n" + yaml.safe_dump(data, allow_unicode=True) + "---\n"
    except yaml.YAMLError:
        return "---\n---\n"


PARSER = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False)


def check_output(out: Path) -> None:
    for page in out.rglob("*"):
        if not page.is_file():
            continue
        data = page.read_bytes()
        assert MARK.encode() not in data, f"{page} shows a value unescaped"
        if page.suffix == ".html":
            PARSER.parse(data)  # raises on any HTML parse error
        elif page.suffix == ".xml":
            xml.dom.minidom.parseString(data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(story=st.dictionaries(st.sampled_from(STORY_KEYS + ("bogus",)), values, max_size=8),
       chapter=st.dictionaries(st.sampled_from(CHAPTER_KEYS + ("bogus",)), values, max_size=8),
       body=markdown, summary=markdown)
def test_arbitrary_input_builds_or_reports(story, chapter, body, summary):
    story.setdefault("title", "T")
    chapter.setdefault("date", "2025-01-01")
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp)
        (site / "site.toml").write_text('title = "T"\nbase_url = "https://example.org/"\n')
        folder = site / "content" / "s"
        folder.mkdir(parents=True)
        (folder / "story.md").write_text(front_matter(story) + summary, "utf-8", errors="surrogatepass")
        (folder / "1.md").write_text(front_matter(chapter) + body, "utf-8", errors="surrogatepass")
        (site / "content" / "one.md").write_text(front_matter({**story, **chapter}) + body, "utf-8",
                                                 errors="surrogatepass")
        try:
            build(site, BuildOptions(output=site / "output", now=NOW, drafts=True, future=True))
        except ContentError as exc:
            for problem in exc.problems:
                assert problem.path.is_relative_to(site), problem
                assert problem.message
            assert not (site / "output").exists()
            return
        check_output(site / "output")
