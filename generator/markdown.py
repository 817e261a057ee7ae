"""Stage 4, render Markdown: chapter text, notes and summaries → HTML, with word counts.

markdown-it-py with typographic quotes, dashes and ellipses, footnotes
(their ids prefixed per chapter so a whole-work page has no clashes),
thematic breaks rendered as scene breaks, and raw HTML limited to a safe
list of tags (as on AO3) with nh3. What the author's HTML leaves open (a
`<script>` with no `</script>`, a `<!--` with no `-->`, a tag with no `>`) is
shown as text, rather than taking the rest of the text with it
(`keep_open_markup_as_text`). With `line_breaks: paragraphs`, each line of the text is a paragraph
(`markdown_rules.line_paragraphs`); without, a chapter whose paragraphs look like lines pasted from an archive
or a word processor gets a warning (`pasted_warning`). Links and images lead only to http(s), mailto or
relative addresses, or to the placeholders of this stage, which no text can forge (`SEALED_LINK_SCHEME`,
`unseal`; see `generator.assets`).
"""

from __future__ import annotations

import gc
import os
import re
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from functools import lru_cache
from html import unescape
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator
from urllib.parse import unquote, urlsplit

from generator.assets import (FILE_SCHEME, MARKDOWN_SUFFIXES, SAFE_SCHEMES, SEAL, SEALED_FILE_SCHEME, resolve_files,
                              rewrite_files, safe_url, url_scheme)
from generator.cache import Cache, digest
from generator.errors import ProblemLog
from generator.parallel import die_with_parent, pool_context, widen_pipes
from generator.progress import ProgressCallback, no_progress
from generator.model import Chapter, Site, Story

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.token import Token

LINK_SCHEME = "serialist"
SEALED_LINK_SCHEME = f"{LINK_SCHEME}-{SEAL}"  # what the Markdown stage writes (see `assets.SEAL`)

# The UTF-8 bytes below 0xE3: none starts a character from U+3000 on (no CJK character is before it), the bytes
# that continue one being among them. What is left of a text's UTF-8 without them is empty when it has no such
# character. (Much quicker than `max()` of the text.)
_BEFORE_CJK = bytes(range(0xE3))


@lru_cache(maxsize=1)
def _cjk() -> re.Pattern[str]:
    """A CJK character (compiled when a text first has a character from U+3000 on: like `word_pattern`, it
    takes milliseconds)."""
    return re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


@lru_cache(maxsize=1)
def word_pattern() -> re.Pattern[str]:
    """A word: one CJK character, or a run of other characters between spaces (without CJK, what `str.split`
    gives). Compiled when a text with CJK first needs it: its large character classes take milliseconds."""
    return re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]"
                      r"|[^\s\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+")


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
    """Keep the author's formatting, drop scripts, styles, frames, forms and event handlers, and every link or
    image that leads anywhere but to http(s), mailto, a relative URL or the Markdown stage's own placeholders
    (`SEALED_LINK_SCHEME`, `SEALED_FILE_SCHEME`: so not to a `serialist:` or `serialist-file:` the author wrote)."""
    import nh3

    return nh3.clean(html, tags=_TAGS, attributes=_ATTRIBUTES, link_rel=None,
                     url_schemes={*SAFE_SCHEMES, SEALED_LINK_SCHEME, SEALED_FILE_SCHEME},
                     filter_style_properties={"text-align"})


_SEALED = (f'="{SEALED_LINK_SCHEME}:', f'="{LINK_SCHEME}:'), (f'="{SEALED_FILE_SCHEME}:', f'="{FILE_SCHEME}:')
_URL_ATTRIBUTE = re.compile(r'\s(?:href|src|cite)="([^"]*)"')
# A value that may have a scheme other than the usual ones: every one that has another has a `:` (or a reference
# to one). Looked for first, so that the usual text, with no such value, costs no call for each of its links.
_ODD_URL = re.compile(r'\s(?:href|src|cite)="(?!https?:|mailto:|serialist(?:-file)?:)[^"]*[:&]')
_TAG = re.compile(r'<[a-zA-Z][^>"]*+(?:"[^"]*+"[^>"]*+)*+>')  # (in the sanitiser's HTML, values are in `"`)


def unseal(html: str) -> str:
    """The sanitised HTML with the placeholders the Markdown stage wrote in the schemes the later stages read
    (`LINK_SCHEME`, `FILE_SCHEME`), and without a link or image that does not lead where `safe_url` allows, or
    to a placeholder (the sanitiser lets none through: a browser that read a URL otherwise would find none)."""
    if SEAL in html:
        for sealed, scheme in _SEALED:
            html = html.replace(sealed, scheme)
    if _ODD_URL.search(html) is None or all(_placeholder_or_safe(unescape(found.group(1)))
                                            for found in _URL_ATTRIBUTE.finditer(html)):
        return html

    def tag(match: re.Match[str]) -> str:  # (only in tags: a text may say `href="…"`)
        return _URL_ATTRIBUTE.sub(lambda found: found.group(0) if _placeholder_or_safe(unescape(found.group(1)))
                                  else "", match.group(0))

    return _TAG.sub(tag, html)


def _placeholder_or_safe(url: str) -> bool:
    return safe_url(url) or url_scheme(url) in (LINK_SCHEME, FILE_SCHEME)


# What the author's HTML may leave open, so that the sanitiser (html5ever's HTML parser) takes the rest of the
# text for part of it: an element whose content is raw text, which ends only at its own end tag (nh3 drops what
# is in a `script` or `style`, and shows the markup in the others as text); a `template`, whose content nh3 drops
# up to its end tag; `plaintext`, which nothing ends; a comment, a tag, a `<!…>`, a `<?…>` without its end.
_RAW_TEXT = frozenset({"script", "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes", "noscript"})
_MARKUP = re.compile(r"<(?:(!--)|([a-zA-Z][^\t\n\f\r /<>]*)|(/[a-zA-Z])|[!?/])")  # comment, start tag, end tag, other
# The rest of a tag after its name, as the HTML parser reads it (a quote opens a value only right after `=`); but
# a `<` outside quotes, which the parser would take in (`<div <p>text`), is where the author left the tag open.
_TAG_END = re.compile(r"""(?:[^<>=]|=[\t\n\f\r ]*+(?:"[^"]*+"|'[^']*+'|(?=[^"'<])))*+>""")
_COMMENT_END = re.compile(r"->|>|.*?--!?>", re.S)  # after `<!--` (`<!-->` and `<!--->` end there too)
# Text and whole tags with their values in double quotes (all of markdown-it's, and most of an author's), but
# for the start of raw text or a template: skipped in one go.
_PLAIN = re.compile(
    rf'(?:[^<]++|<(?!(?i:{"|".join(sorted(_RAW_TEXT | {"template", "plaintext"}))})[\t\n\f\r />])'
    r'/?[a-zA-Z][a-zA-Z0-9]*+(?:[\t\n\f\r ]++[^\t\n\f\r "\'<>/=]++(?:="[^"]*+")?+)*+[\t\n\f\r ]*+/?>)*+')


@lru_cache(maxsize=None)
def _end_tag(name: str) -> re.Pattern[str]:
    return re.compile(rf"</{name}(?=[\t\n\f\r />])", re.IGNORECASE)


def _closed(html: str, name: str, start: int) -> int:
    """Where the first whole end tag of `name` from `start` begins, or -1."""
    for found in _end_tag(name).finditer(html, start):
        if _TAG_END.match(html, found.end()) is not None:
            return found.start()
    return -1


def _markup_end(html: str, found: re.Match[str], block: bool) -> int:
    """Where what `_MARKUP` found ends (its end tag, for raw text, which holds no markup), or -1 when it is
    left open. In a `block` of the author's HTML, an element of raw text or a `template` may end in a later one:
    it takes the rest of this one."""
    comment, name, end_tag = found.groups()
    if comment:
        end = _COMMENT_END.match(html, found.end())
        return end.end() if end is not None else -1
    if name is None and end_tag is None:  # `<!…>`, `<?…>` or `</…>` that is not an end tag: up to a `>`
        end_at = html.find(">", found.end())
        return end_at + 1 if end_at >= 0 and "<" not in html[found.end():end_at] else -1
    end = _TAG_END.match(html, found.end())
    if end is None or name is None:
        return end.end() if end is not None else -1
    tag = name.lower()
    if tag == "plaintext":
        return -1
    if tag in _RAW_TEXT or tag == "template":
        closed = _closed(html, tag, end.end())
        if closed < 0:
            return len(html) if block else -1
        return closed if tag in _RAW_TEXT else end.end()
    return end.end()


def keep_open_markup_as_text(html: str, block: bool = False) -> str:
    """The HTML with the `<` of everything left open (see `_RAW_TEXT`) written `&lt;`: shown as text, as the
    author most likely meant (`She typed <script> into the box`), rather than taking the rest of the text with
    it. A `<script>` or `<style>` with its end tag is the sanitiser's to drop.

    Done for each block of the author's HTML (`block`: a tag or a comment must end in it), then for the whole
    text (an element of raw text must end in it)."""
    parts: list[str] = []
    done = 0
    at = _PLAIN.match(html).end()
    while (found := _MARKUP.search(html, at)) is not None:
        at = _markup_end(html, found, block)
        if at < 0:  # left open: text
            parts += (html[done:found.start()], "&lt;")
            done = at = found.start() + 1
        at = _PLAIN.match(html, at).end()
    return "".join(parts) + html[done:] if parts else html


def _scene_break(self, tokens, idx, options, env) -> str:  # noqa: ANN001 (markdown-it's signature)
    return '<hr class="scene-break">\n'


@lru_cache(maxsize=1)
def markdown() -> MarkdownIt:
    """The parser, made (and markdown-it-py imported) when a text is first rendered: a build that finds every
    text in the cache (after an edit to the theme, say) never imports it."""
    from markdown_it import MarkdownIt
    from mdit_py_plugins.anchors import anchors_plugin
    from mdit_py_plugins.footnote import footnote_plugin

    from generator import markdown_rules

    md = MarkdownIt("commonmark", {"typographer": True, "html": True})
    md.enable(["replacements", "smartquotes", "strikethrough", "table"])
    md.core.ruler.at("normalize", markdown_rules.normalize)
    md.core.ruler.at("replacements", markdown_rules.replace)
    md.core.ruler.at("smartquotes", markdown_rules.smart_quotes)
    md.use(footnote_plugin)
    md.use(anchors_plugin, min_level=1, max_level=6)
    md.core.ruler.after("inline", "line_paragraphs", markdown_rules.line_paragraphs)
    md.block.ruler.at("lheading", markdown_rules.setext_heading)
    md.add_render_rule("hr", _scene_break)
    if md.inline.ruler.get_active_rules() == list(markdown_rules.INLINE_RULES):  # the rules it knows of
        md.inline.ruler.at("text", markdown_rules.text)
    if md.block.ruler.get_active_rules() == list(markdown_rules.BLOCK_RULES):
        md.block.ruler.before("table", "plain_paragraph", markdown_rules.plain_paragraph)
    return md


def count_words(tokens: list[Token]) -> int:
    """Words of running text: CJK characters count one each, like AO3."""
    parts: list[str] = []  # the running text, a space between paragraphs and wherever a line breaks
    for token in tokens:
        if token.type == "inline" and token.children:
            for child in token.children:
                kind = child.type
                if kind == "text" or kind == "code_inline":
                    parts.append(child.content)
                elif kind == "softbreak" or kind == "hardbreak":
                    parts.append(" ")
            parts.append(" ")
    text = "".join(parts)
    if (text.isascii() or not text.encode("utf-8", "surrogatepass").translate(None, _BEFORE_CJK)
            or not _cjk().search(text)):
        return _in_pieces(text, lambda piece: len(piece.split()))
    return _in_pieces(text, lambda piece: len(word_pattern().findall(piece)))


COUNT_PIECE = 1 << 16  # characters of text whose words are counted at a time


def _in_pieces(text: str, count: Callable[[str], int]) -> int:
    """`count(text)`, summed over pieces of it cut at spaces (where no word goes on), so that the words of a
    long text are never all in one list: a text of 100 MB has some 20 million, a list of over a gigabyte."""
    total = start = 0
    while len(text) - start > COUNT_PIECE:
        cut = text.find(" ", start + COUNT_PIECE)
        if cut < 0:
            break
        total += count(text[start:cut])
        start = cut
    return total + count(text[start:] if start else text)


@dataclass(frozen=True, slots=True)
class LinkTargets:
    """The Markdown files a text may link to, by resolved path."""

    published: dict[Path, tuple[str, str]]  # → (story slug, chapter slug or "" for the story page)
    unpublished: frozenset[Path] = frozenset()
    files: dict[Path, str] = field(default_factory=dict)  # the stories' other files → URL path (`Asset.url`)


def _resolver() -> Callable[[Path], Path]:
    """`Path.resolve`, with each folder resolved once: a file that is not a symbolic link is its resolved
    folder's entry (one `lstat` rather than one per part of the path, for each of thousands of chapters)."""
    folders: dict[Path, Path] = {}

    def resolve(path: Path) -> Path:
        if path.is_symlink():
            return path.resolve()
        folder = folders.get(path.parent)
        if folder is None:
            folder = folders[path.parent] = path.parent.resolve()
        return folder / path.name

    return resolve


def link_targets(everything: Site, published: Site) -> LinkTargets:
    """Where each story and chapter file of `everything` is published in `published`, if it is."""
    resolve = _resolver()
    pages: dict[Path, tuple[str, str]] = {}
    for story in published.stories:
        pages[resolve(story.source)] = (story.slug, "" if not story.single_file else story.chapters[0].slug)
        for chapter in story.chapters:
            if not story.single_file:
                pages[resolve(chapter.source)] = (story.slug, chapter.slug)
    known = {resolve(story.source) for story in everything.stories}
    known.update(resolve(c.source) for story in everything.stories for c in story.chapters)
    files = {asset.source.resolve(): asset.url for story in published.stories for asset in story.assets}
    return LinkTargets(pages, frozenset(known - pages.keys()), files)


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a Markdown text comes from: for file-relative links and for error lines."""

    path: Path
    line: int


def placeholder(story: str, chapter: str, fragment: str, scheme: str = LINK_SCHEME) -> str:
    """The placeholder of a link to a story or chapter (`scheme`: the Markdown stage's own, `SEALED_LINK_SCHEME`)."""
    return f"{scheme}:{story}/{chapter}" + (f"#{fragment}" if fragment else "")


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
            try:
                target = (origin.path.parent / unquote(parts.path)).resolve()
                exists = target.exists()
            except (OSError, ValueError, RuntimeError):  # a NUL byte, a name too long, a link loop
                log.warn(origin.path, line, f"the link to `{href}` is not a usable file name; fix it")
                continue
            if target in targets.published:
                story, chapter = targets.published[target]
                child.attrs["href"] = placeholder(story, chapter, parts.fragment, SEALED_LINK_SCHEME)
            elif target in targets.unpublished:
                log.warn(origin.path, line, f"the link to `{href}` leads to a chapter that is not published "
                         "(a draft or scheduled); the link is left out until it is")
                _unlink(token.children, index)
            elif parts.path.lower().endswith(MARKDOWN_SUFFIXES):
                log.error(origin.path, line, f"the link to `{href}` leads nowhere: there is no story or "
                          f"chapter file {target.name} in {target.parent.name}/; fix the file name")
            elif not exists:
                log.warn(origin.path, line, f"the link to `{href}` leads nowhere: there is no such file "
                         f"next to {origin.path.name}; fix the path")
            elif target not in targets.files and target.is_file():
                log.warn(origin.path, line, f"the link to `{href}` leads to a file that is never published (a "
                         "hidden file, an editor's backup, or a file outside the story's folder); move what you "
                         "want published into the story's folder, or put it in static/")


def _environment(doc_id: str, line_breaks: str) -> dict:
    """What markdown-it's rules are told of the text: its id (for footnotes) and its `line_breaks`."""
    from generator.markdown_rules import LINE_BREAKS

    return {"docId": doc_id, LINE_BREAKS: line_breaks} if line_breaks != "markdown" else {"docId": doc_id}


def pasted_warning(ranges: list[tuple[int, int]], origin: Origin, text_of: str, log: ProblemLog) -> None:
    """Warn that the paragraphs at `ranges` (lines from 0 of the text that starts at `origin`) are lines Markdown
    shows as one paragraph each; `text_of` says whose text it is: `chapter` or `one-shot`."""
    lines = [f"{origin.line + first}\u2013{origin.line + last}" for first, last in ranges[:3]]
    more = len(ranges) - len(lines)
    if more:
        where = ", ".join(lines) + f" and {more} more place{'s' if more > 1 else ''}"
    else:
        where = " and ".join((", ".join(lines[:-1]), lines[-1])) if len(lines) > 1 else lines[0]
    shown = "they are shown as one paragraph" if len(ranges) == 1 else "each group is shown as one paragraph"
    setting = ("to the front matter" if text_of != "chapter"
               else "to the chapter's front matter (or to story.md, for every chapter of the story)")
    log.warn(origin.path, origin.line + ranges[0][0],
             f"lines {where} are separate lines with no blank line between them, so {shown}; if each line is a "
             f"paragraph, as in text pasted from an archive or a word processor, add `line_breaks: paragraphs` "
             f"{setting}, or `line_breaks = \"paragraphs\"` to site.toml for every story; or put a blank line "
             "between paragraphs")


def render(text: str, doc_id: str, origin: Origin | None = None, targets: LinkTargets | None = None,
           log: ProblemLog | None = None, line_breaks: str = "markdown", text_of: str = "") -> tuple[str, int]:
    """HTML and word count of one Markdown text. `line_breaks` is the text's setting (`config.LINE_BREAKS`);
    `text_of` (`chapter` or `one-shot`) says the text is a chapter's, whose paragraphs are checked (with
    `line_breaks: markdown`) for lines pasted with no blank line between them."""
    if not text.strip():
        return "", 0
    md = markdown()
    env = _environment(doc_id, line_breaks)
    tokens = md.parse(text, env)
    markup = "<" in text  # the author's HTML (or an autolink)
    if markup:
        tokens, env = _close_html_blocks(text, doc_id, line_breaks, tokens, env)
        for token in tokens:
            if token.type == "html_block":
                token.content = keep_open_markup_as_text(token.content, block=True)
    if origin is not None and targets is not None and log is not None:
        if "&" in text or LINK_SCHEME in text.lower():  # (the scheme's letters, or a reference to one)
            _refuse_internal_schemes(tokens, origin, log)
        rewrite_files(tokens, origin, targets, log)
        _rewrite_links(tokens, origin, targets, log)
    if text_of and log is not None and origin is not None and line_breaks == "markdown" and "\n" in text.strip():
        from generator.markdown_rules import pasted_lines

        ranges = pasted_lines(tokens)
        if ranges:
            pasted_warning(ranges, origin, text_of, log)
    html, words = md.renderer.render(tokens, md.options, env), count_words(tokens)
    del tokens  # (several times the text's size: let go of before the HTML is sanitized)
    return unseal(sanitize(keep_open_markup_as_text(html) if markup else html)), words


# A value of an attribute in the author's HTML (for `_refuse_internal_schemes`: the sanitiser reads it exactly).
_RAW_VALUE = re.compile(r"""\s[^\s"'<>/=]+\s*=\s*("[^"]*"|'[^']*'|[^\s>"']+)""")


def _internal(url: str) -> bool:
    scheme = url_scheme(url)
    return scheme == LINK_SCHEME or scheme.startswith(LINK_SCHEME + "-")


def _refuse_internal_schemes(tokens: list[Token], origin: Origin, log: ProblemLog) -> None:
    """An error for each link or image the author gave one of Serialist's own schemes (`serialist:…`,
    `serialist-file:…`), in Markdown or in their HTML: the sanitiser leaves it out in any case."""
    def refuse(url: str, line: int) -> None:
        log.error(origin.path, line, f"the address `{url}` starts with `{url_scheme(url)}:`, which Serialist keeps "
                  "for its own links, so it is left out; link to the chapter or file by its path from this file "
                  "instead, like `02-next.md` or `images/map.png`")

    for token in tokens:
        line = origin.line + (token.map[0] if token.map else 0)
        if token.type == "html_block":
            for found in _RAW_VALUE.finditer(token.content):
                if _internal(url := unescape(found.group(1).strip("\"'"))):
                    refuse(url, line + token.content.count("\n", 0, found.start()))
        if token.type != "inline" or not token.children:
            continue
        for child in token.children:
            if child.type in ("softbreak", "hardbreak"):
                line += 1
            elif child.type == "link_open" or child.type == "image":
                url = str(child.attrs.get("href" if child.type == "link_open" else "src", ""))
                if _internal(url):
                    refuse(url, line)
            elif child.type == "html_inline":
                for found in _RAW_VALUE.finditer(child.content):
                    if _internal(url := unescape(found.group(1).strip("\"'"))):
                        refuse(url, line)


def _close_html_blocks(text: str, doc_id: str, line_breaks: str, tokens: list[Token],
                       env: dict) -> tuple[list[Token], dict]:
    """The text parsed again with the `<` that starts each HTML block left open (`open_html_block`) escaped,
    as text: what comes after it is Markdown again, rather than HTML that the sanitiser would drop."""
    from generator.markdown_rules import open_html_block

    lines: list[str] | None = None
    while (line := open_html_block(tokens)) is not None:
        if lines is None:
            lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")  # markdown-it's lines
        at = lines[line].find("<")
        if at < 0 or lines[line][at - 1:at] == "\\":
            break  # (cannot be: the block starts at the line's first `<`, which a quote or list marker is not)
        lines[line] = lines[line][:at] + "\\" + lines[line][at:]
        env = _environment(doc_id, line_breaks)
        tokens = markdown().parse("\n".join(lines), env)
    return tokens, env


@dataclass(frozen=True, slots=True)
class Job:
    """One Markdown text of the site to render: a chapter's body, a note, a summary."""

    doc_id: str  # unique in the site; also prefixes footnote ids
    text: str
    origin: Origin
    line_breaks: str = "markdown"  # the text's `line_breaks` (`config.LINE_BREAKS`)
    text_of: str = ""  # `chapter` or `one-shot` for a chapter's text (see `render`)


# (html, words, problems as (path, line, message, level))
Result = tuple[str, int, tuple[tuple[str, int | None, str, str], ...]]


def render_job(job: Job, targets: LinkTargets) -> Result:
    log = ProblemLog()
    html, words = render(job.text, job.doc_id, job.origin, targets, log, job.line_breaks, job.text_of)
    problems = tuple((str(p.path), p.line, p.message, p.level) for p in log.warnings + log.errors)
    return html, words, problems


def _render_batch(jobs: list[Job], targets: LinkTargets) -> list[Result]:
    return [render_job(job, targets) for job in jobs]


def _field_origin(path: Path, lines: dict[str, int], key: str, text: str) -> Origin:
    """Where a front-matter Markdown field's text starts: the key's line, or the next for `key: |`."""
    return Origin(path, lines.get(key, 1) + (1 if "\n" in text.strip() else 0))


_CHAPTER_FIELDS = (("body", "", "html"), ("notes_before", "-nb", "notes_before_html"),
                   ("notes_after", "-na", "notes_after_html"), ("summary", "-s", "summary_html"))
_STORY_FIELDS = (("summary", "-summary", "summary_html"), ("notes_before", "-wnb", "notes_before_html"),
                 ("notes_after", "-wna", "notes_after_html"))


def _chapter_jobs(story: Story, chapter: Chapter) -> list[Job]:
    jobs = []
    line_breaks = chapter.line_breaks or story.line_breaks  # the chapter's text, notes and summary alike
    for name, suffix, _ in _CHAPTER_FIELDS:
        text = getattr(chapter, name)
        if text.strip():
            body = name == "body"
            origin = (Origin(chapter.source, chapter.body_line) if body
                      else _field_origin(chapter.source, chapter.lines, name, text))
            text_of = ("one-shot" if story.single_file else "chapter") if body else ""
            jobs.append(Job(f"{story.slug}-{chapter.slug}{suffix}", text, origin, line_breaks, text_of))
    return jobs


def _story_jobs(story: Story) -> list[Job]:
    jobs = []
    for name, suffix, _ in _STORY_FIELDS:
        text = getattr(story, name)
        if text.strip():
            origin = (Origin(story.source, story.summary_line) if name == "summary" and not story.single_file
                      else _field_origin(story.source, story.lines, name, text))
            jobs.append(Job(f"{story.slug}{suffix}", text, origin, story.line_breaks))
    return jobs


def site_jobs(site: Site) -> list[Job]:
    jobs: list[Job] = []
    for story in site.stories:
        jobs += _story_jobs(story)
        for chapter in story.chapters:
            jobs += _chapter_jobs(story, chapter)
    return jobs


_REFERENCE = re.compile(r"\[(?!\^)[^\]\n]*\]:")  # `[label]: url`, but not a footnote's `[^1]:`
_RAW_LINK = re.compile(r"href=|src=", re.IGNORECASE)
PARALLEL_THRESHOLD = 1_000_000  # characters of Markdown to render before other processes pay off


def may_link(text: str) -> bool:
    """Whether the text may link to a file (so its HTML depends on where files are published).

    Cheap substring tests first: a case-insensitive regex over every chapter costs more than the cache saves.
    """
    return ("](" in text or ("]:" in text and _REFERENCE.search(text) is not None)
            or ("=" in text and _RAW_LINK.search(text) is not None))


def _job_key(job: Job) -> str:
    return digest("markdown (sealed placeholders)", job.doc_id, str(job.origin.path), str(job.origin.line),
                  job.line_breaks, job.text_of, job.text)


def _targets_digest(targets: LinkTargets) -> str:
    published = sorted((str(p), s, c) for p, (s, c) in targets.published.items())
    return digest(repr(published), repr(sorted(map(str, targets.unpublished))),
                  repr(sorted((str(p), url) for p, url in targets.files.items())))


# In a worker process only: the link targets of the build (set once by `_adopt_targets`, not sent with every batch),
# and, in a worker forked from the build, the texts to render, which it shares rather than is sent.
_worker_targets: LinkTargets | None = None
_worker_jobs: list[Job] = []


def _adopt_targets(targets: LinkTargets, parent: int | None, jobs: list[Job] | None = None) -> None:
    global _worker_targets, _worker_jobs
    die_with_parent(parent)
    _worker_targets = targets
    _worker_jobs = jobs or []


def _render_in_worker(batch: list[tuple[int, Job]]) -> list[tuple[int, Result]]:
    assert _worker_targets is not None
    return [(index, render_job(job, _worker_targets)) for index, job in batch]


def _render_shared(batch: list[int]) -> list[tuple[int, Result]]:
    """`_render_in_worker`, in a forked worker: the batch is only the indices of texts it shares."""
    assert _worker_targets is not None
    return [(index, render_job(_worker_jobs[index], _worker_targets)) for index in batch]


BATCH_MOST = 2_000_000  # characters of Markdown in a batch, at most (what the build and a worker hold of it at once)
JOB_CHARACTERS = 300  # what a text costs besides its characters (a few tens of microseconds), in characters


def _batches(jobs: list[Job], workers: int) -> list[list[tuple[int, Job]]]:
    """(index in `jobs`, job) in batches, the longest texts first, that get smaller as they go: each holds a
    `2 × workers`-th of the work not yet handed out (guided scheduling). The workers start on big batches,
    and end on small ones, at about the same time; and there are few batches to send back and forth."""
    weights = [len(job.text) + JOB_CHARACTERS for job in jobs]
    order = sorted(range(len(jobs)), key=lambda i: -weights[i])
    remaining = sum(weights)
    least = max(remaining // (workers * 32), 1)

    def share() -> int:
        return min(max(remaining // (2 * workers), least), BATCH_MOST)

    batches: list[list[tuple[int, Job]]] = []
    batch: list[tuple[int, Job]] = []
    size, target = 0, share()
    for index in order:
        batch.append((index, jobs[index]))
        size += weights[index]
        if size >= target:
            batches.append(batch)
            remaining -= size
            batch, size, target = [], 0, share()
    if batch:
        batches.append(batch)
    return batches


class Rendering:
    """Markdown texts being rendered: those in the cache are looked up, and the others, when there are enough
    of them to pay for other processes, are handed to worker processes at once, so that the caller can get on
    with other work until it asks for the `results`. Close it (it is a context manager) to stop the workers,
    whether or not the results were asked for.

    A text is cached by its own key, with the digest of where files are published when it may link to one
    (`may_link`), which it was rendered against: it is used only while that is still where they are. So
    only a text rendered now is searched for links, not the thousands that come from the cache."""

    def __init__(self, jobs: list[Job], targets: LinkTargets, cache: Cache | None, workers: int,
                 warnings: list[str], progress: ProgressCallback = no_progress) -> None:
        self._jobs, self._targets, self._cache, self._progress = jobs, targets, cache, progress
        self._targets_digest = _targets_digest(targets)
        self._keys = [_job_key(job) for job in jobs]
        self._results: dict[str, Result] = {}
        self._missing: list[int] = []
        found = cache.get_many(self._keys, warnings) if cache else {}
        for index, (job, key) in enumerate(zip(jobs, self._keys)):
            cached = found.get(key)
            if isinstance(cached, tuple) and len(cached) == 4 and cached[3] in ("", self._targets_digest):
                self._results[job.doc_id] = cached[:3]
            else:
                self._missing.append(index)
        self._todo = [jobs[i] for i in self._missing]
        self._pool: ProcessPoolExecutor | None = None
        self._futures: list[Future[list[tuple[int, Result]]]] = []
        self._batches: list[list[int]] = []  # the texts of each future, and then of the batches not handed out
        if workers > 1 and sum(len(job.text) for job in self._todo) > PARALLEL_THRESHOLD:
            context = pool_context()
            forked = context.get_start_method() == "fork"  # else a fork server starts the workers
            self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_adopt_targets,
                                             initargs=(targets, os.getpid(), self._todo) if forked else (targets, None))
            widen_pipes(self._pool)
            if forked:
                markdown()  # made before the workers are forked, which share it rather than each make it
                gc.freeze()  # the workers' garbage collector leaves what they share with this process alone
            broken = False  # a worker died (killed, out of memory): the batches not handed out are rendered here
            try:
                for batch in _batches(self._todo, workers):  # a forked worker shares the texts: sent their indices
                    self._batches.append([index for index, _ in batch])
                    if not broken:
                        try:
                            self._futures.append(self._pool.submit(_render_shared, self._batches[-1]) if forked
                                                 else self._pool.submit(_render_in_worker, batch))
                        except BrokenProcessPool:
                            broken = True
            finally:
                if forked:
                    gc.unfreeze()  # the workers are forked (at the first batch): here, the collector goes on

    def _rendered(self) -> Iterator[tuple[int, Result]]:
        """(index in the texts to render, result) for every one, a batch at a time as the workers finish them."""
        if self._pool is None:
            yield from enumerate(_render_batch(self._todo, self._targets))
            return
        done = 0
        while self._batches:
            batch = self._batches.pop(0)
            try:
                results = self._futures.pop(0).result() if self._futures else None  # not kept once handed on
            except BrokenProcessPool:  # a worker died (killed, out of memory): its batch is rendered here
                results = None
            if results is None:
                results = [(index, render_job(self._todo[index], self._targets)) for index in batch]
            yield from results
            done += len(results)
            self._progress("Rendering Markdown (texts)", done, len(self._todo))

    def results(self) -> dict[str, Result]:
        """Every text's result (by doc id), once all are rendered; those rendered now are cached. Ask once:
        this lets go of the texts (a long serial's Markdown is tens of megabytes)."""
        for position, result in self._rendered():
            index = self._missing[position]
            self._results[self._jobs[index].doc_id] = result
            if self._cache:
                self._cache.put(self._keys[index],
                                (*result, self._targets_digest if may_link(self._jobs[index].text) else ""))
        if self._cache:
            self._cache.flush()
        results = self._results
        self._todo.clear()  # the list the workers were forked with, which the pool keeps
        self._results, self._jobs, self._keys, self._missing = {}, [], [], []
        return results

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> Rendering:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def rendered_site(site: Site, results: dict[str, Result], log: ProblemLog) -> Site:
    """The site with the HTML and word counts of `results` (`Rendering.results`); link problems logged with
    file and line."""
    for _, _, problems in results.values():
        for path, line, message, level in problems:
            (log.error if level == "error" else log.warn)(Path(path), line, message)
    return _apply(site, results)


def render_site(site: Site, targets: LinkTargets, log: ProblemLog, cache: Cache | None = None,
                workers: int = 1, warnings: list[str] | None = None,
                progress: ProgressCallback = no_progress) -> Site:
    """Every Markdown text of the site rendered; link problems logged with file and line."""
    with Rendering(site_jobs(site), targets, cache, workers, warnings if warnings is not None else [],
                   progress) as rendering:
        return rendered_site(site, rendering.results(), log)


def _apply(site: Site, results: dict[str, Result]) -> Site:
    """The site with its HTML and word counts; the chapters let go of their Markdown, which nothing later needs
    (a long serial's source is tens of megabytes)."""
    stories = []
    for story in site.stories:
        chapters = []
        for chapter in story.chapters:
            values: dict[str, object] = {}
            for _, suffix, attr in _CHAPTER_FIELDS:
                result = results.get(f"{story.slug}-{chapter.slug}{suffix}")
                values[attr] = result[0] if result else ""
                if suffix == "":
                    values["words"] = result[1] if result else 0
            chapters.append(replace(chapter, body="", notes_before="", notes_after="", summary="", **values))
        values = {attr: (results[f"{story.slug}{suffix}"][0] if f"{story.slug}{suffix}" in results else "")
                  for _, suffix, attr in _STORY_FIELDS}
        stories.append(replace(story, chapters=tuple(chapters), **values))
    return replace(site, stories=tuple(stories))


_PLACEHOLDER = re.compile(r'href="' + LINK_SCHEME + r':([^"/#]*)/([^"#]*)(?:#([^"]*))?"')


def resolve_links(html: str, page_url: Callable[[str], str], same_story: str | None = None,
                  in_page: frozenset[str] | None = None) -> str:
    """Turn link placeholders into links from one page.

    `page_url` maps a site path (`story/chapter/`) to a link from the page; on a
    whole-work page (`same_story`), chapters of that story become in-page anchors
    (only those in `in_page`, when the work is split into parts).
    Images and other files of the stories (`assets.resolve_files`) are linked from the page too.
    """
    html = resolve_files(html, page_url)
    if f'href="{LINK_SCHEME}:' not in html:
        return html

    def link(match: re.Match[str]) -> str:
        story, chapter, fragment = match.group(1), match.group(2), match.group(3)
        if story == same_story and (in_page is None or not chapter or chapter in in_page):
            target = "#" + (fragment or (f"chapter-{chapter}" if chapter else "main"))
        else:
            target = page_url(f"{story}/{chapter}/" if chapter else f"{story}/")
            target += f"#{fragment}" if fragment else ""
        return f'href="{target}"'

    return _PLACEHOLDER.sub(link, html)
