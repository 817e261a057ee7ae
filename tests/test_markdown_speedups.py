"""The Markdown stage's shortcuts give exactly what markdown-it-py gives without them."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from mdit_py_plugins.anchors import anchors_plugin
from mdit_py_plugins.footnote import footnote_plugin

from generator import markdown_rules
from generator.markdown import _BEFORE_CJK, _scene_break, count_words, markdown, word_pattern

ROOT = Path(__file__).resolve().parents[1]


def stock() -> MarkdownIt:
    """The same parser with markdown-it-py's own `normalize`, `replacements`, `smartquotes` and `text` rules."""
    md = MarkdownIt("commonmark", {"typographer": True, "html": True})
    md.enable(["replacements", "smartquotes", "strikethrough", "table"])
    md.use(footnote_plugin)
    md.use(anchors_plugin, min_level=1, max_level=6)
    md.add_render_rule("hr", _scene_break)
    return md


TYPOGRAPHY = st.lists(st.one_of(
    st.sampled_from(["-", "--", "---", "----", ".", "..", "...", "?", "!", "????", "!!!!!", "?!?!", ",", ",,",
                     "+-", "(c)", "(TM)", "(r)", "…", " ", "\n", "a", "word", '"', "'", "<https://x.org/a--b...>",
                     "`code -- ...`", "*", "[l](u--v)", "\u00a0", "日本", "1", "\t", "\u2003", "\x85", "\x1c",
                     "  \n", "\n\n", "_", "**", "<b>", "</b>", "`'q'`", "(", ")", "\u2014", "\u201c", "\u2019",
                     "[^1]", "\n\n[^1]: n", "0", "9", "> ", "~~", "\r\n", "\r", "\x00", "\\'", "&quot;", "?…", "!..", "a--b", " -- ", "\n--"]),
    st.text(max_size=5)), max_size=40).map("".join)


@settings(max_examples=1500, deadline=None)
@given(TYPOGRAPHY)
def test_typography_is_markdown_it_pys(text):
    assert markdown().render(text) == stock().render(text)


@pytest.mark.parametrize("text", [
    '*"a* *b"*',  # a quote left open inside emphasis does not pair with one in the next
    "**'a** 'b' **c'**", '0"" 9"" a"" "The 0"" mark"', "a--b -- c --d e-- \n-- f\n\u00a0--\u00a0 g---h ----i j---- --",
    'She said, "It\'s \'fine\'... isn\'t it?" -- and left.', "1990's \"quotes\" and 'single'---",
    '"[link "text"](u)" and `"code"` "<b>"bold"</b>"', "?.... !.... ??????? ,,, +- (c) (TM)",
])
def test_tricky_typography_is_markdown_it_pys(text):
    assert markdown().render(text) == stock().render(text)


INLINE = st.lists(st.one_of(
    st.sampled_from(["!", "![i](u)", "![i]", "!!", "^", "^[n]", "^^[", "[", "]", "[a]", "[a](b)", "[a [b] c](u)",
                     "\n[a]: u\n", "<", "<http://a.b>", "<b>", "</b>", "<!-- c -->", "&amp;", "&", "&#42;", "\\",
                     "\\*", "\\[", "\\\n", "`", "``", "~", "~~", "*", "**", "_", "__", "-", "--", ":", "#", "=",
                     "{", "}", "$", "%", "@", "+", ">", "|", "\n", "  \n", "\n\n", " ", "a", "word", "[^1]",
                     "\n\n[^1]: x\n", '"', "'", "\n---\n", "\n# h\n", "é", "日"]),
    st.text(max_size=3)), max_size=40).map("".join)


@settings(max_examples=1500, deadline=None)
@given(INLINE)
def test_inline_syntax_is_markdown_it_pys(text):
    """The `text` rule stops wherever an inline rule in use can start: links, images, footnotes, emphasis…"""
    assert markdown().render(text) == stock().render(text)


BLOCKS = st.lists(st.one_of(
    st.sampled_from(["\n", "\n\n", "  ", "    ", "\t", "- ", "* ", "+ ", "1. ", "2) ", "> ", ">", "# ", "## ",
                     "```", "~~~", "|a|b|\n|-|-|\n", "| x |", "---", "***", "___", "===", "[^1]: note", "[a]: /u",
                     "<div>", "</div>", "<!-- c -->", "Word", "word", "“Quote,” she said.", "'q'", '"q"', "(aside)",
                     "¿Qué?", "¡Sí!", "…and", "— so", "– so", "«x»", "日本語", "é", "Ⅻ", "1", "a\nb", "*em*", "_u_"]),
    st.text(max_size=3)), max_size=30).map("".join)


@settings(max_examples=1500, deadline=None)
@given(BLOCKS)
def test_block_structure_is_markdown_it_pys(text):
    """Paragraphs of one line are taken straight away only where no other block (a list, a quote, a heading, a
    table, code, a footnote…) could be: lines that start with a letter or opening punctuation, before a blank."""
    assert markdown().render(text) == stock().render(text)


def test_the_faster_rules_know_every_rule_in_use():
    """`markdown()` uses the faster `text` and `plain_paragraph` only with the inline and block rules they were
    written for: if a plugin adds one, this fails rather than the speed-up going quietly."""
    md = markdown()
    assert md.inline.ruler.get_active_rules() == list(markdown_rules.INLINE_RULES)
    assert md.inline.ruler.getRules("")[0] is markdown_rules.text
    assert md.block.ruler.get_active_rules() == ["plain_paragraph", *markdown_rules.BLOCK_RULES]


def test_the_sample_stories_render_as_with_markdown_it_py():
    texts = [path.read_text("utf-8") for path in sorted((ROOT / "content").rglob("*.md"))]
    assert texts
    for text in texts:
        assert markdown().render(text) == stock().render(text)


def test_benchmark_prose_renders_as_with_markdown_it_py():
    import random

    from tests.benchmarks.corpus import chapter_text

    rng = random.Random(7)
    for _ in range(20):
        text = chapter_text(rng, 800)
        assert markdown().render(text, {"docId": "c"}) == stock().render(text, {"docId": "c"})


WORDS = st.text(alphabet=st.sampled_from([" ", "\u00a0", "\u2003", "\u3000", "\x1c", "\x85", "\n", "\t", "a", "é",
                                          "日", "한", "\uff01", "\U0001f600", "-", "w"]), max_size=80)


@settings(max_examples=400, deadline=None)
@given(WORDS)
def test_word_counts_are_the_regex_counts(text):
    tokens = markdown().parse(text)
    expected = 0
    for token in tokens:
        if token.type == "inline" and token.children:
            expected += len(word_pattern().findall("".join(
                c.content if c.type in ("text", "code_inline") else " " if c.type in ("softbreak", "hardbreak")
                else "" for c in token.children)))
    assert count_words(tokens) == expected


def test_the_bytes_left_of_a_text_show_whether_it_has_a_character_from_u3000_on():
    for code in [*range(0x11000), 0x1F600, 0x20000, 0x10FFFF]:
        left = chr(code).encode("utf-8", "surrogatepass").translate(None, _BEFORE_CJK)
        assert bool(left) == (code >= 0x3000), hex(code)
