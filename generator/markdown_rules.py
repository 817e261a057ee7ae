"""markdown-it-py's core rules `normalize`, `replacements` and `smartquotes`, and its inline rule `text`,
rewritten, and a shortcut for its commonest block: the same tokens, faster.

Prose is full of what the typographer rules look for (dashes, ellipses, quotes, apostrophes): the stock
rules run three regular expressions that cannot skip ahead over every paragraph with a `--`, and look
each quote up through several generic helpers. These versions find the same spots with cheap scans and
decide each one as the stock rules do. `normalize` skips its substitutions when there is nothing to
substitute. `text` stops only where one of the inline rules in use can start, where the stock rule stops at
every hyphen and colon too (for rules of other plugins), to try each rule there in turn and fail.
`plain_paragraph` takes a paragraph of one line that starts with a letter as a paragraph straight away, where
the stock parser first asks every other block rule (a table? a list? a heading?…) whether it is theirs.
`tests/test_markdown_speedups.py` checks them against the stock rules.

And `open_html_block`, which finds a block of the author's HTML that takes the rest of the text for want of
its end (see `markdown.render`).

And the rules of `line_breaks: paragraphs`, for text pasted from an archive or a word processor, whose paragraphs
are lines: `line_paragraphs` makes each line of a paragraph a paragraph, and `setext_heading` leaves a line of
`---` or `===` under a line what it is on its own (a scene break, a line of text) rather than a heading's
underline. `pasted_lines` finds such text where the setting is off.
"""

from __future__ import annotations

import re
from functools import lru_cache

from markdown_it.common.utils import isMdAsciiPunct, isPunctChar, isWhiteSpace, mdTrim
from markdown_it.rules_core import replacements
from markdown_it.rules_core.normalize import NEWLINES_RE, NULL_RE
from markdown_it.rules_core.smartquotes import APOSTROPHE, smartquotes
from markdown_it.rules_block import lheading
from markdown_it.rules_block.html_block import HTML_SEQUENCES
from markdown_it.rules_block.state_block import StateBlock
from markdown_it.rules_core.state_core import StateCore
from markdown_it.rules_inline.state_inline import StateInline
from markdown_it.token import Token

# --- normalize -------------------------------------------------------------------------------------------------


def normalize(state: StateCore) -> None:
    """markdown-it's `normalize` (line ends to `\\n`, NUL to U+FFFD), without its two passes over a text that
    has neither a carriage return nor a NUL."""
    text = state.src
    if "\r" in text:
        text = NEWLINES_RE.sub("\n", text)
    if "\0" in text:
        text = NULL_RE.sub("\ufffd", text)
    state.src = text


# --- replacements ----------------------------------------------------------------------------------------------

_DOTS = re.compile(r"\.\.+")  # what `ELLIPSIS_RE` (`\.{2,}`) matches, found by its first character
_COMMAS = re.compile(r",,+")  # what `COMMA_RE` (`,{2,}`) matches
_DASHES = re.compile(r"--+")


def _dash(text: str, match: re.Match[str]) -> str:
    """What markdown-it's three dash rules make of one run of hyphens, in the order it applies them.

    `EM_DASH_RE` turns a run of exactly three into an em dash. `EN_DASH_RE` turns a run of exactly two
    into an en dash when it stands between spaces, `EN_DASH_INDENT_RE` when it stands between other
    characters; a line's start and end count as both (their `^` and `$`), a space on one side and a
    character on the other as neither. The runs of other lengths stay.
    """
    run = match.group()
    if len(run) == 3:
        return "\u2014"
    if len(run) != 2:
        return run
    start, end = match.span()
    before = text[start - 1] if start else "\n"
    after = text[end] if end < len(text) else "\n"
    if before.isspace() and after.isspace():  # `\s` in a `str` pattern is `str.isspace`
        return "\u2013"
    if (before == "\n" or not before.isspace()) and (after == "\n" or not after.isspace()):
        return "\u2013"
    return run


def _rare(text: str) -> bool:
    """`RARE_RE.search(text)`, with `in` (a regular expression of alternatives reads every character slowly)."""
    return "--" in text or ".." in text or ",," in text or "+-" in text or "????" in text or "!!!!" in text


def _replace_rare(tokens: list[Token]) -> None:
    """markdown-it's `replace_rare` (dashes, ellipses, `+-`, `!!!!`, `,,`), each substitution skipped where
    a substring it needs is missing, and the dashes found by their runs."""
    inside_autolink = 0
    for token in tokens:
        text = token.content
        if token.type == "text" and not inside_autolink and _rare(text):
            if "+-" in text:
                text = replacements.PLUS_MINUS_RE.sub("±", text)
            if ".." in text:
                text = _DOTS.sub("…", text)
            if "?…" in text or "!…" in text:
                text = replacements.ELLIPSIS_QUESTION_EXCLAMATION_RE.sub("\\1..", text)
            if "??" in text or "!!" in text or "?!" in text or "!?" in text:
                text = replacements.QUESTION_EXCLAMATION_RE.sub("\\1\\1\\1", text)
            if ",," in text:
                text = _COMMAS.sub(",", text)
            if "--" in text:
                before = text
                text = _DASHES.sub(lambda match: _dash(before, match), text)
            token.content = text
        if token.type == "link_open" and token.info == "auto":
            inside_autolink -= 1
        if token.type == "link_close" and token.info == "auto":
            inside_autolink += 1


def replace(state: StateCore) -> None:
    """markdown-it's `replacements` core rule, with the faster `_replace_rare`."""
    if not state.md.options.typographer:
        return
    for token in state.tokens:
        if token.type != "inline" or token.children is None:
            continue
        if "(" in token.content and replacements.SCOPED_ABBR_RE.search(token.content):
            replacements.replace_scoped(token.children)
        if _rare(token.content):
            _replace_rare(token.children)


# --- smart quotes ----------------------------------------------------------------------------------------------

@lru_cache(maxsize=4096)
def _kind(char: str) -> tuple[bool, bool]:
    """(punctuation, white space), as markdown-it's smartquotes rule tells them."""
    code = ord(char)
    return isMdAsciiPunct(code) or isPunctChar(char), isWhiteSpace(code)


_SPACE = _kind(" ")


def _quotes(tokens: list[Token], quotes: str) -> None:
    """markdown-it's `process_inlines` for quotes of one character each: the same decisions, in the same
    order, with the neighbouring characters looked up once and the text searched in place."""
    stack: list[tuple[int, int, bool, int]] = []  # (token, position, single, level) of quotes that may open
    for i, token in enumerate(tokens):
        level = token.level
        while stack and stack[-1][3] > level:
            stack.pop()
        if token.type != "text":
            continue

        text = token.content
        # The next of each quote, found with `str.find` (a regular expression for either is several times
        # slower). Quotes are only replaced at or before the one looked at, so what lies after stays put.
        next_single, next_double = text.find("'"), text.find('"')
        while next_single >= 0 or next_double >= 0:
            single = next_double < 0 or 0 <= next_single < next_double
            if single:
                at, next_single = next_single, text.find("'", next_single + 1)
            else:
                at, next_double = next_double, text.find('"', next_double + 1)
            pos = at + 1

            if 0 < at and pos < len(text):  # the common cases, quickly: what the rest decides for them
                last, following = text[at - 1], text[pos]
                if following.isalnum():  # letters and digits are neither punctuation nor space
                    if last.isalnum():  # inside a word: an apostrophe, or a straight double quote
                        if single:
                            token.content = token.content[:at] + APOSTROPHE + token.content[at + 1:]
                        continue
                    if last == " ":  # before a word: may open
                        stack.append((i, at, single, level))
                        continue

            if at > 0:
                last = text[at - 1]
            else:
                last = " "
                for j in range(i - 1, -1, -1):
                    if tokens[j].type in ("softbreak", "hardbreak"):
                        break
                    if tokens[j].content:
                        last = tokens[j].content[-1]
                        break
            if pos < len(text):
                following = text[pos]
            else:
                following = " "
                for j in range(i + 1, len(tokens)):
                    if tokens[j].type in ("softbreak", "hardbreak"):
                        break
                    if tokens[j].content:
                        following = tokens[j].content[0]
                        break

            last_punct, last_white = _kind(last) if last != " " else _SPACE
            next_punct, next_white = _kind(following) if following != " " else _SPACE
            can_open = not next_white and not (next_punct and not (last_white or last_punct))
            can_close = not last_white and not (last_punct and not (next_white or next_punct))
            if following == '"' and not single and "0" <= last <= "9":
                can_open = can_close = False  # 1"" : the first quote is an inch mark
            if can_open and can_close:  # between punctuation it may do either; inside a word, neither
                can_open, can_close = last_punct, next_punct

            if not can_open and not can_close:
                if single:
                    token.content = token.content[:at] + APOSTROPHE + token.content[at + 1:]
                continue

            if can_close:
                closed = False
                for j in range(len(stack) - 1, -1, -1):
                    opener, opened_at, opener_single, opener_level = stack[j]
                    if opener_level < level:
                        break
                    if opener_single == single and opener_level == level:
                        open_quote, close_quote = (quotes[2], quotes[3]) if single else (quotes[0], quotes[1])
                        token.content = token.content[:at] + close_quote + token.content[at + 1:]
                        target = tokens[opener]
                        target.content = target.content[:opened_at] + open_quote + target.content[opened_at + 1:]
                        text = token.content
                        del stack[j:]
                        closed = True
                        break
                if closed:
                    continue

            if can_open:
                stack.append((i, at, single, level))
            elif can_close and single:
                token.content = token.content[:at] + APOSTROPHE + token.content[at + 1:]


def smart_quotes(state: StateCore) -> None:
    """markdown-it's `smartquotes` core rule, with the faster `_quotes` when every quote is one character."""
    if not state.md.options.typographer:
        return
    quotes = state.md.options.quotes
    if len(quotes) != 4 or any(len(quote) != 1 for quote in quotes):
        smartquotes(state)
        return
    for token in state.tokens:
        if token.type == "inline" and token.children is not None and ('"' in token.content
                                                                       or "'" in token.content):
            _quotes(token.children, "".join(quotes))


# --- text ------------------------------------------------------------------------------------------------------

# Where the inline rules of `generator.markdown.markdown()` can start: a line end (`newline`), `\\` (`escape`),
# a backtick (`backticks`), `~` (`strikethrough`), `*` and `_` (`emphasis`), `[` (`link`, `footnote_ref`), `![`
# (`image`), `^[` (`footnote_inline`), `<` (`autolink`, `html_inline`) and `&` (`entity`); and `]`, where a link's
# text ends (`parseLinkLabel` looks for it between the tokens it skips).
INLINE_RULES = ("text", "newline", "escape", "backticks", "strikethrough", "emphasis", "link", "image",
                "footnote_inline", "footnote_ref", "autolink", "html_inline", "entity")
_TERMINATOR = re.compile(r"[\n&*<\[\\\]_`~]|[!^](?=\[)")


def text(state: StateInline, silent: bool) -> bool:
    """markdown-it's `text` inline rule: the plain text up to where another rule may start, to the pending
    text. Only for the rules in `INLINE_RULES`."""
    pos = state.pos
    found = _TERMINATOR.search(state.src, pos)
    end = found.start() if found else state.posMax  # as the stock rule: not held to posMax (`]` ends a label)
    if end == pos:
        return False
    if not silent:
        state.append_pending(state.src[pos:end])
    state.pos = end
    return True


# --- plain paragraphs ------------------------------------------------------------------------------------------

# The block rules of `generator.markdown.markdown()`, in order. None of those before `paragraph` takes a line that
# starts with a letter or opening punctuation (`_PLAIN_START`) and is not indented as code, when the next line is
# blank: their blocks start with other characters (`|`, backticks, `~`, `>`, `*`, `-`, `_`, `+`, digits, `[`, `<`,
# `#`), or need a second line (a table's delimiter row, a setext heading's underline).
BLOCK_RULES = ("table", "code", "fence", "blockquote", "hr", "list", "footnote_def", "reference", "html_block",
               "heading", "lheading", "paragraph")
_PLAIN_START = frozenset("\"'\u201c\u2018\u201e\u00ab\u2039(\u00bf\u00a1\u2026\u2014\u2013")


def plain_paragraph(state: StateBlock, start: int, end: int, silent: bool) -> bool:
    """markdown-it's `paragraph` block rule for a paragraph of one line that no other rule in `BLOCK_RULES`
    could take, placed before them all; False for anything else, left to them."""
    if silent or state.sCount[start] - state.blkIndent >= 4:
        return False
    first = state.src[state.bMarks[start] + state.tShift[start]]
    following = start + 1
    if not (first.isalpha() or first in _PLAIN_START) or (following < state.lineMax and not state.isEmpty(following)):
        return False
    content = mdTrim(state.getLines(start, following, state.blkIndent, False))
    state.line = following
    token = state.push("paragraph_open", "p", 1)
    token.map = [start, following]
    token = state.push("inline", "", 0)
    token.content = content
    token.map = [start, following]
    token.children = []
    state.push("paragraph_close", "p", -1)
    return True


# --- HTML blocks left open -------------------------------------------------------------------------------------

def open_html_block(tokens: list[Token]) -> int | None:
    """The first line of the first HTML block that runs on to the end of the text (or of the quote or list
    item it is in) for want of its end: a line that starts with `<script`, `<style`, `<pre` or `<textarea`
    and no `</script>` after it, `<!--` and no `-->`, `<?` and no `?>`, `<!X` and no `>`, `<![CDATA[` and no
    `]]>` (CommonMark's HTML blocks of kinds 1 to 5). Everything after it is then HTML rather than Markdown;
    None when there is no such block."""
    for token in tokens:
        if token.type != "html_block" or not token.map:
            continue
        first = token.content.split("\n", 1)[0].lstrip(" ")
        for opening, closing, _ in HTML_SEQUENCES[:5]:
            if opening.search(first):
                if closing.search(token.content) is None:
                    return token.map[0]
                break
    return None


# --- line_breaks: paragraphs ----------------------------------------------------------------------------------

LINE_BREAKS = "lineBreaks"  # the key of the environment that holds the text's `line_breaks`


def _by_lines(children: list[Token]) -> list[tuple[list[Token], int]]:
    """The inline tokens of a paragraph cut where a line breaks softly outside any emphasis or link (which
    stay whole): each piece, and the lines of the source it spans."""
    pieces: list[tuple[list[Token], int]] = []
    piece: list[Token] = []
    depth = lines = 0
    for child in children:
        if child.type == "softbreak" and depth == 0:
            pieces.append((piece, lines + 1))
            piece, lines = [], 0
            continue
        depth += child.nesting
        if child.type in ("softbreak", "hardbreak"):
            lines += 1
        elif child.type == "html_inline":
            lines += child.content.count("\n")
        piece.append(child)
    pieces.append((piece, lines + 1))
    return pieces


def line_paragraphs(state: StateCore) -> None:
    """With `line_breaks: paragraphs` (`state.env[LINE_BREAKS]`), each line of a paragraph is a paragraph of
    its own, as in text pasted from an archive or a word processor. A line that ends in a hard break (two
    spaces or a backslash, as in poetry) stays a line of its paragraph; and in the item of a tight list, whose
    paragraphs are not shown as such, each line ends in one. Lists, quotes, code and tables stay what they are.
    (A core rule, after `inline`: emphasis or a link over two lines stays whole.)"""
    if state.env.get(LINE_BREAKS) != "paragraphs":
        return
    tokens = state.tokens
    result: list[Token] = []
    index, count = 0, len(tokens)
    while index < count:
        token = tokens[index]
        if (token.type != "paragraph_open" or index + 2 >= count or tokens[index + 1].type != "inline"
                or not any(child.type == "softbreak" for child in tokens[index + 1].children or ())):
            result.append(token)
            index += 1
            continue
        inline, close = tokens[index + 1], tokens[index + 2]
        if token.hidden:  # a tight list's item
            for child in inline.children or ():
                if child.type == "softbreak":
                    child.type, child.tag = "hardbreak", "br"
            result += (token, inline, close)
        else:
            line = token.map[0] if token.map else 0
            for piece, lines in _by_lines(inline.children or []):
                where = [line, line + lines] if token.map else None
                result += (token.copy(map=where),
                           inline.copy(map=where, children=piece,
                                       content="".join(child.content for child in piece)),
                           close.copy())
                line += lines
        index += 3
    state.tokens = result


def setext_heading(state: StateBlock, start: int, end: int, silent: bool) -> bool:
    """markdown-it's `lheading` rule, but for a text with `line_breaks: paragraphs`: each of its lines is a
    paragraph, so a line of `---` or `===` under a line is not the line's underline (a line of `---` is a scene
    break, as it is between blank lines)."""
    if state.env.get(LINE_BREAKS) == "paragraphs":
        return False
    return lheading(state, start, end, silent)


# What a line of a paragraph ends with when the line is a paragraph (`pasted_lines`): the end of a sentence, or
# of what someone says.
_SENTENCE_END = frozenset(".!?\u2026\"'\u201d\u2019\u00bb)]\u300d\u300f\u3002\uff01\uff1f")
PASTED_LINE_ENDS = 0.6  # the share of lines that must end so
PASTED_LEAST = 2  # and at least this many


def pasted_lines(tokens: list[Token]) -> list[tuple[int, int]]:
    """The first and last line (from 0) of each paragraph that is separate lines, when the text looks like text
    pasted from an archive or a word processor, whose paragraphs are lines with no blank line between them,
    and which Markdown shows as one paragraph; else [].

    It looks so when most of the lines that Markdown joins to the next (in paragraphs outside lists, quotes and
    footnotes) end a sentence or a quote: lines of dialogue, or whole paragraphs. Not when they end in mid-
    sentence, as text wrapped at a width does (`Lines of seventy or eighty characters that go on\non the next
    one`), nor when they end in a hard break (two spaces or a backslash: poetry)."""
    joined = ends = 0
    found: list[tuple[int, int]] = []
    for index, token in enumerate(tokens):
        if token.type != "paragraph_open" or token.level or token.hidden or not token.map:
            continue
        soft = 0
        tail = ""  # the end of the line so far
        for child in tokens[index + 1].children or ():
            kind = child.type
            if kind == "softbreak":
                soft += 1
                tail = tail.rstrip(" \t*_~")
                if tail and tail[-1] in _SENTENCE_END:
                    ends += 1
                tail = ""
            elif kind == "hardbreak":
                tail = ""
            elif kind == "text" or kind == "code_inline":
                tail = (tail + child.content)[-8:]
            elif kind == "image":
                tail = ""
        if soft:
            joined += soft
            found.append((token.map[0], token.map[1] - 1))
    if ends >= PASTED_LEAST and ends >= PASTED_LINE_ENDS * joined:
        return found
    return []
