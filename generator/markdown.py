"""Stage 4, render Markdown: chapter text, notes and summaries → HTML, with word counts.

markdown-it-py with typographic quotes, dashes and ellipses, footnotes
(their ids prefixed per chapter so a whole-work page has no clashes),
thematic breaks rendered as scene breaks, and raw HTML limited to a safe
list of tags (as on AO3) with nh3.
"""

from __future__ import annotations

import re
from dataclasses import replace
from functools import lru_cache

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.footnote import footnote_plugin

from generator.model import Chapter, Site, Story

_WORD = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]|[^\s\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+")


# The HTML an author may write inside Markdown: AO3's list, less what HTML5 made obsolete.
_TAGS = {
    "a", "abbr", "address", "b", "bdi", "bdo", "blockquote", "br", "caption", "cite", "code", "col",
    "colgroup", "dd", "del", "details", "dfn", "div", "dl", "dt", "em", "figcaption", "figure", "h1", "h2",
    "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "rp", "rt",
    "ruby", "s", "samp", "section", "small", "span", "strong", "sub", "summary", "sup", "table", "tbody",
    "td", "tfoot", "th", "thead", "time", "tr", "u", "ul", "var", "wbr",
}
_ATTRIBUTES = {
    "*": {"class", "id", "title", "lang", "dir"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "ol": {"start", "reversed", "type"},
    "li": {"value"},
    "td": {"colspan", "rowspan", "style"},
    "th": {"colspan", "rowspan", "scope", "style"},
    "time": {"datetime"},
    "q": {"cite"},
    "blockquote": {"cite"},
}


def sanitize(html: str) -> str:
    """Keep the author's formatting, drop scripts, styles, frames, forms and event handlers."""
    return nh3.clean(html, tags=_TAGS, attributes=_ATTRIBUTES, link_rel=None,
                     url_schemes={"http", "https", "mailto"}, filter_style_properties={"text-align"})


def _scene_break(self, tokens, idx, options, env) -> str:  # noqa: ANN001 (markdown-it's signature)
    return '<hr class="scene-break">\n'


@lru_cache(maxsize=1)
def markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"typographer": True, "html": True})
    md.enable(["replacements", "smartquotes", "strikethrough", "table"])
    md.use(footnote_plugin)
    md.add_render_rule("hr", _scene_break)
    return md


def count_words(tokens: list[Token]) -> int:
    """Words of running text: CJK characters count one each, like AO3."""
    words = 0
    for token in tokens:
        if token.type == "inline" and token.children:
            text = "".join(child.content if child.type in ("text", "code_inline")
                           else " " if child.type in ("softbreak", "hardbreak") else ""
                           for child in token.children)
            words += len(_WORD.findall(text))
    return words


def render(text: str, doc_id: str) -> tuple[str, int]:
    """HTML and word count of one Markdown text."""
    if not text.strip():
        return "", 0
    md = markdown()
    env = {"docId": doc_id}
    tokens = md.parse(text, env)
    return sanitize(md.renderer.render(tokens, md.options, env)), count_words(tokens)


def render_chapter(chapter: Chapter, story_slug: str) -> Chapter:
    doc_id = f"{story_slug}-{chapter.slug}"
    html, words = render(chapter.body, doc_id)
    return replace(
        chapter,
        html=html,
        words=words,
        notes_before_html=render(chapter.notes_before, f"{doc_id}-nb")[0],
        notes_after_html=render(chapter.notes_after, f"{doc_id}-na")[0],
        summary_html=render(chapter.summary, f"{doc_id}-s")[0],
    )


def render_story(story: Story) -> Story:
    return replace(
        story,
        chapters=tuple(render_chapter(c, story.slug) for c in story.chapters),
        summary_html=render(story.summary, f"{story.slug}-summary")[0],
        notes_before_html=render(story.notes_before, f"{story.slug}-wnb")[0],
        notes_after_html=render(story.notes_after, f"{story.slug}-wna")[0],
    )


def render_site(site: Site) -> Site:
    return replace(site, stories=tuple(render_story(s) for s in site.stories))
