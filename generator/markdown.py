"""Stage 4, render Markdown: chapter text, notes and summaries → HTML, with word counts.

markdown-it-py with typographic quotes, dashes and ellipses, footnotes
(their ids prefixed per chapter so a whole-work page has no clashes),
thematic breaks rendered as scene breaks, and raw HTML limited to a safe
list of tags (as on AO3) with nh3.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Callable
from urllib.parse import unquote, urlsplit

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.anchors import anchors_plugin
from mdit_py_plugins.footnote import footnote_plugin

from generator.errors import ProblemLog
from generator.model import Chapter, Site, Story

LINK_SCHEME = "serialist"

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
                     url_schemes={"http", "https", "mailto", LINK_SCHEME}, filter_style_properties={"text-align"})


def _scene_break(self, tokens, idx, options, env) -> str:  # noqa: ANN001 (markdown-it's signature)
    return '<hr class="scene-break">\n'


@lru_cache(maxsize=1)
def markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"typographer": True, "html": True})
    md.enable(["replacements", "smartquotes", "strikethrough", "table"])
    md.use(footnote_plugin)
    md.use(anchors_plugin, min_level=1, max_level=6)
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


@dataclass(frozen=True, slots=True)
class LinkTargets:
    """The Markdown files a text may link to, by resolved path."""

    published: dict[Path, tuple[str, str]]  # → (story slug, chapter slug or "" for the story page)
    unpublished: frozenset[Path] = frozenset()


def link_targets(everything: Site, published: Site) -> LinkTargets:
    """Where each story and chapter file of `everything` is published in `published`, if it is."""
    pages: dict[Path, tuple[str, str]] = {}
    for story in published.stories:
        pages[story.source.resolve()] = (story.slug, "" if not story.single_file else story.chapters[0].slug)
        for chapter in story.chapters:
            if not story.single_file:
                pages[chapter.source.resolve()] = (story.slug, chapter.slug)
    known = {story.source.resolve() for story in everything.stories}
    known.update(c.source.resolve() for story in everything.stories for c in story.chapters)
    return LinkTargets(pages, frozenset(known - pages.keys()))


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a Markdown text comes from: for file-relative links and for error lines."""

    path: Path
    line: int


def placeholder(story: str, chapter: str, fragment: str) -> str:
    return f"{LINK_SCHEME}:{story}/{chapter}" + (f"#{fragment}" if fragment else "")


def _unlink(children: list[Token], index: int) -> None:
    """Render the link at `index` as a plain span (links do not nest, so the next close is its own)."""
    children[index].tag = "span"
    children[index].attrs = {"class": "unpublished-link"}
    for child in children[index + 1:]:
        if child.type == "link_close":
            child.tag = "span"
            return


def _rewrite_links(tokens: list[Token], origin: Origin, targets: LinkTargets, log: ProblemLog) -> None:
    """Links to `*.md` files become placeholders (resolved per page later); report links that lead nowhere."""
    for token in tokens:
        if token.type != "inline" or not token.children:
            continue
        line = origin.line + (token.map[0] if token.map else 0)
        for index, child in enumerate(token.children):
            if child.type != "link_open":
                continue
            href = str(child.attrs.get("href", ""))
            parts = urlsplit(href)
            if parts.scheme or parts.netloc or not parts.path or href.startswith("/"):
                continue
            target = (origin.path.parent / unquote(parts.path)).resolve()
            if target in targets.published:
                story, chapter = targets.published[target]
                child.attrs["href"] = placeholder(story, chapter, parts.fragment)
            elif target in targets.unpublished:
                log.warn(origin.path, line, f"the link to `{href}` leads to a chapter that is not published "
                         "(a draft or scheduled); the link is left out until it is")
                _unlink(token.children, index)
            elif parts.path.lower().endswith(".md"):
                log.error(origin.path, line, f"the link to `{href}` leads nowhere: there is no story or "
                          f"chapter file {target.name} in {target.parent.name}/; fix the file name")
            elif not target.exists():
                log.warn(origin.path, line, f"the link to `{href}` leads nowhere: there is no such file "
                         f"next to {origin.path.name}; fix the path")


def render(text: str, doc_id: str, origin: Origin | None = None, targets: LinkTargets | None = None,
           log: ProblemLog | None = None) -> tuple[str, int]:
    """HTML and word count of one Markdown text."""
    if not text.strip():
        return "", 0
    md = markdown()
    env = {"docId": doc_id}
    tokens = md.parse(text, env)
    if origin is not None and targets is not None and log is not None:
        _rewrite_links(tokens, origin, targets, log)
    return sanitize(md.renderer.render(tokens, md.options, env)), count_words(tokens)


def _field_origin(path: Path, lines: dict[str, int], key: str, text: str) -> Origin:
    """Where a front-matter Markdown field's text starts: the key's line, or the next for `key: |`."""
    return Origin(path, lines.get(key, 1) + (1 if "\n" in text.strip() else 0))


def render_chapter(chapter: Chapter, story_slug: str, targets: LinkTargets, log: ProblemLog) -> Chapter:
    doc_id = f"{story_slug}-{chapter.slug}"
    html, words = render(chapter.body, doc_id, Origin(chapter.source, chapter.body_line), targets, log)

    def field(key: str, suffix: str) -> str:
        return render(getattr(chapter, key), f"{doc_id}-{suffix}",
                      _field_origin(chapter.source, chapter.lines, key, getattr(chapter, key)), targets, log)[0]

    return replace(
        chapter,
        html=html,
        words=words,
        notes_before_html=field("notes_before", "nb"),
        notes_after_html=field("notes_after", "na"),
        summary_html=field("summary", "s"),
    )


def render_story(story: Story, targets: LinkTargets, log: ProblemLog) -> Story:
    def field(key: str, suffix: str) -> str:
        origin = (Origin(story.source, story.summary_line) if key == "summary" and not story.single_file
                  else _field_origin(story.source, story.lines, key, getattr(story, key)))
        return render(getattr(story, key), f"{story.slug}-{suffix}", origin, targets, log)[0]

    return replace(
        story,
        chapters=tuple(render_chapter(c, story.slug, targets, log) for c in story.chapters),
        summary_html=field("summary", "summary"),
        notes_before_html=field("notes_before", "wnb"),
        notes_after_html=field("notes_after", "wna"),
    )


def render_site(site: Site, targets: LinkTargets, log: ProblemLog) -> Site:
    return replace(site, stories=tuple(render_story(s, targets, log) for s in site.stories))


_PLACEHOLDER = re.compile(r'href="' + LINK_SCHEME + r':([^"/#]*)/([^"#]*)(?:#([^"]*))?"')


def resolve_links(html: str, page_url: Callable[[str], str], same_story: str | None = None) -> str:
    """Turn link placeholders into links from one page.

    `page_url` maps a site path (`story/chapter/`) to a link from the page; on a
    whole-work page (`same_story`), chapters of that story become in-page anchors.
    """
    if f'href="{LINK_SCHEME}:' not in html:
        return html

    def link(match: re.Match[str]) -> str:
        story, chapter, fragment = match.group(1), match.group(2), match.group(3)
        if story == same_story:
            target = "#" + (fragment or (f"chapter-{chapter}" if chapter else "main"))
        else:
            target = page_url(f"{story}/{chapter}/" if chapter else f"{story}/")
            target += f"#{fragment}" if fragment else ""
        return f'href="{target}"'

    return _PLACEHOLDER.sub(link, html)
